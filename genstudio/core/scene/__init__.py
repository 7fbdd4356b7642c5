"""GUI-free 3-D scene maths: cameras and camera files, the procedural multi-view scene, volume
rendering, 3D Gaussians with a differentiable torch rasteriser, and .ply / .splat files."""
