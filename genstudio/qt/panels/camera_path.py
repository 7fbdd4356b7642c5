"""The 3-D viewers' camera path row: add the current view as a keyframe, list and clear them, save
them as JSON (for ``genstudio flythrough --keyframes``) and "Export fly-through…": a worker job
renders the model (or the opened splats) along the interpolated path
(:mod:`genstudio.core.scene.camera_path`) and writes an MP4 or GIF with ``save_animation``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QLabel, QPushButton, QSpinBox, QWidget

from genstudio.core.scene import camera_path as cp

FLY_READY = "flythrough3d"  # data: {"path"} or {"error"}, "viewer"
FLY_SIZE = (320, 240)


def scene_renderer(model: Any, item: Any) -> Any:
    """``render(camera) -> (H, W, 3)`` for a viewer's content: the run's Scene model, else opened
    Gaussians through the core rasteriser; None when neither can render."""
    if model is not None and callable(getattr(model, "render", None)):
        return cp.scene_render(model)
    from genstudio.core.scene.gaussians import Gaussians, rasterize

    if isinstance(item, Gaussians):
        return lambda cam: rasterize(item, cam, background=0.0)["rgb"]  # the canvas's black
    return None


class CameraPathBar(QWidget):
    """Keyframes of ``panel`` (a SceneViewerPanel: ``view_camera``, ``model``, ``scene_item``, ``ctx``)."""

    def __init__(self, panel: Any) -> None:
        super().__init__(panel)
        self.panel = panel
        self.keyframes: list[cp.Keyframe] = []
        self.add_btn = QPushButton("+ Keyframe")
        self.add_btn.setToolTip("add the current view to the fly-through's camera path")
        self.add_btn.clicked.connect(self.add_keyframe)
        self.list_box = QComboBox()
        self.list_box.setMinimumWidth(190)
        self.clear_btn = QPushButton("Clear")
        self.clear_btn.clicked.connect(self.clear_keyframes)
        self.save_btn = QPushButton("Save keys…")
        self.save_btn.setToolTip("keyframes as JSON, for `genstudio flythrough RUN --keyframes FILE`")
        self.save_btn.clicked.connect(lambda: self.save_keyframes())
        self.frames = QSpinBox()
        self.frames.setRange(2, 2000)
        self.frames.setValue(72)
        self.frames.setToolTip("frames along the whole path (24 per second)")
        self.export_btn = QPushButton("Export fly-through…")
        self.export_btn.clicked.connect(lambda: self.export())
        self.state = QLabel("")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        for w in (QLabel("camera path"), self.add_btn, self.list_box, self.clear_btn, self.save_btn,
                  QLabel("frames"), self.frames, self.export_btn, self.state):
            lay.addWidget(w)
        lay.addStretch(1)
        self._update()

    def add_keyframe(self) -> cp.Keyframe:
        k = cp.Keyframe.from_camera(self.panel.view_camera(128))
        self.keyframes.append(k)
        self._update()
        return k

    def clear_keyframes(self) -> None:
        self.keyframes.clear()
        self._update()

    def _update(self) -> None:
        self.list_box.clear()
        for i, k in enumerate(self.keyframes):
            x, y, z = k.c2w[:3, 3]
            self.list_box.addItem(f"key {i + 1} ({x:.1f}, {y:.1f}, {z:.1f}) {k.fov_y_deg:.0f}°")
        if not self.keyframes:
            self.list_box.addItem("no keyframes")
        self.list_box.setCurrentIndex(max(0, len(self.keyframes) - 1))
        has = bool(self.keyframes)
        for b in (self.clear_btn, self.save_btn, self.export_btn):
            b.setEnabled(has)

    def save_keyframes(self, path: str | None = None) -> Path | None:
        path = path or QFileDialog.getSaveFileName(self, "Save keyframes", "keyframes.json", "JSON (*.json)")[0]
        return cp.save_keyframes(path, self.keyframes) if path and self.keyframes else None

    def export(self, path: str | None = None, size: tuple[int, int] = FLY_SIZE) -> bool:
        """Render the path in a worker and write ``path`` (.mp4 / .gif; asked for when None)."""
        p = self.panel
        render = scene_renderer(p.model, p.scene_item)
        name = f"flythrough:{p.panel_id}"
        if render is None or not self.keyframes:
            self.state.setText("nothing to render: load a run or a scene, then add keyframes")
            return False
        if p.ctx.job_running(name):
            return False
        path = path or QFileDialog.getSaveFileName(self, "Export fly-through", "flythrough.mp4",
                                                   "MP4 video (*.mp4);;GIF (*.gif)")[0]
        if not path:
            return False
        cams = cp.path_cameras(self.keyframes, self.frames.value(), *size)
        bus, viewer, run = p.ctx.bus, p.panel_id, p._run
        run_id = run.id if run is not None else ""

        def job(control: Any) -> Any:
            from genstudio.core.imaging import save_animation

            frames = []
            for f in cp.flythrough_frames(render, cams):
                control.check()
                frames.append(f)
                yield len(frames)
            bus.emit(FLY_READY, run_id, path=str(save_animation(frames, path, fps=24)), frames=len(frames),
                     viewer=viewer)

        self.state.setText(f"rendering {len(cams)} frames …")
        p.ctx.start_job(name, run, job)
        return True

    def done(self, data: dict[str, Any]) -> None:
        self.state.setText(f"wrote {Path(data['path']).name} ({data['frames']} frames)")
