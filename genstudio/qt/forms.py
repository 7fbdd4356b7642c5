"""A settings form built from a config dataclass (``genstudio.core.config.fields_of``).

The same field metadata drives the CLI's ``--set key=value``; here it picks the widget:
int -> QSpinBox, float -> QDoubleSpinBox (log fields: a scientific spin box stepping 1-2-5),
bool -> QCheckBox, choices -> QComboBox, str -> QLineEdit (a field naming a run of some plugins,
``param(runs_of=...)``: an editable picker of those runs); optional numbers (default None) ->
a line edit where empty means "auto". Tooltips are the help texts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from genstudio.core.config import ConfigError, FieldSpec, coerce, fields_of
from genstudio.qt.throttle import after_first_paint

INT_LIMIT = 2**31 - 1
FLOAT_LIMIT = 1e12


WHEEL_GUARDED = (QAbstractSpinBox, QComboBox, QAbstractSlider)  # widgets whose value a wheel turn changes


class WheelGuard(QObject):
    """Application event filter: a wheel turn over a spin box, combo box or slider changes it only
    while it has keyboard focus (click or Tab into it first); otherwise the event goes on to the
    scroll area around it, so scrolling a form never edits a hyperparameter on its way. Guarded
    widgets get ``Qt.StrongFocus`` (the wheel alone never focuses them)."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        t = event.type()
        if t == QEvent.Wheel:
            if isinstance(obj, WHEEL_GUARDED):
                if obj.focusPolicy() == Qt.WheelFocus:
                    obj.setFocusPolicy(Qt.StrongFocus)
                if not obj.hasFocus():
                    event.ignore()  # not accepted: Qt passes it on to the parent (the scroll area)
                    return True
        elif t == QEvent.Polish and isinstance(obj, WHEEL_GUARDED) and obj.focusPolicy() == Qt.WheelFocus:
            obj.setFocusPolicy(Qt.StrongFocus)
        return False


def guard_wheel(app: QApplication | None = None) -> WheelGuard | None:
    """Install the :class:`WheelGuard` on the application once (later calls return the same one).
    Widgets polished before it was installed get their strong focus here: the window installs it
    after its first paint, as the filter sees every event of the process (issue #18: ~25,000 of
    them while the window is built)."""
    app = app or QApplication.instance()
    if app is None:
        return None
    guard = getattr(app, "_genstudio_wheel_guard", None)
    if guard is None:
        guard = WheelGuard(app)
        app.installEventFilter(guard)
        app._genstudio_wheel_guard = guard
        for w in app.allWidgets():
            if isinstance(w, WHEEL_GUARDED) and w.focusPolicy() == Qt.WheelFocus:
                w.setFocusPolicy(Qt.StrongFocus)
    return guard


