"""pyqtgraph pieces shared by the panels: a plot that shows either an image grid or a 2-D point
cloud with particle trails, and the helpers that feed it."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QStringListModel, Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QCompleter, QLabel, QLineEdit, QSizePolicy, QWidget

from genstudio.core.imaging import colormap, outside

PALETTE = [
    (77, 166, 255), (255, 140, 66), (102, 204, 102), (240, 84, 84), (186, 134, 255),
    (255, 214, 10), (64, 224, 208), (255, 128, 200), (170, 170, 170), (160, 110, 60),
]


def colour(i: int, alpha: int = 255) -> tuple[int, int, int, int]:
    """The i-th colour of the shared palette (curves of different runs/metrics stay apart)."""
    r, g, b = PALETTE[i % len(PALETTE)]
    return r, g, b, alpha


def trail_arrays(history: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(L, N, 2) positions over L steps -> x, y and a ``connect`` array for one PlotCurveItem that
    draws N separate polylines (no segment joins the end of one particle to the next)."""
    steps, n, _ = history.shape
    per = np.ascontiguousarray(history.transpose(1, 0, 2))  # (N, L, 2): one particle after another
    connect = np.ones(n * steps, dtype=bool)
    connect[steps - 1::steps] = False
    return per[..., 0].ravel(), per[..., 1].ravel(), connect


TIME_BANDS = 12  # colour steps of time-coloured paths (one curve item each)
TRAIL = 8  # positions per particle trail
MAX_TRAILS = 2000  # particles that get a trail (drawing cost grows with n * TRAIL)
MAX_PATHS = 400  # particles drawn with whole time-coloured paths
MAX_PATH_STATES = 64  # states per whole path (evenly spaced, always ending at the shown one)


