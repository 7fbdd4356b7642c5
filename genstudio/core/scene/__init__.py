"""GUI-free 3-D scene maths, shared by the NeRF / splatting / neural-field plugins and the viewers.

Conventions (all modules): world z is up; ``Camera.c2w`` is camera-to-world in OpenGL camera axes
(+x right, +y up, looking down -z), as nerfstudio / instant-ngp store it; images are (H, W, 3)
in [0, 1] (the plugins' ``sample()`` converts to the (N, 3, H, W), [-1, 1] samples convention).

- ``cameras``: :class:`Camera` (rays, projection), cameras on a sphere, transforms.json and INRIA
  cameras.json read / write.
- ``multiview``: :class:`SceneData` (train + held-out views, bbox), transforms folders.
- ``procedural``: the analytic primitives scene (ground truth without downloads).
- ``render``: volume rendering, stratified / importance sampling, positional encoding, PSNR, SSIM.
- ``gaussians``: :class:`Gaussians`, EWA projection, SH, the torch rasteriser, densify / prune.
- ``io``: INRIA .ply and antimatter15 .splat (``load_scene`` / ``save_scene``; ``SceneFileError``).
- ``fields``: SIREN / Fourier-feature MLPs, SDFs, sphere tracing, marching cubes.
- ``exports``: what ``export_scene()`` returns (Gaussians, VolumeScene, MeshScene, ImageScene).
- ``training``: helpers the 3-D plugins share (views behind a DataSpec, held-out PSNR, previews).

Modules are imported on demand (nothing here is loaded by ``import genstudio.core``).
"""
