"""3-D viewers: Gaussian splats (panel "splats") and density volumes or SDF meshes (panel "volume"), one shared base.

Both draw with vispy, imported lazily: without an OpenGL context (e.g. QT_QPA_PLATFORM=offscreen)
the canvas is replaced by a "3D view needs OpenGL" placeholder and the rest of the panel still works.
Models are never called from the GUI thread: a worker job (``ctx.start_job``) rebuilds the run's
model from its newest checkpoint (``load_model``), exports the scene and publishes it on the bus;
a CHECKPOINT event of the selected run (training wrote one) triggers that refresh, so the viewer
follows a run while it trains (a hidden viewer catches up when it is shown). While any job reports
progress the canvas redraws at most ``busy_fps`` times a second (camera moves in between collapse
into one frame) and the NeRF render starts at most every ``busy_render_s``: orbiting must not
starve the trainer. A training view picked (frustum click or the "view" box) shows the model's
render from that camera beside its ground truth, with the PSNR under them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication, QOffscreenSurface, QOpenGLContext
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from genstudio.core import events as ev
from genstudio.core.events import Event
from genstudio.core.faces import shows_scene
from genstudio.core.runs import Run
from genstudio.core.scene.exports import ImageScene, MeshScene, VolumeScene
from genstudio.core.scene.gaussians import Gaussians
from genstudio.qt.panels.base import AppContext, Panel
from genstudio.qt.panels.camera_path import FLY_READY, CameraPathBar
from genstudio.qt.panels.views import ImageLabel, to_pixmap  # noqa: F401 - also this module's API
from genstudio.qt.visuals import Frustums, make_visual
from genstudio.qt.visuals import geometry as geo

log = logging.getLogger(__name__)

SCENE_READY = "scene3d"  # data: {"scene", "step", "dataset", "model", "token"} or {"error", "token"}
VIEW_READY = "view3d"  # data: {"image" (H, W, 3) float in [0, 1], "caption", "depth_range"?: (near, far)}
COMPARE_READY = "compare3d"  # data: {"image", "psnr", "view", "step", "token"} (render of a training view)
NO_GL = "3D view needs OpenGL (no GL context here; run on a desktop, or under xvfb-run with QT_QPA_PLATFORM=xcb)"
MODES = ("rgb", "depth", "opacity", "centres")
PICK_HINT = "Pick a training view (click its frustum, or the view box) to see the render beside its ground truth."
_gl_ok: bool | None = None


def gl_available() -> bool:
    """Whether Qt can make a current OpenGL context (checked once; never on the offscreen platform)."""
    global _gl_ok
    if _gl_ok is None:
        app = QGuiApplication.instance()
        _gl_ok = False
        if app is not None and app.platformName() not in ("offscreen", "minimal"):
            ctx, surf = QOpenGLContext(), QOffscreenSurface()
            surf.create()
            _gl_ok = bool(ctx.create() and ctx.makeCurrent(surf))
            if _gl_ok:
                ctx.doneCurrent()
    return _gl_ok


def turntable_pose(eye: np.ndarray, target: np.ndarray) -> tuple[float, float, float]:
    """(azimuth, elevation, distance) of vispy's TurntableCamera (up +z) with its eye at ``eye``
    looking at ``target``: eye = target + d (sin az cos el, -cos az cos el, sin el) (measured)."""
    off = np.asarray(eye, np.float64) - np.asarray(target, np.float64)
    d = float(np.linalg.norm(off))
    return math.degrees(math.atan2(off[0], -off[1])), math.degrees(math.asin(np.clip(off[2] / d, -1, 1))), d


# the splat shader's depth colours (near yellow -> far navy), so every depth view reads the same way
DEPTH_NEAR = np.array([0.99, 0.91, 0.15], np.float32)
DEPTH_FAR = np.array([0.13, 0.15, 0.55], np.float32)


def depth_rgb(t: np.ndarray) -> np.ndarray:
    """Depth fractions in [0, 1] (near -> far) -> (..., 3) float colours, as the splat shader mixes them."""
    t = np.clip(np.nan_to_num(np.asarray(t, np.float32), nan=1.0), 0.0, 1.0)[..., None]
    return DEPTH_NEAR * (1 - t) + DEPTH_FAR * t


def depth_image(depth: np.ndarray, opacity: np.ndarray | None = None) -> tuple[np.ndarray, tuple[float, float]]:
    """A depth render (H, W) coloured between its robust near/far (2-98 % of the covered pixels)
    and faded to black where nothing was hit; returns (image (H, W, 3), (near, far))."""
    d = np.asarray(depth, np.float32)
    a = np.ones_like(d) if opacity is None else np.clip(np.asarray(opacity, np.float32), 0, 1)
    hit = d[a > 0.5]
    near, far = (np.percentile(hit, [2, 98]) if hit.size else (float(d.min()), float(d.max())))
    img = depth_rgb((d - near) / max(float(far - near), 1e-6)) * a[..., None]
    return img, (float(near), float(far))


class DepthBar(QWidget):
    """A colour bar for the depth mode: the near -> far gradient with its two depths written under."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar, self.near, self.far = QLabel(), QLabel(""), QLabel("")
        self.bar.setFixedHeight(12)
        self.bar.setScaledContents(True)
        self.bar.setPixmap(to_pixmap(depth_rgb(np.linspace(0, 1, 256))[None], 256))
        self.bar.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Fixed)
        self.far.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(1)
        lay.addWidget(self.bar)
        row = QHBoxLayout()
        row.addWidget(self.near)
        row.addWidget(self.far)
        lay.addLayout(row)
        self.range: tuple[float, float] | None = None

    def set_range(self, near: float, far: float, what: str = "view depth") -> None:
        self.range = (float(near), float(far))
        self.near.setText(f"near {near:.3g}")
        self.far.setText(f"far {far:.3g} ({what})")