def particle_history(states: list, i: int, whole: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """What ``show_points`` draws behind state ``i`` of a trajectory (a list of SampleState with
    (N, 2) ``x``): the last TRAIL positions as a faint trail (times None), or with ``whole`` the
    path from x_T to here, thinned to MAX_PATH_STATES states of MAX_PATHS particles, with each
    state's t (so drawing stays interactive at any number of steps)."""
    if not whole:
        lo = max(0, i - TRAIL + 1)
        return np.stack([s.x[:MAX_TRAILS].numpy() for s in states[lo:i + 1]]), None
    idx = sorted(set(np.linspace(0, i, min(i + 1, MAX_PATH_STATES)).round().astype(int).tolist()))
    hist = np.stack([states[k].x[:MAX_PATHS].numpy() for k in idx])
    return hist, np.array([float(states[k].t) for k in idx])


def time_segments(history: np.ndarray, times: np.ndarray, bands: int = TIME_BANDS) -> list[tuple[float, np.ndarray]]:
    """(L, N, 2) positions at times ``times`` (L,) -> per colour band, (band position in [0, 1]:
    1 = the largest time, i.e. noise; (2M, 2) segment end points for ``connect="pairs"``). Each
    step's segment goes to the band of its mean time, whatever unit the sampler's t is in."""
    steps = len(history)
    if steps < 2:
        return []
    t = np.asarray(times, np.float64)
    mid = 0.5 * (t[:-1] + t[1:])
    lo, hi = float(mid.min()), float(mid.max())
    band = np.zeros(len(mid), int) if hi <= lo else np.minimum((mid - lo) / (hi - lo) * bands, bands - 1).astype(int)
    out = []
    for b in np.unique(band):
        idx = np.nonzero(band == b)[0]
        pairs = np.stack([history[idx], history[idx + 1]], axis=2)  # (S, N, 2 ends, 2)
        out.append(((b + 0.5) / bands, pairs.reshape(-1, 2)))
    return out


class SampleView(pg.PlotItem):
    """A titled plot that shows an RGB uint8 image (axes hidden, y down) or points with trails."""

    def __init__(self, title: str = "", point_colour: tuple[int, int, int] = PALETTE[0]) -> None:
        super().__init__(title=title, enableMenu=False)  # no context menu: never built (~7 ms a view)
        self.base_title = title
        self.note = ""  # appended to the title (e.g. how many points lie outside the view)
        self.outside = 0  # points of the last show_points(clip=...) left undrawn
        self.image = pg.ImageItem(axisOrder="row-major")
        self.trails = pg.PlotCurveItem(pen=pg.mkPen(*point_colour, 60, width=1))
        self.scatter = pg.ScatterPlotItem(size=4, pen=None, brush=pg.mkBrush(*point_colour, 220))
        for item in (self.image, self.trails, self.scatter):
            self.addItem(item)
        self.bands: list[pg.PlotCurveItem] = []  # time-coloured paths (show_points(times=...))
        self.setAspectLocked(True)
        self.mode: str | None = None
        self._image_shape: tuple[int, ...] | None = None
        self._set_mode("image")

    def _set_mode(self, mode: str) -> None:
        if mode == self.mode:
            return
        self.mode = mode
        image = mode == "image"
        self.image.setVisible(image)
        self.trails.setVisible(not image)
        self.scatter.setVisible(not image)
        self._show_bands([])
        for axis in ("left", "bottom"):
            self.showAxis(axis, not image)
        self.invertY(image)
        self.showGrid(x=not image, y=not image, alpha=0.15)
        self._image_shape = None

    def show_image(self, img: np.ndarray) -> None:
        """Show an (H, W, 3) uint8 image at fixed levels (no per-frame autoscaling flicker)."""
        self._set_mode("image")
        self.image.setImage(img, autoLevels=False, levels=(0, 255))
        if img.shape != self._image_shape:  # new geometry: fit it, otherwise keep the user's zoom
            self._image_shape = img.shape
            self.getViewBox().setRange(xRange=(0, img.shape[1]), yRange=(0, img.shape[0]), padding=0.02)

    def set_note(self, note: str) -> None:
        """A note after the title ('' = the plain title)."""
        if note != self.note:
            self.note = note
            self.setTitle(f"{self.base_title} · {note}" if note else self.base_title)

    def show_points(self, pts: np.ndarray, history: np.ndarray | None = None, lim: float | None = None,
                    times: np.ndarray | None = None, clip: float | None = None) -> None:
        """Show (N, 2) points; ``history`` (L, N, 2) draws faint trails, or with ``times`` (L,) whole
        paths coloured by time (viridis: dark = noise, t = 1; yellow = data, t = 0); ``lim`` sets
        the range to ±lim. With ``clip`` only what lies inside [-clip, clip]^2 is drawn (points
        and trail segments outside are left out; far-off predictions would otherwise streak
        across the view) and the title says how many points were outside."""
        self._set_mode("points")
        pts = np.asarray(pts, dtype=np.float64)
        self.outside = 0
        if clip is not None:
            out = outside(pts, clip)
            self.outside = int(out.sum())
            pts = pts[~out]
            self.set_note(f"{self.outside} of {len(out)} outside the view" if self.outside else "")
        self.scatter.setData(pos=pts)
        if history is not None and clip is not None and times is None and len(history) > 1:
            self._show_bands([])
            history = np.asarray(history, np.float64)
            x, y, connect = trail_arrays(history)
            bad = outside(np.stack([x, y], 1), clip)
            connect = connect & ~bad & ~np.append(bad[1:], True)  # no segment touches a point outside
            x, y = np.clip(np.nan_to_num(x), -clip, clip), np.clip(np.nan_to_num(y), -clip, clip)
            self.trails.setData(x, y, connect=connect, skipFiniteCheck=True)
        elif history is not None and times is not None:
            self.trails.setData([], [])
            self._show_bands(time_segments(np.asarray(history, np.float64), times))
        elif history is not None and len(history) > 1:
            self._show_bands([])
            x, y, connect = trail_arrays(history)
            self.trails.setData(x, y, connect=connect, skipFiniteCheck=True)
        else:
            self.trails.setData([], [])
        if lim is not None:
            self.getViewBox().setRange(xRange=(-lim, lim), yRange=(-lim, lim), padding=0)

    def _show_bands(self, segments: list[tuple[float, np.ndarray]]) -> None:
        while len(self.bands) < len(segments):
            item = pg.PlotCurveItem()
            item.setZValue(-1)  # under the points
            self.addItem(item)
            self.bands.append(item)
        for i, item in enumerate(self.bands):
            if i < len(segments):
                t, xy = segments[i]
                r, g, b = (int(c) for c in colormap(1.0 - t))  # t = 1 (noise) dark, t = 0 (data) bright
                item.setPen(pg.mkPen(r, g, b, 110, width=1))
                item.setData(xy[:, 0], xy[:, 1], connect="pairs", skipFiniteCheck=True)
                item.setVisible(True)
            else:
                item.setData([], [])
                item.setVisible(False)

    def clear_content(self) -> None:
        self.image.clear()
        self.scatter.setData([])
        self.trails.setData([], [])
        self._show_bands([])
        self._image_shape = None
        self.outside = 0
        self.set_note("")


def to_pixmap(img: np.ndarray, size: int | tuple[int, int] = 256, smooth: bool = False) -> QPixmap:
    """(H, W, 3) floats in [0, 1] or uint8 -> a pixmap scaled to fit ``size`` (a square side or
    (w, h)), nearest-neighbour unless ``smooth`` (pictures with text in them shrink legibly)."""
    a = np.asarray(img)
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float32), 0, 1) * 255).astype(np.uint8)
    a = np.ascontiguousarray(a[..., :3])
    h, w = a.shape[:2]
    q = QImage(a.data, w, h, 3 * w, QImage.Format_RGB888).copy()
    sw, sh = (size, size) if isinstance(size, int) else size
    mode = Qt.SmoothTransformation if smooth else Qt.FastTransformation
    return QPixmap.fromImage(q).scaled(sw, sh, Qt.KeepAspectRatio, mode)


