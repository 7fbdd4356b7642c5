"""Settings for the next run: the plugin's config form and the run options (logging cadence).

Forms are built from dataclass field metadata (``genstudio.qt.forms``), so a new plugin gets its
settings UI by declaring its config. Edits are remembered per plugin while the app runs; the main
window persists them between launches via :meth:`all_values` / :meth:`load_all`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

from genstudio.core import events as ev
from genstudio.core.config import ConfigError, param
from genstudio.core.jobs import TrainSpec
from genstudio.qt.forms import ConfigForm
from genstudio.qt.panels.base import AppContext, Panel

_SPEC_DEFAULTS = TrainSpec("", "")


@dataclass
class RunOptions:
    """How often a run logs, previews and checkpoints (TrainSpec fields that are not model config)."""

    log_every: int = param(_SPEC_DEFAULTS.log_every, "Log metrics every N steps", range=(1, 100_000))
    sample_every: int = param(_SPEC_DEFAULTS.sample_every, "Log a sample grid every N steps (0 = only at the end)",
                              range=(0, 1_000_000))
    checkpoint_every: int = param(_SPEC_DEFAULTS.checkpoint_every, "Write a checkpoint every N steps "
                                  "(pause and stop also write one)", range=(0, 1_000_000))
    n_preview: int = param(_SPEC_DEFAULTS.n_preview, "Samples in each logged grid (0 = auto: 64 images, "
                           "400 points of 2-D data)", range=(0, 4096))
    preview_steps: int = param(_SPEC_DEFAULTS.preview_steps, "Sampling steps of each logged grid (0 = auto: "
                               "the plugin's cheap preview, e.g. 50 of DDPM's 1000; the monitor shows each "
                               "preview's cost)",
                               range=(0, 100_000))
    keep_checkpoints: int = param(_SPEC_DEFAULTS.keep_checkpoints, "Checkpoints kept, newest first (0 = the "
                                  "plugin's choice: 3, every one for GANs, whose sampler steps through them; "
                                  "-1 = all)", range=(-1, 100_000))
    processes: int = param(_SPEC_DEFAULTS.processes, "Training processes on this machine (torchrun, DDP: "
                           "gloo on CPU, NCCL on CUDA; batch size is per process). Above 1 the run trains "
                           "outside the window, which watches it", range=(1, 256))
    sharding: str = param(_SPEC_DEFAULTS.sharding, "With several processes: ddp replicates the nets on each; "
                          "fsdp shards parameters, gradients and optimiser state across them (plugins that "
                          "declare it, e.g. DDPM, flow matching, score SDE)", choices=("ddp", "fsdp"))
    own_process: bool = param(True, "Train in a process of its own, which the window watches like a run the "
                              "CLI trains: the window then takes no Python time from the training (no shared "
                              "GIL), only CPU; a warm one waits, so Start costs no start-up. Pause, Step, Stop "
                              "and live settings reach it through the run's control file; closing the window "
                              "stops it. Off: the window's worker thread trains (plugins added at run time, "
                              "debugging)")


LAUNCH_ONLY = ("processes", "sharding", "own_process")  # how a run starts: never steered mid-run
_RUN_OPTION_NAMES = tuple(f.name for f in dataclasses.fields(RunOptions) if f.name not in LAUNCH_ONLY)


def live_settings_cls(config_cls: type) -> type:
    """A dataclass of ``config_cls``'s live fields followed by the run options (all live), for the
    steering form (same metadata, so the form looks like the settings form)."""
    from genstudio.core.config import live_fields

    live = live_fields(config_cls)
    specs = [(f.name, f.type, dataclasses.field(default=f.default, metadata=f.metadata))
             for f in dataclasses.fields(config_cls) if f.name in live]
    specs += [(f.name, f.type, dataclasses.field(default=f.default, metadata=f.metadata))
              for f in dataclasses.fields(RunOptions) if f.name not in LAUNCH_ONLY]
    return dataclasses.make_dataclass(f"Live{config_cls.__name__}", specs)


class SettingsPanel(Panel):
    panel_id = "settings"
    area = "left"
    order = 40
    title = "Settings"

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self.plugin_id: str | None = None
        self.form: ConfigForm | None = None
        self._remembered: dict[str, dict[str, Any]] = {}

        self.model_box = QGroupBox("Model")
        self.model_layout = QVBoxLayout(self.model_box)
        self.placeholder = QLabel("Pick a plugin to see its settings.")
        self.placeholder.setWordWrap(True)
        self.model_layout.addWidget(self.placeholder)
        reset = QPushButton("Defaults")
        reset.setToolTip("Reset the model settings to the plugin's defaults")
        reset.clicked.connect(lambda: self.form and self.form.reset())
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(reset)
        self.model_layout.addLayout(row)

        run_box = QGroupBox("Run")
        self.run_form = ConfigForm(RunOptions)
        QVBoxLayout(run_box).addWidget(self.run_form)

        # live steering of the *selected* run: its own values, never the next run's form
        self.steer_box = QGroupBox("Steer the selected run")
        self.steer_layout = QVBoxLayout(self.steer_box)
        self.steer_note = QLabel()
        self.steer_note.setWordWrap(True)
        self.steer_layout.addWidget(self.steer_note)
        self.steer_form: ConfigForm | None = None
        self.steer_button = QPushButton("Apply to the run")
        self.steer_button.setToolTip("Live settings take effect from the next training step (or when the run "
                                     "resumes) and are written to the run with that step; the others apply "
                                     "to a new run only")
        self.steer_button.clicked.connect(self.apply_steering)
        self.steer_layout.addWidget(self.steer_button)
        self.steer_box.setVisible(False)
        self._steer_run: Any = None

        inner = QWidget()
        lay = QVBoxLayout(inner)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.steer_box)
        lay.addWidget(self.model_box)
        lay.addWidget(run_box)
        lay.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(inner)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

    # -- live steering --------------------------------------------------------------------------
    def set_run(self, run: Any) -> None:
        """The steering box shows the selected run's live settings (model fields declared
        ``param(live=True)`` and the run options), filled from its run.json."""
        self._steer_run = run
        if self.steer_form is not None:
            self.steer_layout.removeWidget(self.steer_form)
            self.steer_form.hide()
            self.steer_form.setParent(None)
            self.steer_form.deleteLater()
            self.steer_form = None
        info, cls = None, None
        if run is not None:
            try:
                info = run.info()
                cls = self.ctx.registry.get(info["plugin"]).info.config_cls
            except (KeyError, ValueError, OSError):
                info = None
        if info is None or cls is None:
            self.steer_box.setVisible(False)
            return
        self.steer_form = ConfigForm(live_settings_cls(cls))
        self.steer_form.setObjectName("steer_form")
        values = {**(info.get("config") or {}), **{k: info[k] for k in _RUN_OPTION_NAMES if k in info}}
        self.steer_form.set_values({k: v for k, v in values.items() if k in self.steer_form.values()})
        self.steer_layout.insertWidget(1, self.steer_form)
        self._note_status(str(info.get("status", "?")))
        self.steer_box.setVisible(True)

    def _note_status(self, status: str) -> None:
        from genstudio.qt.panels.runs import short_name

        self.steer_note.setText(f"<b>{short_name(self._steer_run.id)}</b> ({status}): "
                                "these settings can change while it trains; the Model and Run boxes below "
                                "are for the next new run.")

    def on_events(self, events: list[Any]) -> None:
        """Keep the steered run's status in the note current (it starts, pauses, ends)."""
        run = self._steer_run
        for e in events:
            if run is not None and e.kind == ev.STATUS and e.run_id == run.id and self.steer_form is not None:
                self._note_status(str(e.data.get("status", "?")))

    def steering_changes(self) -> dict[str, Any]:
        """What the steering form changes against the run's recorded values."""
        if self.steer_form is None or self._steer_run is None:
            return {}
        info = self._steer_run.info()
        now = {**(info.get("config") or {}), **{k: info.get(k) for k in _RUN_OPTION_NAMES}}
        return {k: v for k, v in self.steer_form.values().items() if now.get(k) != v}

    def apply_steering(self) -> str:
        """Hand the changes to the main window (``steer_run``); returns what it said."""
        changes = self.steering_changes()
        if not changes:
            return "nothing changed"
        steer = getattr(self.ctx, "steer_run", None)
        return steer(self._steer_run, changes) if steer is not None else "no window to steer through"

    def set_plugin(self, plugin_id: str | None, config_cls: type | None) -> None:
        """Show the form of ``config_cls``; the previous plugin's edits are remembered."""
        if self.form is not None and self.plugin_id is not None:
            try:
                self._remembered[self.plugin_id] = self.form.values()
            except ConfigError:
                pass
            self.model_layout.removeWidget(self.form)
            self.form.hide()  # deleteLater waits for the event loop; a stale form must not paint meanwhile
            self.form.setParent(None)
            self.form.deleteLater()
            self.form = None
        self.plugin_id = plugin_id
        self.placeholder.setVisible(config_cls is None)
        if config_cls is None:
            self.model_box.setTitle("Model")
            return
        self.model_box.setTitle(f"Model: {plugin_id}")
        self.form = ConfigForm(config_cls, run_choices=self.run_choices)
        self.form.setObjectName("model_form")
        self.model_layout.insertWidget(1, self.form)
        if plugin_id in self._remembered:
            self.form.set_values(self._remembered[plugin_id])

    def run_choices(self, plugins: tuple[str, ...]) -> list[tuple[str, str]]:
        """Runs of ``plugins`` that have a checkpoint, newest first, for run-reference fields (a
        distillation teacher, latent diffusion's VAE)."""
        found = []
        for run in self.ctx.store.list():
            try:
                info = run.info()
                if info.get("plugin") in plugins and run.checkpoints():
                    label = f"{run.id} · {info.get('dataset', '?')} · step {info.get('step', 0)}"
                    found.append((float(info.get("created", 0.0)), run.id, label))
            except Exception:  # noqa: BLE001 - a broken run folder is simply not offered
                continue
        return [(rid, label) for _, rid, label in sorted(found, reverse=True)]

    def config_values(self) -> dict[str, Any] | None:
        """The model config as a dict (None without a plugin); raises ConfigError on a bad field."""
        return self.form.values() if self.form is not None else None

    def run_values(self) -> dict[str, Any]:
        return self.run_form.values()

    def all_values(self) -> dict[str, Any]:
        """Everything worth persisting: per-plugin configs and the run options."""
        configs = dict(self._remembered)
        if self.form is not None and self.plugin_id is not None:
            try:
                configs[self.plugin_id] = self.form.values()
            except ConfigError:
                pass
        return {"configs": configs, "run": self.run_values()}

    def load_all(self, data: dict[str, Any]) -> None:
        configs = data.get("configs") or {}
        if isinstance(configs, dict):
            self._remembered.update({k: v for k, v in configs.items() if isinstance(v, dict)})
        if self.form is not None and self.plugin_id in self._remembered:
            self.form.set_values(self._remembered[self.plugin_id])
        if isinstance(data.get("run"), dict):
            self.run_form.set_values(data["run"])
