"""Application start-up: the QApplication (names used by QSettings), the dark theme, the window."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

APP_NAME = "GenStudio"
ORG_NAME = "GenStudio"
ORG_DOMAIN = "genstudio.invalid"

# One palette for the widgets the stylesheet does not touch (and for pyqtgraph's defaults).
BG = "#1b1d23"
PANEL = "#22252c"
BASE = "#15171c"
TEXT = "#d0d4dc"
DIM = "#8a90a0"
ACCENT = "#4c8dff"


def stylesheet() -> str:
    """The packaged ``style.qss`` (package data in ``genstudio.qt.resources``). Qt resolves
    ``url()`` against the working directory, so ``@RES@`` becomes the resource folder's path."""
    res = resources.files("genstudio.qt.resources")
    return res.joinpath("style.qss").read_text(encoding="utf-8").replace("@RES@", Path(str(res)).as_posix())


def dark_palette() -> QPalette:
    pal = QPalette()
    roles = {
        QPalette.Window: BG, QPalette.WindowText: TEXT, QPalette.Base: BASE, QPalette.AlternateBase: PANEL,
        QPalette.ToolTipBase: PANEL, QPalette.ToolTipText: TEXT, QPalette.Text: TEXT, QPalette.Button: PANEL,
        QPalette.ButtonText: TEXT, QPalette.BrightText: "#ffffff", QPalette.Highlight: "#2f5fb8",
        QPalette.HighlightedText: "#ffffff", QPalette.Link: ACCENT, QPalette.PlaceholderText: DIM,
    }
    for role, colour in roles.items():
        pal.setColor(role, QColor(colour))
    for role in (QPalette.WindowText, QPalette.Text, QPalette.ButtonText):
        pal.setColor(QPalette.Disabled, role, QColor("#5b6070"))
    return pal


def apply_theme(app: QApplication) -> None:
    """Fusion + dark palette + stylesheet, and matching pyqtgraph defaults (plots made afterwards)."""
    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    app.setStyleSheet(stylesheet())
    try:
        import pyqtgraph as pg

        pg.setConfigOptions(background=BASE, foreground=DIM, antialias=True)
    except ImportError:  # pragma: no cover - pyqtgraph is a hard dependency, but the shell can live without it
        pass


def configure_app(app: QApplication) -> QApplication:
    """Names (QSettings locations derive from them) and theme; safe to call on an existing app."""
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(ORG_NAME)
    app.setOrganizationDomain(ORG_DOMAIN)
    apply_theme(app)
    return app


def create_app(argv: Sequence[str] | None = None) -> QApplication:
    """The process's QApplication, created if needed and configured."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv) if argv is not None else sys.argv[:1])
    return configure_app(app)


def main(argv: Sequence[str] | None = None, watch: Any = None) -> int:
    """Launch the GUI (following run ``watch`` as another process writes it); returns the event
    loop's exit code."""
    app = create_app(argv)
    from genstudio.qt.main_window import MainWindow

    window = MainWindow(staged=True)  # its shell paints before torch is imported, the rest follows
    window.show()
    if watch is not None:
        window.when_ready(lambda: window.watch_run(watch))
    return app.exec()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv))