def throttled_canvas(min_interval: Callable[[], float], **kw: Any) -> Any:
    """A vispy SceneCanvas that draws at most once per ``min_interval()`` seconds: an update asked
    for sooner is deferred to one timer shot, so a burst of camera moves costs one frame. Mouse
    drags are coalesced the same way (only the newest move is handled: vispy's cameras drag from
    the press position, so nothing is lost), since each camera update costs milliseconds of Python.
    While capped, each frame is finished (glFinish) so ``draw_s`` (smoothed) is its real cost,
    software GL included. vispy is imported here (the module stays importable without GL)."""
    from vispy import gloo, scene

    class ThrottledCanvas(scene.SceneCanvas):
        def __init__(self) -> None:
            self.min_interval, self.last_draw, self.draws, self.draw_s = min_interval, 0.0, 0, 0.0
            self._t0 = self.last_move = 0.0
            self.moves = 0  # mouse moves handed to the scene (the rest were coalesced)
            self._move: Any = None
            self.deferred = QTimer(singleShot=True)
            self.deferred.timeout.connect(lambda: scene.SceneCanvas.update(self))
            self.deferred_move = QTimer(singleShot=True)
            self.deferred_move.timeout.connect(self._flush_move)
            super().__init__(**kw)
            self.events.draw.connect(self._begin, position="first")
            self.events.draw.connect(self._end, position="last")

        def _begin(self, event: Any) -> None:
            self._t0 = time.perf_counter()

        def _end(self, event: Any) -> None:
            if self.min_interval() > 0:
                gloo.gl.glFinish()
            self.last_draw = time.perf_counter()
            cost = self.last_draw - self._t0
            self.draw_s = cost if not self.draws else 0.7 * self.draw_s + 0.3 * cost
            self.draws += 1

        def _process_mouse_event(self, event: Any) -> None:
            if event.type != "mouse_move":
                self._flush_move()  # a press / release / wheel comes after the moves before it
                super()._process_mouse_event(event)
                return
            self._move = event
            wait = self.last_move + self.min_interval() - time.perf_counter()
            if wait <= 0:
                self._flush_move()
            elif not self.deferred_move.isActive():
                self.deferred_move.start(max(1, math.ceil(wait * 1000)))

        def _flush_move(self) -> None:
            event, self._move = self._move, None
            self.deferred_move.stop()
            if event is not None:
                self.last_move = time.perf_counter()
                self.moves += 1
                super()._process_mouse_event(event)

        def update(self, node: Any = None) -> None:
            wait = self.last_draw + self.min_interval() - time.perf_counter()
            if wait <= 0 or self._drawing:
                super().update(node)
            elif not self.deferred.isActive():
                self.deferred.start(max(1, math.ceil(wait * 1000)))

    return ThrottledCanvas()