class SciSpinBox(QDoubleSpinBox):
    """A float spin box for log-scale values: shows ``1e-4``-style text, steps along 1-2-5 decades."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDecimals(15)  # keep the value exact; the text is formatted separately

    def textFromValue(self, value: float) -> str:  # noqa: N802 - Qt override
        return f"{value:.4g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802
        try:
            return float(text.strip())
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int) -> object:
        t = text.strip()
        try:
            v = float(t)
        except ValueError:
            return QValidator.Intermediate, text, pos
        ok = self.minimum() <= v <= self.maximum()
        return (QValidator.Acceptable if ok else QValidator.Intermediate), text, pos

    def stepBy(self, steps: int) -> None:  # noqa: N802
        v = self.value()
        for _ in range(abs(steps)):
            v = step_125(v, up=steps > 0)
        self.setValue(min(max(v, self.minimum()), self.maximum()))


def step_125(v: float, up: bool) -> float:
    """Next value on the 1-2-5 ladder (…, 1e-4, 2e-4, 5e-4, 1e-3, …) above or below ``v``."""
    if v <= 0:
        return 1e-6 if up else 0.0
    e = math.floor(math.log10(v))
    ladder = [m * 10.0**k for k in (e - 1, e, e + 1) for m in (1, 2, 5)]
    eps = v * 1e-9
    if up:
        return next(x for x in ladder if x > v + eps)
    return next(x for x in reversed(ladder) if x < v - eps)


def _decimals_for(spec: FieldSpec) -> int:
    """Enough decimals to show the default and the small end of the range."""
    vals = [abs(x) for x in ([spec.default] + list(spec.range or ())) if isinstance(x, (int, float)) and x]
    smallest = min(vals) if vals else 1.0
    return int(min(8, max(2, 2 - math.floor(math.log10(smallest)) + 1)))


RunChoices = Callable[[tuple[str, ...]], list[tuple[str, str]]]  # plugin ids -> [(run id, label)]


class RunPicker(QComboBox):
    """An editable combo for a field that names a run (``param(runs_of=...)``): it lists the runs
    of those plugins (refreshed each time it opens, so a run trained a minute ago is there), and a
    typed id, prefix or folder still works."""

    def __init__(self, plugins: tuple[str, ...], choices: RunChoices, value: str = "") -> None:
        super().__init__()
        self.setEditable(True)
        self.setInsertPolicy(QComboBox.NoInsert)
        self.plugins, self.choices = plugins, choices
        self.lineEdit().setPlaceholderText(f"a run of {' / '.join(plugins)}")
        self.refresh()
        self.set_run(value)

    def refresh(self) -> None:
        keep = self.run()
        self.blockSignals(True)
        self.clear()
        self.addItem("", "")
        for rid, label in self.choices(self.plugins):
            self.addItem(label, rid)
        self.blockSignals(False)
        self.set_run(keep)

    def showPopup(self) -> None:  # noqa: N802 - Qt override
        self.refresh()
        super().showPopup()

    def run(self) -> str:
        """The run id of the picked entry, or what was typed."""
        text = self.currentText().strip()
        i = self.findText(text)
        return str(self.itemData(i)) if i >= 0 else text

    def set_run(self, value: str) -> None:
        i = self.findData(value or "")
        if i >= 0:
            self.setCurrentIndex(i)
        else:
            self.setEditText(value or "")


class _Field:
    """Widget + how to read and write it."""

    def __init__(self, widget: QWidget, get: Callable[[], Any], put: Callable[[Any], None],
                 changed: Any) -> None:
        self.widget = widget
        self.get = get
        self.put = put
        self.changed = changed


def _make_field(spec: FieldSpec, run_choices: RunChoices | None = None) -> _Field:
    lo, hi = spec.range if spec.range else (None, None)
    if spec.runs_of and run_choices is not None and spec.type is str:
        w = RunPicker(spec.runs_of, run_choices, str(spec.default or ""))
        return _Field(w, w.run, lambda v: w.set_run("" if v is None else str(v)), w.currentTextChanged)
    if spec.choices:
        w = QComboBox()
        for c in spec.choices:
            w.addItem(str(c), c)

        def put_choice(v: Any) -> None:
            i = w.findData(v)
            if i < 0:
                i = w.findText(str(v))
            if i >= 0:
                w.setCurrentIndex(i)

        put_choice(spec.default)
        return _Field(w, w.currentData, put_choice, w.currentIndexChanged)
    if spec.type is bool:
        w = QCheckBox()
        w.setChecked(bool(spec.default))
        return _Field(w, w.isChecked, lambda v: w.setChecked(bool(v)), w.toggled)
    if spec.type in (int, float) and spec.default is None:
        w = QLineEdit()
        w.setPlaceholderText("auto")

        def get_optional() -> Any:
            t = w.text().strip()
            return None if not t else coerce(spec, t)

        return _Field(w, get_optional, lambda v: w.setText("" if v is None else str(v)), w.textChanged)
    if spec.type is int:
        w = QSpinBox()
        w.setRange(int(lo) if lo is not None else -INT_LIMIT, int(hi) if hi is not None else INT_LIMIT)
        w.setValue(int(spec.default or 0))
        w.setAccelerated(True)
        return _Field(w, w.value, lambda v: w.setValue(int(v)), w.valueChanged)
    if spec.type is float:
        w = SciSpinBox() if spec.log else QDoubleSpinBox()
        if not spec.log:
            w.setDecimals(_decimals_for(spec))
        w.setRange(float(lo) if lo is not None else -FLOAT_LIMIT, float(hi) if hi is not None else FLOAT_LIMIT)
        if not spec.log and lo is not None and hi is not None:
            w.setSingleStep(float(10 ** math.floor(math.log10(max(hi - lo, 1e-12)) - 1)))
        w.setValue(float(spec.default or 0.0))
        return _Field(w, w.value, lambda v: w.setValue(float(v)), w.valueChanged)
    if spec.type is str:
        w = QLineEdit(str(spec.default or ""))
        return _Field(w, w.text, lambda v: w.setText("" if v is None else str(v)), w.textChanged)
    # lists, tuples, dicts: edited as JSON
    w = QLineEdit(json.dumps(spec.default))

    def get_json() -> Any:
        try:
            return json.loads(w.text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"{spec.name}: not valid JSON ({e.msg})") from None

    return _Field(w, get_json, lambda v: w.setText(json.dumps(v)), w.textChanged)


class ConfigForm(QWidget):
    """A form for one config dataclass. ``values()`` -> {field: value}; ``set_values(dict)``."""

    changed = Signal()

    def __init__(self, config_cls: type, parent: QWidget | None = None,
                 run_choices: RunChoices | None = None) -> None:
        super().__init__(parent)
        after_first_paint(self, guard_wheel)
        self.config_cls = config_cls
        self.specs = {s.name: s for s in fields_of(config_cls)}
        self.fields: dict[str, _Field] = {}
        layout = QFormLayout(self)
        layout.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        for name, spec in self.specs.items():
            f = _make_field(spec, run_choices)
            f.widget.setObjectName(f"field_{name}")
            if isinstance(f.widget, WHEEL_GUARDED):
                f.widget.setFocusPolicy(Qt.StrongFocus)  # see WheelGuard
            tip = spec.help + (f"  [{spec.range[0]:g} … {spec.range[1]:g}]" if spec.range else "")
            f.widget.setToolTip(tip.strip())
            f.changed.connect(self.changed)
            self.fields[name] = f
            layout.addRow(spec.label, f.widget)
            label = layout.labelForField(f.widget)
            if label is not None:
                label.setToolTip(tip.strip())

    def values(self) -> dict[str, Any]:
        """Current values, validated against the field specs (raises ConfigError)."""
        out: dict[str, Any] = {}
        for name, f in self.fields.items():
            v = f.get()
            out[name] = None if v is None else coerce(self.specs[name], v)
        return out

    def set_values(self, values: dict[str, Any]) -> None:
        """Set the fields named in ``values``; unknown names and unusable values are ignored, so
        settings saved by an older version still load."""
        for name, v in values.items():
            f = self.fields.get(name)
            if f is None:
                continue
            try:
                f.put(coerce(self.specs[name], v) if v is not None else None)
            except (ConfigError, TypeError, ValueError):
                continue

    def reset(self) -> None:
        self.set_values({n: s.default for n, s in self.specs.items()})

    def set_data_kind(self, kind: str | None) -> None:
        """Grey out the fields that do not matter for this data kind (``param(kinds=...)``: U-Net
        widths for 2-D points, MLP widths for images); their values stay, for other data."""
        layout = self.layout()
        for name, f in self.fields.items():
            kinds = self.specs[name].kinds
            on = kind is None or not kinds or kind in kinds
            f.widget.setEnabled(on)
            label = layout.labelForField(f.widget) if isinstance(layout, QFormLayout) else None
            if label is not None:
                label.setEnabled(on)
            spec = self.specs[name]
            tip = (spec.help + (f"  [{spec.range[0]:g} … {spec.range[1]:g}]" if spec.range else "")).strip()
            f.widget.setToolTip(tip if on else f"{tip} (only for {', '.join(kinds or ())} data)")

    def disabled_fields(self) -> list[str]:
        return [n for n, f in self.fields.items() if not f.widget.isEnabled()]

    def widget(self, name: str) -> QWidget:
        return self.fields[name].widget
