"""3-D viewers: Gaussian splats (panel "splats") and density volumes or SDF meshes (panel "volume"), one shared base.

Both draw with vispy, imported lazily: without an OpenGL context (e.g. QT_QPA_PLATFORM=offscreen)
the canvas is replaced by a "3D view needs OpenGL" placeholder and the rest of the panel still works.
Models are never called from the GUI thread: a worker job (``ctx.start_job``) rebuilds the run's
model from its newest checkpoint (``load_model``), exports the scene and publishes it on the bus;
a SAMPLES event of the selected run (training made a preview) triggers a refresh. The NeRF viewer
also renders the model from the viewer camera in a worker (low resolution while the camera moves,
refined once it is still).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, ClassVar

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication, QImage, QOffscreenSurface, QOpenGLContext, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
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
from genstudio.qt.visuals import Frustums, make_visual
from genstudio.qt.visuals import geometry as geo

log = logging.getLogger(__name__)

SCENE_READY = "scene3d"  # data: {"scene", "step", "dataset", "model", "token"} or {"error", "token"}
VIEW_READY = "view3d"  # data: {"image" (H, W, 3) float in [0, 1], "token"}
NO_GL = "3D view needs OpenGL (no GL context here; run on a desktop, or under xvfb-run with QT_QPA_PLATFORM=xcb)"
MODES = ("rgb", "depth", "opacity", "centres")
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


def to_pixmap(img: np.ndarray, size: int = 256) -> QPixmap:
    """(H, W, 3) in [0, 1] -> a pixmap scaled (nearest) so its longer side is ``size``."""
    a = np.ascontiguousarray((np.clip(np.asarray(img, np.float32), 0, 1) * 255).astype(np.uint8)[..., :3])
    h, w = a.shape[:2]
    q = QImage(a.data, w, h, 3 * w, QImage.Format_RGB888).copy()
    return QPixmap.fromImage(q).scaled(size, size, Qt.KeepAspectRatio, Qt.FastTransformation)


def turntable_pose(eye: np.ndarray, target: np.ndarray) -> tuple[float, float, float]:
    """(azimuth, elevation, distance) of vispy's TurntableCamera (up +z) with its eye at ``eye``
    looking at ``target``: eye = target + d (sin az cos el, -cos az cos el, sin el) (measured)."""
    off = np.asarray(eye, np.float64) - np.asarray(target, np.float64)
    d = float(np.linalg.norm(off))
    return math.degrees(math.atan2(off[0], -off[1])), math.degrees(math.asin(np.clip(off[2] / d, -1, 1))), d


class SceneViewerPanel(Panel):
    """Shared viewer: vispy canvas (or placeholder), camera switch, training frustums, side image,
    scene refresh through worker jobs. Subclasses say which scene item types they draw (``shows``); a run is theirs when its plugin's
    Scene face exports one of them."""

    shows: ClassVar[tuple[type, ...]] = ()  # the scene item types this viewer draws
    file_io: ClassVar[bool] = False
    lod: ClassVar[bool] = False
    hint: ClassVar[str] = ""

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

        top = QHBoxLayout()
        self.open_btn, self.save_btn = QPushButton("Open…"), QPushButton("Save…")
        if self.file_io:
            self.open_btn.clicked.connect(self._open_dialog)
            self.save_btn.clicked.connect(self._save_dialog)
        self.camera_box = QComboBox()
        self.camera_box.addItems(["turntable", "fly"])
        self.camera_box.currentTextChanged.connect(self.set_camera)
        self.mode_box = QComboBox()
        self.mode_box.addItems(list(MODES))
        self.mode_box.currentTextChanged.connect(self.set_mode)
        self.budget = QSlider(Qt.Horizontal)
        self.budget.setRange(1, 1000)
        self.budget.setValue(1000)
        self.budget.setToolTip("point budget (level of detail): fraction of splats drawn")
        self.budget.valueChanged.connect(self._budget_changed)
        self.budget_label = QLabel("")
        for w in ([self.open_btn, self.save_btn] if self.file_io else []) + [QLabel("camera"), self.camera_box,
                                                                          QLabel("mode"), self.mode_box]:
            top.addWidget(w)
        if self.lod:
            top.addWidget(QLabel("budget"))
            top.addWidget(self.budget, 1)
            top.addWidget(self.budget_label)
        top.addStretch(0 if self.lod else 1)

        self.splitter = QSplitter(Qt.Horizontal)
        self._build_canvas()
        side = QWidget()
        sl = QVBoxLayout(side)
        # the model's render (NeRF) above the ground truth of the training view jumped to
        self.side_caption, self.side_image = QLabel(""), QLabel()
        self.gt_caption, self.gt_image = QLabel(""), QLabel()
        for cap, img in ((self.side_caption, self.side_image), (self.gt_caption, self.gt_image)):
            img.setMinimumSize(128, 128)
            img.setAlignment(Qt.AlignCenter)
            sl.addWidget(cap)
            sl.addWidget(img, 1)
        self.splitter.addWidget(side)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self._stale = False  # training moved on while a scene job was running: refresh after it
        self._retry = QTimer(self, singleShot=True, interval=500)
        self._retry.timeout.connect(self._refresh_if_stale)
        self.status = QLabel(self.hint)
        self.status.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.splitter, 1)
        lay.addWidget(self.status)

    # -- canvas -----------------------------------------------------------------------------------
    def _build_canvas(self) -> None:
        if gl_available():
            try:
                from vispy import scene
                self.canvas = scene.SceneCanvas(app="pyside6", keys="interactive", bgcolor="black", show=False)
                self.view = self.canvas.central_widget.add_view()
                self.cameras = {"turntable": scene.TurntableCamera(fov=40, distance=5.0, elevation=25, azimuth=30,
                                                                   up="+z"),
                                "fly": scene.FlyCamera(fov=40)}
                self.view.camera = self.cameras["turntable"]
                self.canvas.events.mouse_press.connect(self._mouse_press)
                self.canvas.events.mouse_release.connect(self._mouse_release)
                self.canvas.events.draw.connect(self._after_draw)
                self.splitter.addWidget(self.canvas.native)
                return
            except Exception as exc:  # noqa: BLE001 - a broken GL stack must not take the panel down
                log.warning("vispy canvas unavailable: %s", exc)
                self.canvas = self.view = None
        self.placeholder = QLabel(NO_GL)
        self.placeholder.setWordWrap(True)
        self.placeholder.setAlignment(Qt.AlignCenter)
        self.splitter.addWidget(self.placeholder)

    def set_camera(self, name: str) -> None:
        if self.view is not None and name in self.cameras:
            self.view.camera = self.cameras[name]

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
        self.jump_to_view(i % len(cams))
        return i % len(cams)

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
        self.gt_image.setPixmap(to_pixmap(img.numpy()))
        self.status.setText(f"view {i}: compare the render with its ground truth")

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
        if self._ours(run):
            self.refresh()

    def clear_scene(self) -> None:
        """Drop the shown scene, its model and its renders."""
        self._token += 1  # a scene job still running for the old run no longer lands here
        self.scene_item = self.model = self.step = None
        self._scene_run = None
        self.show_item("scene", None)
        self.show_item("frustums", None)
        self.side_image.clear()
        self.side_caption.clear()
        self.gt_image.clear()
        self.gt_caption.clear()
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
        self._stale = False
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

        self.status.setText(f"loading the scene of {run.id}…")
        self.ctx.start_job(self.job_name, run, job)
        return True

    def _refresh_if_stale(self) -> None:
        if self._stale:
            self.refresh()

    def on_events(self, events: list[Event]) -> None:
        current = self._run.id if self._run is not None else ""  # "": a file or scene shown without a run
        refresh = False
        for e in events:
            if e.run_id != current:
                continue
            if e.kind in (SCENE_READY, VIEW_READY) and not self._mine(e):
                continue
            if e.kind == SCENE_READY and e.data.get("token") == self._token:
                if "error" in e.data:
                    self.status.setText(f"no scene yet ({e.data['error']})")
                elif self.set_scene(e.data["scene"], dataset=e.data.get("dataset"), model=e.data.get("model"),
                                    step=e.data.get("step")) is not False:
                    self._scene_run = current or None
            elif e.kind == VIEW_READY:
                self.show_render(e.data["image"], e.data.get("caption", ""))
            elif e.kind == ev.SAMPLES and self._ours(self._run):
                refresh = True
        if refresh:
            self.refresh()

    def _refused(self, item: Any) -> bool:
        """True (and says so) when ``item`` is not a scene this viewer draws."""
        if self.accepts(item):
            return False
        self.status.setText(f"{type(item).__name__} is not drawn here ({self.title} shows "
                            f"{', '.join(t.__name__ for t in self.shows)})")
        return True

    def set_scene(self, item: Any, *, dataset: Any = None, model: Any = None, step: int | None = None) -> bool:
        """Show an exported scene (and the training cameras of its dataset, if any); False (and
        nothing changes) for a scene of item types this viewer does not draw."""
        if self._refused(item):
            return False
        self.scene_item, self.model, self.step = item, model, step
        if dataset is not None:
            self.dataset = dataset
        cams = self.training_cameras()
        bg = getattr(model, "background", None)  # draw on the colour the model was trained against
        if self.canvas is not None and bg is not None:
            self.canvas.bgcolor = tuple(float(v) for v in np.broadcast_to(np.asarray(bg.cpu() if hasattr(bg, "cpu")
                                                                                     else bg, np.float32), (3,)))
        self.show_item("scene", item)
        self.show_item("frustums", Frustums(cams, self._frustum_scale()) if cams else None)
        self.status.setText(self.describe() + (f" (step {step:,})" if step is not None else ""))
        return True

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
        self.side_image.setPixmap(to_pixmap(image))


class SplatViewerPanel(SceneViewerPanel):
    """Gaussian splats as EWA ellipses; open / save .ply and .splat."""

    panel_id = "splats"
    order = 80
    tools = ("scene",)
    title = "Splats"
    shows = (Gaussians,)  # scene items this viewer draws (a plugin's Scene face says what it exports)
    file_io = True
    lod = True
    hint = "Open a .ply / .splat file or select a splatting run; click a camera frustum to jump to its view."

    def splats(self) -> Any:
        node = self.nodes.get("scene")
        return node if node is not None and hasattr(node, "budget") else None

    def set_mode(self, mode: str) -> None:
        if (s := self.splats()) is not None:
            s.mode = mode

    def _budget_changed(self) -> None:
        s = self.splats()
        if s is None:
            self.budget_label.setText("")
            return
        s.budget = max(1, round(s.count * self.budget.value() / 1000))
        self.budget_label.setText(f"{s.drawn:,} / {s.count:,}")

    def set_scene(self, item: Any, **kw: Any) -> bool:
        if not super().set_scene(item, **kw):
            return False
        if self.splats() is not None:
            self.splats().mode = self.mode_box.currentText()
            self._budget_changed()
            if len(item):  # the bulk of the splats (2-98 %), padded by a 3-sigma extent
                m = item.means.detach().cpu().numpy()
                pad = 3 * float(np.percentile(item.scales.detach().cpu().numpy().max(1), 98))
                self.frame(np.percentile(m, 2, 0) - pad, np.percentile(m, 98, 0) + pad)
        return True

    def describe(self) -> str:
        n = len(self.scene_item) if self.scene_item is not None else 0
        return f"{n:,} Gaussians"

    def open_file(self, path: str) -> bool:
        from genstudio.core.scene.io import SceneFileError, load_scene
        try:
            g = load_scene(path)
        except (SceneFileError, OSError) as exc:
            self.ctx.show_error(f"Cannot open {path}: {exc}")
            return False
        self.dataset = None
        self._scene_run = None  # a file: no run's
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


class NerfViewerPanel(SceneViewerPanel):
    """The NeRF model rendered from the viewer camera (worker job; coarse while moving, refined when
    still) beside its density field drawn as an iso-surface. Neural-field SDF runs show their
    marching-cubes mesh the same way, with the sphere-traced render beside it."""

    panel_id = "volume"  # density volumes and SDF meshes (NeRF, neural fields)
    order = 90
    tools = ("scene",)
    title = "NeRF / fields"
    shows = (VolumeScene, MeshScene, ImageScene)
    hint = ("Select a NeRF or neural-field (SDF) run: the density iso-surface or SDF mesh is drawn here, "
            "the model's render from this view on the right.")
    moving_size: ClassVar[int] = 32
    still_size: ClassVar[int] = 96
    still_ms: ClassVar[int] = 400

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self._want: Any = None  # the camera waiting for the worker
        self._last_clip: np.ndarray | None = None
        self._still = QTimer(self, singleShot=True, interval=self.still_ms)
        self._still.timeout.connect(lambda: self.request_render(self.still_size))
        self._poll = QTimer(self, interval=50)
        self._poll.timeout.connect(self._start_pending)
        self.renders = 0

    def set_mode(self, mode: str) -> None:
        if self.model is not None:
            self.request_render(self.still_size)

    def view_camera(self, size: int) -> Any:
        """The viewer camera as a core Camera, ``size`` pixels on its longer side."""
        from genstudio.core.scene.cameras import Camera, look_at
        if self.view is not None:
            clip, (w, h) = self.clip()
            c2w, fx, fy = geo.camera_from_clip(clip, w, h)
            cam = Camera(c2w, fx, fy, w / 2, h / 2, w, h)
        else:  # no GL: a fixed orbit view still shows the model
            cam = Camera(look_at((3.0, -3.0, 2.0)), 64.0, 64.0, 32.0, 32.0, 64, 64)
        s = size / max(cam.width, cam.height)
        return cam.resized(max(8, round(cam.width * s)), max(8, round(cam.height * s)))

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
        if self.ctx.job_running(name):
            return
        cam, self._want = self._want, None
        model, bus, mode, viewer = self.model, self.ctx.bus, self.mode_box.currentText(), self.panel_id
        run_id = self._run.id if self._run is not None else ""

        def job(control: Any) -> Any:
            t = time.perf_counter()
            if hasattr(model, "render_all"):
                out = model.render_all(cam)
            else:  # plugins with only the SceneModel face (neural fields)
                out = {"rgb": model.render(cam, width=cam.width, height=cam.height)}
            img = out.get(mode, out["rgb"]) if mode != "centres" else out["rgb"]
            img = img.numpy()
            if img.ndim == 2:
                img = np.repeat((img / max(float(img.max()), 1e-6))[..., None], 3, -1)
            bus.emit(VIEW_READY, run_id, image=img, viewer=viewer,
                     caption=f"{'NeRF' if hasattr(model, 'render_all') else 'field'} {mode} {cam.width}x{cam.height} ({time.perf_counter() - t:.2f} s)")
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

    def set_scene(self, item: Any, **kw: Any) -> bool:
        first = self.scene_item is None
        if not super().set_scene(item, **kw):
            return False
        if first and getattr(item, "lo", None) is not None:
            self.frame(item.lo, item.hi)
        elif first and len(getattr(item, "vertices", ())):
            self.frame(item.vertices.min(0), item.vertices.max(0))
        self.request_render(self.still_size)
        return True

    def describe(self) -> str:
        d = getattr(self.scene_item, "density", None)
        return f"density grid {d.shape[0]}^3" if d is not None else super().describe()