class SceneViewerPanel(Panel):
    """Shared viewer: vispy canvas (or placeholder), camera switch, training frustums, render vs
    ground truth of a training view, depth colour bar, scene refresh through worker jobs.
    Subclasses say which scene item types they draw (``shows``); a run is theirs when its plugin's
    Scene face exports one of them."""

    shows: ClassVar[tuple[type, ...]] = ()  # the scene item types this viewer draws
    file_io: ClassVar[bool] = False
    lod: ClassVar[bool] = False
    hint: ClassVar[str] = ""
    live_render: ClassVar[bool] = False  # a worker render from the viewer camera beside the canvas
    busy_fps: ClassVar[float] = 12.0  # redraw cap while a job reports progress (0 = no cap)
    busy_s: ClassVar[float] = 1.5  # a job counts as running this long after its last PROGRESS event
    busy_share: ClassVar[float] = 0.04  # most of the wall time frames may take while a job runs

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self._run: Run | None = None
        self._token = 0
        self.scene_item: Any = None
        self.dataset: Any = None
        self.model: Any = None  # only ever used inside worker jobs
        self.step: int | None = None
        self.nodes: dict[str, Any] = {}
        self.canvas: Any = None
        self.view: Any = None
        self.cameras: dict[str, Any] = {}
        self._press: tuple[float, float] | None = None
        self._scene_run: str | None = None  # run whose scene is shown (None: none, or a file)
        self._busy_until = 0.0
        self._missed = False  # a checkpoint arrived while hidden: refresh when shown
        self._compare_want: int | None = None  # training view waiting for the compare job

        top = QHBoxLayout()
        self.run_label = QLabel("<i>no run</i>")  # which run the viewer is about (it follows the selection)
        self.run_label.setSizePolicy(QSizePolicy.Maximum, QSizePolicy.Preferred)
        self.run_label.setMaximumWidth(200)  # a long run name is cut, it never widens the window
        top.addWidget(self.run_label)
        self.open_btn, self.save_btn = QPushButton("Open…"), QPushButton("Save…")
        if self.file_io:
            self.open_btn.clicked.connect(self._open_dialog)
            self.save_btn.clicked.connect(self._save_dialog)
        self.camera_box = QComboBox()
        self.camera_box.addItems(["turntable", "fly"])
        self.camera_box.currentTextChanged.connect(self.set_camera)
        self.mode_box = QComboBox()
        self.mode_box.addItems(list(MODES))
        self.mode_box.currentTextChanged.connect(self._mode_changed)
        self.view_box = QSpinBox()  # training view: render vs ground truth (-1: none)
        self.view_box.setRange(-1, -1)
        self.view_box.setSpecialValueText("–")
        self.view_box.setToolTip("training view: the model's render from that camera beside its ground truth")
        self.view_box.valueChanged.connect(lambda i: self.select_view(i) if i >= 0 else None)
        self.budget = QSlider(Qt.Horizontal)
        self.budget.setRange(1, 1000)
        self.budget.setValue(1000)
        self.budget.setToolTip("point budget (level of detail): fraction of splats drawn")
        self.budget.valueChanged.connect(self._budget_changed)
        self.budget_label = QLabel("")
        for w in ([self.open_btn, self.save_btn] if self.file_io else []) + [QLabel("camera"), self.camera_box,
                                                                          QLabel("mode"), self.mode_box,
                                                                          QLabel("view"), self.view_box]:
            top.addWidget(w)
        self._extra_controls(top)
        if self.lod:
            top.addWidget(QLabel("budget"))
            top.addWidget(self.budget, 1)
            top.addWidget(self.budget_label)
        top.addStretch(0 if self.lod else 1)

        self.splitter = QSplitter(Qt.Horizontal)
        self._build_canvas()
        side = QWidget()
        sl = QVBoxLayout(side)
        # the model's render from the viewer camera (NeRF / fields), then a training view: render | truth
        self.side_caption, self.side_image = QLabel(""), ImageLabel()
        self.side_caption.setVisible(self.live_render)
        self.side_image.setVisible(self.live_render)
        sl.addWidget(self.side_caption)
        sl.addWidget(self.side_image, 2)
        pair = QHBoxLayout()
        self.cmp_caption, self.cmp_image = QLabel(""), ImageLabel()
        self.gt_caption, self.gt_image = QLabel(""), ImageLabel()
        for cap, img in ((self.cmp_caption, self.cmp_image), (self.gt_caption, self.gt_image)):
            col = QVBoxLayout()
            cap.setWordWrap(True)
            col.addWidget(cap)
            col.addWidget(img, 1)
            pair.addLayout(col, 1)
        sl.addLayout(pair, 2)
        self.psnr_label = QLabel("")
        self.psnr_label.setAlignment(Qt.AlignCenter)
        sl.addWidget(self.psnr_label)
        self.depth_bar = DepthBar()
        self.depth_bar.setVisible(False)
        sl.addWidget(self.depth_bar)
        self.splitter.addWidget(side)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        side.setMinimumWidth(260)
        self._sized = False  # the splitter is split 65 / 35 when first shown
        self._stale = False  # training moved on while a scene job was running: refresh after it
        self._retry = QTimer(self, singleShot=True, interval=500)
        self._retry.timeout.connect(self._refresh_if_stale)
        self.status = QLabel(self.hint)
        self.status.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        self.path_bar = CameraPathBar(self)  # keyframes and "Export fly-through…"
        lay.addWidget(self.path_bar)
        lay.addWidget(self.splitter, 1)
        lay.addWidget(self.status)

    def _extra_controls(self, top: QHBoxLayout) -> None:
        """Subclass controls for the top row (the NeRF viewer's iso level)."""

    # -- canvas -----------------------------------------------------------------------------------
    def _build_canvas(self) -> None:
        if gl_available():
            try:
                from vispy import scene
                self.canvas = throttled_canvas(self.redraw_interval, app="pyside6", keys="interactive",
                                               bgcolor="black", show=False)
                self.view = self.canvas.central_widget.add_view()
                self.cameras = {"turntable": scene.TurntableCamera(fov=40, distance=5.0, elevation=25, azimuth=30,
                                                                   up="+z"),
                                "fly": scene.FlyCamera(fov=40)}
                self.view.camera = self.cameras["turntable"]
                self.canvas.events.mouse_press.connect(self._mouse_press)
                self.canvas.events.mouse_release.connect(self._mouse_release)
                self.canvas.events.draw.connect(self._after_draw, position="last")
                self.splitter.addWidget(self.canvas.native)
                return
            except Exception as exc:  # noqa: BLE001 - a broken GL stack must not take the panel down
                log.warning("vispy canvas unavailable: %s", exc)
                self.canvas = self.view = None
        self.placeholder = QLabel(NO_GL)
        self.placeholder.setWordWrap(True)
        self.placeholder.setAlignment(Qt.AlignCenter)
        self.splitter.addWidget(self.placeholder)

    def busy(self) -> bool:
        """Whether a job (training, evaluation) reported progress lately: then the viewer holds back."""
        return time.monotonic() < self._busy_until

    def redraw_interval(self) -> float:
        """Seconds between two canvas frames at least: 0 while nothing trains; else the fps cap, or
        longer where a frame is costly (software GL), so drawing takes at most ``busy_share`` of the time."""
        if self.busy_fps <= 0 or not self.busy():
            return 0.0
        return max(1.0 / self.busy_fps, getattr(self.canvas, "draw_s", 0.0) / self.busy_share)

    def set_camera(self, name: str) -> None:
        if self.view is not None and name in self.cameras:
            self.view.camera = self.cameras[name]

    def _mode_changed(self, mode: str) -> None:
        self.depth_bar.setVisible(mode == "depth")
        self.set_mode(mode)

    def set_mode(self, mode: str) -> None:
        """Render mode (rgb / depth / opacity / centres); subclasses apply it."""

    def _budget_changed(self) -> None:
        pass

    def show_item(self, key: str, item: Any) -> Any:
        """Replace the drawn item ``key`` by a visual for ``item`` (None removes it)."""
        old = self.nodes.pop(key, None)
        if old is not None:
            old.parent = None
        if self.view is None or item is None:
            return None
        node = make_visual(item, self.view.scene)
        self.nodes[key] = node
        self.canvas.update()
        return node

    def clip(self) -> tuple[np.ndarray, tuple[int, int]]:
        """World -> clip matrix of the current view and the canvas size in logical pixels."""
        w, h = (int(v) for v in self.canvas.size)
        to_canvas = np.asarray(self.view.scene.node_transform(self.canvas.scene).map(np.eye(4)), np.float64).T
        to_ndc = np.array([[2 / w, 0, 0, -1], [0, -2 / h, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1]])
        return to_ndc @ to_canvas, (w, h)

    def view_camera(self, size: int) -> Any:
        """The viewer camera as a core Camera with about ``size``^2 pixels (a wide view stays legible)."""
        from genstudio.core.scene.cameras import Camera, look_at
        if self.view is not None:
            clip, (w, h) = self.clip()
            c2w, fx, fy = geo.camera_from_clip(clip, w, h)
            cam = Camera(c2w, fx, fy, w / 2, h / 2, w, h)
        else:  # no GL: a fixed orbit view still shows the model
            cam = Camera(look_at((3.0, -3.0, 2.0)), 64.0, 64.0, 32.0, 32.0, 64, 64)
        s = size / math.sqrt(cam.width * cam.height)  # as many pixels as a size x size square
        return cam.resized(max(8, round(cam.width * s)), max(8, round(cam.height * s)))

    def render_image(self) -> np.ndarray:
        """The canvas as an (H, W, 4) uint8 array (tests, screenshots)."""
        return self.canvas.render()

    # -- frustums: click one to jump to that training view ----------------------------------------
    def _mouse_press(self, event: Any) -> None:
        self._press = tuple(event.pos[:2])

    def _mouse_release(self, event: Any) -> None:
        if self._press is not None and np.hypot(*(np.asarray(event.pos[:2]) - self._press)) < 4:
            self.pick_at(*event.pos[:2])
        self._press = None

    def training_cameras(self) -> list[Any]:
        return list(getattr(self.dataset, "cameras", None) or [])

    def pick_at(self, x: float, y: float) -> int | None:
        """Jump to the training camera whose frustum (eye or image-plane centre) is under (x, y)."""
        cams = self.training_cameras()
        if not cams or self.view is None:
            return None
        fr = Frustums(cams, self._frustum_scale())
        seg = fr.segments().reshape(len(cams), 16, 3)
        pts = np.concatenate([fr.centres(), seg[:, [3, 7, 11, 15]].mean(1)])
        clip, size = self.clip()
        i = geo.pick_nearest(geo.project_points(clip, pts, size), (x, y))
        if i is None:
            return None
        self.select_view(i % len(cams))
        return i % len(cams)

    def select_view(self, i: int) -> None:
        """Training view ``i``: look through its camera, show its ground truth and, in a worker, the
        model's render from it with the PSNR between the two (redone at each new checkpoint)."""
        if not 0 <= i < len(self.training_cameras()):
            return
        self.view_box.blockSignals(True)
        self.view_box.setValue(i)
        self.view_box.blockSignals(False)
        self.jump_to_view(i)
        self.request_compare(i)

    def jump_to_view(self, i: int) -> None:
        """Look through training camera ``i`` and show its ground-truth image beside the render."""
        cam, img = self.dataset.view(i)
        if self.view is not None:
            self.camera_box.setCurrentText("turntable")
            tt = self.cameras["turntable"]
            eye = cam.c2w[:3, 3].numpy().astype(np.float64)
            fwd = -cam.c2w[:3, 2].numpy().astype(np.float64)
            d = float(np.linalg.norm(eye))
            target = eye + d * fwd
            az, el, dist = turntable_pose(eye, target)
            tt.fov = math.degrees(cam.fov_y)
            tt.center = tuple(target)
            tt.azimuth, tt.elevation, tt.distance = az, el, dist
        self.gt_caption.setText(f"ground truth: training view {i}")
        self.gt_image.set_image(img.numpy())

    def request_compare(self, i: int) -> None:
        """Render training view ``i`` with the shown model in a worker (one at a time; the newest wins)."""
        if self.model is None or not callable(getattr(self.model, "render", None)):
            return
        name = f"compare:{self.panel_id}"
        if self.ctx.job_running(name):
            self._compare_want = i
            return
        self._compare_want = None
        model, ds, bus, viewer, token, step = self.model, self.dataset, self.ctx.bus, self.panel_id, self._token, self.step
        run_id = self._run.id if self._run is not None else ""

        def job(control: Any) -> Any:
            from genstudio.core.scene.render import psnr
            cam, gt = ds.view(i)
            pred = model.render(cam).clamp(0, 1)
            bus.emit(COMPARE_READY, run_id, image=pred.numpy(), psnr=psnr(pred, gt), view=i, step=step, token=token,
                     viewer=viewer)
            yield

        self.cmp_caption.setText(f"render: view {i} …")
        self.ctx.start_job(name, self._run, job)

    def _show_compare(self, data: dict[str, Any]) -> None:
        step = data.get("step")
        self.cmp_caption.setText(f"render: training view {data['view']}")
        self.cmp_image.set_image(data["image"])
        self.psnr_label.setText(f"PSNR {data['psnr']:.2f} dB (view {data['view']}"
                                + (f", step {step:,})" if step is not None else ")"))

    def _frustum_scale(self) -> float:
        cams = self.training_cameras()
        if not cams:
            return 0.3
        return 0.08 * float(np.median([c.c2w[:3, 3].norm().item() for c in cams]))

    def _after_draw(self, event: Any) -> None:
        """Hook after each frame (the NeRF viewer follows camera moves here)."""

    # -- runs and live updates --------------------------------------------------------------------
    def _ours(self, run: Run | None) -> bool:
        if run is None:
            return False
        try:
            cls = self.ctx.registry.get(run.info()["plugin"])
        except Exception:  # noqa: BLE001 - unknown plugin: not ours
            return False
        return shows_scene(cls, self.shows)

    @property
    def job_name(self) -> str:
        return f"scene:{self.panel_id}"

    def set_run(self, run: Run | None) -> None:
        changed = (run.id if run else None) != (self._run.id if self._run else None)
        self._run = run
        if changed and self._scene_run is not None:  # the shown scene was the old run's
            self.clear_scene()
        ours = self._ours(run)
        self._name_run(run, ours)
        if ours:
            self.refresh()

    def _name_run(self, run: Run | None, ours: bool) -> None:
        from genstudio.qt.panels.runs import short_name
        if run is None:
            self.run_label.setText("<i>no run</i>")
            self.run_label.setToolTip("")
            return
        name = short_name(run.id)
        self.run_label.setText(f"<b>{name}</b>" if ours else f"<i>{name}: not a {self.title} run</i>")
        self.run_label.setToolTip(run.id)

    def clear_scene(self) -> None:
        """Drop the shown scene, its model and its renders."""
        self._token += 1  # a scene job still running for the old run no longer lands here
        self.scene_item = self.model = self.step = None
        self._scene_run = None
        self._compare_want = None
        self.show_item("scene", None)
        self.show_item("frustums", None)
        self.view_box.blockSignals(True)
        self.view_box.setRange(-1, -1)
        self.view_box.blockSignals(False)
        for w in (self.side_image, self.side_caption, self.gt_image, self.gt_caption, self.cmp_image,
                  self.cmp_caption, self.psnr_label):
            w.clear()
        self.status.setText(self.hint)

    def accepts(self, item: Any) -> bool:
        """Whether this viewer draws ``item`` (an instance of one of its ``shows`` types)."""
        return isinstance(item, self.shows)

    def _mine(self, e: Event) -> bool:
        """A scene or view event of this viewer's own jobs (the other viewer's carry its id)."""
        return e.data.get("viewer", self.panel_id) == self.panel_id

    def refresh(self) -> bool:
        """Load the selected run's newest checkpoint in a worker and export its scene."""
        run = self._run
        if run is None:
            return False
        if self.ctx.job_running(self.job_name):
            self._stale = True
            self._retry.start()
            return False
        self._stale = self._missed = False
        self._token += 1
        token, bus, viewer = self._token, self.ctx.bus, self.panel_id

        def job(control: Any) -> Any:
            from genstudio.core.jobs import load_model
            try:
                model, ds, step = load_model(run, "cpu")
                control.check()
                scene = model.export_scene()
            except Exception as exc:  # noqa: BLE001 - e.g. no checkpoint yet: say so in the panel
                bus.emit(SCENE_READY, run.id, error=f"{exc.__class__.__name__}: {exc}", token=token, viewer=viewer)
                return None
            bus.emit(SCENE_READY, run.id, scene=scene, step=step, dataset=getattr(ds, "scene", None), model=model,
                     token=token, viewer=viewer)
            yield step
            return step

        if self.scene_item is None:
            self.status.setText(f"loading the scene of {run.id}…")
        self.ctx.start_job(self.job_name, run, job)
        return True

    def _refresh_if_stale(self) -> None:
        if self._stale:
            self.refresh()

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if not self._sized and self.width() > 400:
            self._sized = True
            w = self.splitter.width()
            self.splitter.setSizes([round(0.65 * w), w - round(0.65 * w)])
        if self._missed:
            self.refresh()

    def on_events(self, events: list[Event]) -> None:
        current = self._run.id if self._run is not None else ""  # "": a file or scene shown without a run
        refresh = False
        for e in events:
            if e.kind == ev.PROGRESS:  # any job's: hold back redraws and renders while it runs
                self._busy_until = time.monotonic() + self.busy_s
            if e.run_id != current:
                continue
            if e.kind in (SCENE_READY, VIEW_READY, COMPARE_READY) and not self._mine(e):
                continue
            if e.kind == SCENE_READY and e.data.get("token") == self._token:
                if "error" in e.data:
                    self.status.setText(f"no scene yet ({e.data['error']})")
                elif self.set_scene(e.data["scene"], dataset=e.data.get("dataset"), model=e.data.get("model"),
                                    step=e.data.get("step"),
                                    keep_view=self.scene_item is not None and self._scene_run == (current or None)
                                    ) is not False:
                    self._scene_run = current or None
            elif e.kind == VIEW_READY:
                self.show_render(e.data["image"], e.data.get("caption", ""))
                if e.data.get("depth_range") is not None:
                    self.depth_bar.set_range(*e.data["depth_range"], "distance along the ray")
            elif e.kind == COMPARE_READY:
                if e.data.get("token") == self._token:  # else an older model's (or run's) render
                    self._show_compare(e.data)
                if self._compare_want is not None:  # asked for while that job ran
                    self.request_compare(self._compare_want)
            elif e.kind == FLY_READY and self._mine(e):
                self.path_bar.done(e.data)
            elif e.kind == ev.CHECKPOINT and self._ours(self._run):
                refresh = True
        if refresh:
            if self.isVisible():
                self.refresh()
            else:  # nobody looks: load it when the viewer is shown
                self._missed = True

    def _refused(self, item: Any) -> bool:
        """True (and says so) when ``item`` is not a scene this viewer draws."""
        if self.accepts(item):
            return False
        self.status.setText(f"{type(item).__name__} is not drawn here ({self.title} shows "
                            f"{', '.join(t.__name__ for t in self.shows)})")
        return True

    def set_scene(self, item: Any, *, dataset: Any = None, model: Any = None, step: int | None = None,
                  keep_view: bool = False) -> bool:
        """Show an exported scene (and the training cameras of its dataset, if any); False (and
        nothing changes) for a scene of item types this viewer does not draw. ``keep_view``: a newer
        scene of the run already shown (a checkpoint while training): the camera, the frustums and
        the picked training view stay."""
        if self._refused(item):
            return False
        self.scene_item, self.model, self.step = item, model, step
        new_cams = dataset is not None and dataset is not self.dataset
        if dataset is not None:
            self.dataset = dataset
        cams = self.training_cameras()
        bg = getattr(model, "background", None)  # draw on the colour the model was trained against
        if self.canvas is not None and bg is not None:
            self.canvas.bgcolor = tuple(float(v) for v in np.broadcast_to(np.asarray(bg.cpu() if hasattr(bg, "cpu")
                                                                                     else bg, np.float32), (3,)))
        self.draw_scene(item, keep_view)
        if new_cams or not keep_view:
            self.show_item("frustums", Frustums(cams, self._frustum_scale()) if cams else None)
            self.view_box.blockSignals(True)
            self.view_box.setRange(-1, len(cams) - 1)
            self.view_box.blockSignals(False)
            if self.view_box.value() < 0:
                self.cmp_caption.setText(PICK_HINT if cams else "")
        if keep_view and self.view_box.value() >= 0 and model is not None:
            self.request_compare(self.view_box.value())  # the same view, rendered by the newer model
        self.status.setText(self.describe() + (f" (step {step:,})" if step is not None else ""))
        return True

    def draw_scene(self, item: Any, keep_view: bool) -> None:
        """Draw ``item`` (subclasses update their visual in place when ``keep_view``)."""
        self.show_item("scene", item)

    def describe(self) -> str:
        return type(self.scene_item).__name__

    def frame(self, lo: np.ndarray, hi: np.ndarray) -> None:
        """Point the turntable at the box [lo, hi] from a distance that shows all of it."""
        if self.view is None:
            return
        tt = self.cameras["turntable"]
        tt.center = tuple(float(v) for v in (np.asarray(lo) + np.asarray(hi)) / 2)
        tt.distance = 1.3 * max(float(np.linalg.norm(np.asarray(hi) - np.asarray(lo))), 1e-3)

    def show_render(self, image: np.ndarray, caption: str = "") -> None:
        self.side_caption.setText(caption)
        self.side_image.set_image(image)


