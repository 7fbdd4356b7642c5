"""SampleView's time-coloured paths: every sampling step's segment is drawn once, in the colour
band of its time, from noise (dark) to data (bright)."""

from __future__ import annotations

import numpy as np

from genstudio.core.imaging import colormap
from genstudio.qt.panels.views import SampleView, time_segments


def test_time_segments_cover_every_step_once_in_time_order():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(9, 5, 2))
    t = np.linspace(80.0, 0.0, 9)  # any unit: a sigma ladder here
    segs = time_segments(h, t, bands=4)
    assert [f for f, _ in segs] == [0.125, 0.375, 0.625, 0.875]
    pairs = np.concatenate([xy.reshape(-1, 2, 2) for _, xy in segs])
    assert len(pairs) == 8 * 5  # (L - 1) steps x N particles
    want = {(tuple(h[k, i]), tuple(h[k + 1, i])) for k in range(8) for i in range(5)}
    assert {(tuple(a), tuple(b)) for a, b in pairs} == want
    # the band with the largest fraction holds the first (noisiest) steps
    first = {tuple(p) for p in segs[-1][1]}
    assert tuple(h[0, 0]) in first and tuple(h[-1, 0]) not in first
    assert time_segments(h[:1], t[:1]) == []


def test_sample_view_draws_bands_and_clears_them(qtbot):
    view = SampleView("x")
    h = np.cumsum(np.random.default_rng(1).normal(size=(20, 30, 2)), 0)
    view.show_points(h[-1], h, lim=3.0, times=np.linspace(1, 0, 20))
    shown = [b for b in view.bands if b.isVisible()]
    assert len(shown) == 12 and sum(len(b.getData()[0]) for b in shown) == 19 * 30 * 2
    cols = [b.opts["pen"].color().getRgb()[:3] for b in shown]
    data_end, noise_end = (tuple(int(c) for c in colormap(1 - f)) for f in (0.5 / 12, 11.5 / 12))
    assert cols[0] == data_end and cols[-1] == noise_end  # viridis: bright near data, dark near noise
    view.show_points(h[-1], h[-4:], lim=3.0)  # plain trails again: bands hidden
    assert not any(b.isVisible() for b in view.bands) and len(view.trails.getData()[0]) == 4 * 30
    view.show_points(h[-1], h, times=np.linspace(1, 0, 20))
    view.clear_content()
    assert not any(b.isVisible() for b in view.bands)
