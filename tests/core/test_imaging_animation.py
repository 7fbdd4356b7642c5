"""save_animation: one writer for GIF and MP4 exports, frames read back as written."""
import imageio.v2 as iio
import numpy as np
import pytest

from genstudio.core.imaging import save_animation


def _frames(n: int = 6, h: int = 33, w: int = 45) -> list[np.ndarray]:
    return [np.full((h, w, 3), 30 * i, np.uint8) for i in range(n)]


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_frames_read_back(tmp_path, suffix):
    path = save_animation(_frames(), tmp_path / f"a{suffix}", fps=8)
    back = iio.mimread(path)
    assert len(back) == 6
    # MP4 pads odd sides to even ones (H.264) and is lossy: the mean grey level survives
    assert back[0].shape[0] in (33, 34) and back[0].shape[1] in (45, 46)
    means = [float(np.asarray(f)[..., :3].mean()) for f in back]
    assert means == sorted(means) and abs(means[-1] - 150) < 8


def test_unknown_suffix_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="gif or .mp4"):
        save_animation(_frames(), tmp_path / "a.avi")
    with pytest.raises(ValueError, match="no frames"):
        save_animation([], tmp_path / "a.mp4")