class SplatViewerPanel(SceneViewerPanel):
    """Gaussian splats as EWA ellipses; open / save .ply and .splat."""

    panel_id = "splats"
    order = 80
    tools = ("scene",)
    title = "Splats"
    shows = (Gaussians,)  # scene items this viewer draws (a plugin's Scene face says what it exports)
    file_io = True
    lod = True
    moving_budget: ClassVar[int] = 100_000  # splats drawn while the camera moves (each frame re-sorts them)
    rest_ms: ClassVar[int] = 300  # the full budget comes back once the camera rests this long
    hint = ("Open a .ply / .splat file or select a splatting run (it updates at each checkpoint while it "
            "trains); click a camera frustum, or pick a view, to compare the render with its ground truth.")

    def splats(self) -> Any:
        node = self.nodes.get("scene")
        return node if node is not None and hasattr(node, "budget") else None

    def set_mode(self, mode: str) -> None:
        if (s := self.splats()) is not None:
            s.mode = mode

    def _want_budget(self, count: int) -> int:
        v = self.budget.value()
        return max(1, round(count * v / 1000)) if v < 1000 else 1 << 30  # all of them, however many

    def _budget_changed(self) -> None:
        s = self.splats()
        if s is None:
            self.budget_label.setText("")
            return
        if s.budget != (want := self._want_budget(s.count)):
            s.budget = want
        self.budget_label.setText(f"{s.drawn:,} / {s.count:,}")

    def draw_scene(self, item: Any, keep_view: bool) -> None:
        s = self.splats()
        if keep_view and s is not None:  # same visual, new data: one upload, no new GL program
            from genstudio.qt.visuals.splat import splat_arrays
            s._budget = self._want_budget(len(item))  # the visual has no public way to set both at once
            s.set_data(splat_arrays(item))
        else:
            self.show_item("scene", item)

    def set_scene(self, item: Any, *, keep_view: bool = False, **kw: Any) -> bool:
        if not super().set_scene(item, keep_view=keep_view, **kw):
            return False
        if self.splats() is not None:
            self.splats().mode = self.mode_box.currentText()
            self._budget_changed()
            if len(item) and not keep_view:  # the bulk of the splats (2-98 %), padded by a 3-sigma extent
                m = item.means.detach().cpu().numpy()
                pad = 3 * float(np.percentile(item.scales.detach().cpu().numpy().max(1), 98))
                self.frame(np.percentile(m, 2, 0) - pad, np.percentile(m, 98, 0) + pad)
        return True

    def _after_draw(self, event: Any) -> None:
        s = self.splats()
        if s is not None and self.depth_bar.isVisible():  # the depth range the shader just used
            near, far = (float(v) for v in s.shared_program["u_depth"])
            if self.depth_bar.range != (near, far):
                self.depth_bar.set_range(near, far)
        if s is not None:
            self._coarse_while_moving(s)

    def _coarse_while_moving(self, s: Any) -> None:
        """Low resolution while the camera moves: at most ``moving_budget`` splats (sorting 1M on
        the CPU costs ~0.1 s a frame, and holds the GIL from a training run); all once it rests."""
        clip, _ = self.clip()
        last, self._last_clip = getattr(self, "_last_clip", None), clip
        if last is None or np.allclose(clip, last, rtol=1e-6, atol=1e-9):
            return
        if s.budget > self.moving_budget:
            s.budget = self.moving_budget
        if getattr(self, "_rest", None) is None:
            self._rest = QTimer(self, singleShot=True, interval=self.rest_ms)
            self._rest.timeout.connect(self._budget_changed)  # the slider's budget again
        self._rest.start()

    def describe(self) -> str:
        n = len(self.scene_item) if self.scene_item is not None else 0
        return f"{n:,} Gaussians"

    def open_file(self, path: str) -> bool:
        from pathlib import Path

        from genstudio.core.scene.io import SceneFileError, load_scene
        try:
            g = load_scene(path)
        except (SceneFileError, OSError) as exc:
            self.ctx.show_error(f"Cannot open {path}: {exc}")
            return False
        self.dataset = None
        self._scene_run = None  # a file: no run's
        self.run_label.setText(f"<i>file {Path(path).name}</i>")
        self.run_label.setToolTip(str(path))
        return self.set_scene(g)

    def save_file(self, path: str) -> bool:
        from genstudio.core.scene.io import SceneFileError, save_scene
        if self.scene_item is None:
            self.ctx.show_error("Nothing to save: open a file or select a splatting run first.")
            return False
        try:
            save_scene(path, self.scene_item)
        except (SceneFileError, OSError, ValueError) as exc:
            self.ctx.show_error(f"Cannot save {path}: {exc}")
            return False
        self.ctx.status_message(f"saved {path}")
        return True

    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open Gaussian splats", "", "Gaussian splats (*.ply *.splat)")
        if path:
            self.open_file(path)

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save Gaussian splats", "", "INRIA 3DGS (*.ply);;antimatter15 (*.splat)")
        if path:
            self.save_file(path)