class ImageLabel(QLabel):
    """A picture that fits its label (aspect kept) and refits when the label resizes, so a small
    render stays readable and never spills over its neighbours. ``smooth``: shrink with filtering
    (labelled figures) instead of nearest-neighbour (pixel art, renders); never enlarged past
    ``max_zoom`` x, so a thin strip does not blow up into a blur."""

    def __init__(self, parent: QWidget | None = None, smooth: bool = False, max_zoom: float = 0.0) -> None:
        super().__init__(parent)
        self.image: np.ndarray | None = None
        self.smooth, self.max_zoom = smooth, max_zoom
        self.setAlignment(Qt.AlignCenter)
        self.setMinimumSize(96, 72)
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Ignored)  # the picture follows the label

    def set_image(self, img: np.ndarray) -> None:
        self.image = np.asarray(img)
        self._fit()

    def clear(self) -> None:
        self.image = None
        super().clear()

    def _fit(self) -> None:
        if self.image is not None:
            w, h = max(16, self.width()), max(16, self.height())
            if self.max_zoom:
                w = min(w, int(self.image.shape[1] * self.max_zoom))
                h = min(h, int(self.image.shape[0] * self.max_zoom))
            self.setPixmap(to_pixmap(self.image, (w, h), self.smooth))

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit()


class PromptEdit(QLineEdit):
    """A prompt box that completes the word under the cursor from the run's vocabulary (Tab or
    Enter takes the highlighted word). Several prompts are separated by "|" (samples cycle
    through them)."""

    def __init__(self, placeholder: str = "prompt, e.g. a red circle left of a blue square",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setPlaceholderText(placeholder)
        self.setClearButtonEnabled(True)
        self._words = QStringListModel([])
        self.completer_ = QCompleter(self._words, self)
        self.completer_.setCaseSensitivity(Qt.CaseInsensitive)
        self.completer_.setCompletionMode(QCompleter.PopupCompletion)
        self.completer_.setWidget(self)
        self.completer_.activated.connect(self.insert_word)
        self.textEdited.connect(self._edited)

    def set_vocabulary(self, words: list[str]) -> None:
        self._words.setStringList(sorted({w for w in words if w}))
        self.setToolTip(f"{len(self._words.stringList())} words in this run's vocabulary; "
                        "separate several prompts with |" if words else "separate several prompts with |")

    def vocabulary(self) -> list[str]:
        return self._words.stringList()

    def prefix(self) -> str:
        """The part of the word under the cursor typed so far."""
        head = self.text()[: self.cursorPosition()]
        return re.split(r"[\s|]", head)[-1]

    def _edited(self, _: str) -> None:
        p = self.prefix()
        if not p:
            self.completer_.popup().hide()
            return
        self.completer_.setCompletionPrefix(p)
        if self.completer_.completionCount() and self.completer_.currentCompletion().lower() != p.lower():
            self.completer_.complete()
        else:
            self.completer_.popup().hide()

    def insert_word(self, word: str) -> None:
        """Replace the word being typed by ``word`` and a space."""
        pos = self.cursorPosition()
        start = pos - len(self.prefix())
        text = self.text()
        self.setText(text[:start] + word + " " + text[pos:].lstrip(" "))
        self.setCursorPosition(start + len(word) + 1)

    def prompts(self) -> list[str] | None:
        """The prompts typed ("|"-separated, blanks dropped); None when there is none."""
        out = [p.strip() for p in self.text().split("|") if p.strip()]
        return out or None

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        popup = self.completer_.popup()
        if popup.isVisible() and event.key() in (Qt.Key_Tab, Qt.Key_Return, Qt.Key_Enter):
            idx = popup.currentIndex()
            self.insert_word(idx.data() if idx.isValid() else self.completer_.currentCompletion())
            popup.hide()
            return
        super().keyPressEvent(event)

    def focusNextPrevChild(self, forward: bool) -> bool:  # noqa: N802 - Qt's name: Tab completes
        return False if self.completer_.popup().isVisible() else super().focusNextPrevChild(forward)
