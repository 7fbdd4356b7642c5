"""Sample-quality metrics (pure functions) and the feature extractors they run on.

``functional`` holds the maths; ``features`` the per-dataset classifiers ("Fréchet classifier
distance") and the optional Inception-v3 path; the eval job in ``genstudio.core.eval`` ties them
to runs.
"""

from genstudio.core.metrics.functional import (
    Interval,
    bits_per_dim,
    bootstrap_ci,
    discrete_bits_per_dim,
    energy_distance,
    fid_from_features,
    fid_reliability,
    frechet_distance,
    inception_score,
    infer_levels,
    kid,
    mean_cov,
    median_bandwidth,
    mmd_rbf,
    precision_recall,
    trace_sqrt_product,
    w2_exact,
    wilson_interval,
)

__all__ = [
    "Interval", "bits_per_dim", "bootstrap_ci", "discrete_bits_per_dim", "energy_distance",
    "fid_from_features", "fid_reliability", "frechet_distance", "inception_score", "infer_levels", "kid",
    "mean_cov", "median_bandwidth", "mmd_rbf", "precision_recall", "trace_sqrt_product", "w2_exact",
    "wilson_interval",
]