ISO_DECADES = (-2.0, 3.0)  # the iso slider spans density 10^-2 .. 10^3 (log scale, 100 ticks a decade)


class NerfViewerPanel(SceneViewerPanel):
    """The NeRF model rendered from the viewer camera (worker job; coarse while moving, refined when
    still) beside its density field drawn as an iso-surface at the slider's level. Neural-field SDF
    runs show their marching-cubes mesh the same way, with the sphere-traced render beside it."""

    panel_id = "volume"  # density volumes and SDF meshes (NeRF, neural fields)
    order = 90
    tools = ("scene",)
    title = "NeRF / fields"
    shows = (VolumeScene, MeshScene, ImageScene)
    hint = ("Select a NeRF or neural-field (SDF) run: the density iso-surface (level: the iso slider) or SDF "
            "mesh is drawn here and updates at each checkpoint, the model's render from this view on the right.")
    live_render = True
    moving_size: ClassVar[int] = 32  # render sizes: the side of a square of as many pixels
    still_size: ClassVar[int] = 96  # refined render while a job trains
    idle_size: ClassVar[int] = 128  # refined render when nothing else runs
    still_ms: ClassVar[int] = 400
    busy_render_s: ClassVar[float] = 0.3  # at most one render start this often while a job trains

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self._want: Any = None  # the camera waiting for the worker
        self._last_clip: np.ndarray | None = None
        self._last_start = 0.0
        self._still = QTimer(self, singleShot=True, interval=self.still_ms)
        self._still.timeout.connect(lambda: self.request_render(self.refined_size()))
        self._poll = QTimer(self, interval=50)
        self._poll.timeout.connect(self._start_pending)
        self._iso_timer = QTimer(self, singleShot=True, interval=80)  # a dragged slider re-meshes once it rests
        self._iso_timer.timeout.connect(self._redraw_volume)
        self.renders = 0
        self.iso_meshes = 0

    def _extra_controls(self, top: QHBoxLayout) -> None:
        self.iso = QSlider(Qt.Horizontal)
        lo, hi = ISO_DECADES
        self.iso.setRange(round(lo * 100), round(hi * 100))
        self.iso.setMinimumWidth(120)
        self.iso.setToolTip("iso level: the density (sigma) whose surface is drawn; marching cubes re-runs")
        self.iso.setEnabled(False)
        self.iso.valueChanged.connect(self._iso_changed)
        self.iso_label = QLabel("")
        top.addWidget(QLabel("iso"))
        top.addWidget(self.iso, 1)
        top.addWidget(self.iso_label)

    def refined_size(self) -> int:
        return self.still_size if self.busy() else self.idle_size

    # -- density iso level -----------------------------------------------------------------------
    @property
    def iso_level(self) -> float:
        return float(10.0 ** (self.iso.value() / 100.0))

    def set_iso_level(self, level: float) -> None:
        """Move the slider to ``level`` (clamped to its range); the surface is re-extracted."""
        lo, hi = ISO_DECADES
        self.iso.setValue(round(100 * float(np.clip(np.log10(max(level, 1e-12)), lo, hi))))

    def _iso_changed(self) -> None:
        self._iso_label()
        self._iso_timer.start()

    def _iso_label(self) -> None:
        d = getattr(self.scene_item, "density", None)
        if d is None:
            self.iso_label.setText("")
            return
        level = self.iso_level
        inside = float((d >= level).mean())
        self.iso_label.setText(f"σ = {level:.3g} ({100 * inside:.1f} % of the box denser)" if d.max() > level
                               else f"σ = {level:.3g}: nothing that dense (max {float(d.max()):.3g})")

    def _redraw_volume(self) -> None:
        if isinstance(self.scene_item, VolumeScene):
            self.show_item("scene", self.iso_scene(self.scene_item))

    def iso_scene(self, item: VolumeScene) -> Any:
        """``item`` as a mesh at the slider's level (an empty mesh when no voxel is that dense)."""
        from genstudio.qt.visuals import volume_mesh
        self.iso_meshes += 1
        d = item.density
        if not float(d.min()) < self.iso_level < float(d.max()):
            return MeshScene(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32))
        return volume_mesh(dataclasses.replace(item, suggested_level=self.iso_level))

    def draw_scene(self, item: Any, keep_view: bool) -> None:
        volume = isinstance(item, VolumeScene)
        self.iso.setEnabled(volume)
        if not volume:
            self.iso_label.setText("")
            self.show_item("scene", item)
            return
        if not keep_view:  # a new run: its suggested level, or its densest 3 % where that is too high
            d = item.density
            self.iso.blockSignals(True)
            self.set_iso_level(min(float(item.suggested_level), float(np.percentile(d, 97))))
            self.iso.blockSignals(False)
        self._iso_label()
        self.show_item("scene", self.iso_scene(item))

    # -- the model's render from the viewer camera ------------------------------------------------
    def set_mode(self, mode: str) -> None:
        if self.model is not None:
            self.request_render(self.refined_size())

    def request_render(self, size: int) -> None:
        if self.model is None:
            return
        self._want = self.view_camera(size)
        self._poll.start()

    def _start_pending(self) -> None:
        name = f"render:{self.panel_id}"
        if self._want is None:
            self._poll.stop()
            return
        if self.ctx.job_running(name) or (self.busy() and time.monotonic() - self._last_start < self.busy_render_s):
            return
        cam, self._want = self._want, None
        self._last_start = time.monotonic()
        model, bus, mode, viewer = self.model, self.ctx.bus, self.mode_box.currentText(), self.panel_id
        run_id = self._run.id if self._run is not None else ""

        def job(control: Any) -> Any:
            t = time.perf_counter()
            if hasattr(model, "render_all"):
                out = {k: v.numpy() for k, v in model.render_all(cam).items()}
            else:  # plugins with only the SceneModel face (neural fields)
                out = {"rgb": model.render(cam, width=cam.width, height=cam.height).numpy()}
            extra: dict[str, Any] = {}
            if mode == "depth" and "depth" in out:
                img, extra["depth_range"] = depth_image(out["depth"], out.get("opacity"))
            else:
                img = out.get(mode, out["rgb"]) if mode != "centres" else out["rgb"]
                if img.ndim == 2:
                    img = np.repeat((img / max(float(img.max()), 1e-6))[..., None], 3, -1)
            what = "NeRF" if hasattr(model, "render_all") else "field"
            bus.emit(VIEW_READY, run_id, image=img, viewer=viewer, **extra,
                     caption=f"{what} {mode} {cam.width}x{cam.height} ({time.perf_counter() - t:.2f} s)")
            yield
        self.renders += 1
        self.ctx.start_job(name, self._run, job)

    def _after_draw(self, event: Any) -> None:
        if self.model is None:
            return
        clip, _ = self.clip()
        if self._last_clip is None or not np.allclose(clip, self._last_clip, rtol=1e-6, atol=1e-9):
            self._last_clip = clip
            self.request_render(self.moving_size)
            self._still.start()

    def set_scene(self, item: Any, *, keep_view: bool = False, **kw: Any) -> bool:
        if not super().set_scene(item, keep_view=keep_view, **kw):
            return False
        if not keep_view and getattr(item, "lo", None) is not None:
            self.frame(item.lo, item.hi)
        elif not keep_view and len(getattr(item, "vertices", ())):
            self.frame(item.vertices.min(0), item.vertices.max(0))
        self.request_render(self.refined_size())
        return True

    def clear_scene(self) -> None:
        super().clear_scene()
        self.iso.setEnabled(False)
        self.iso_label.setText("")

    def describe(self) -> str:
        d = getattr(self.scene_item, "density", None)
        return f"density grid {d.shape[0]}^3" if d is not None else super().describe()
