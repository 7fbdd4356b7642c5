"""The panel contract (shared by every panel and the main window).

A panel only reads events and the run store, and sends commands through :class:`AppContext`;
it never calls a plugin while a run trains. Events arrive in the GUI thread in batches, once per
screen tick (the bridge coalesces them), so ``on_events`` should update buffers for every event
and redraw once at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from PySide6.QtWidgets import QWidget

from genstudio.core.events import Event, EventBus
from genstudio.core.runs import Run, RunError, RunStore

if TYPE_CHECKING:  # both import torch; the window's shell paints without it
    from genstudio.core.jobs import Control
    from genstudio.core.registry import Registry


class AppContext(Protocol):
    """What panels may use. The main window implements it."""

    store: RunStore
    registry: Registry
    bus: EventBus

    def current_run(self) -> Run | None: ...

    def start_job(self, name: str, run: Run | None, job: Callable[[Control], Iterator[Any]]) -> Control:
        """Run the generator ``job(control)`` in a worker thread; returns its Control.
        Exceptions become an error dialog and a failed status, never a crash."""

    def job_running(self, name: str) -> bool: ...

    def show_error(self, message: str, details: str = "") -> None: ...

    def status_message(self, text: str, ms: int = 4000) -> None: ...


class Panel(QWidget):
    """Base for dockable panels."""

    panel_id: ClassVar[str] = "panel"  # used by `genstudio shot PANEL` and saved layouts
    title: ClassVar[str] = "Panel"
    area: ClassVar[str] = "tab:sampler"  # dock area, or "tab:<panel_id>" (behind that panel)
    order: ClassVar[int] = 100  # placement order in the window (lower first)
    tools: ClassVar[tuple[str, ...]] = ()  # the core tools it drives (genstudio.core.tools)
    # False while its dock is closed or behind another tab (the window keeps it up to date; Qt
    # leaves such panels "visible", only off-screen): panels skip redraws then, not updates.
    on_screen: bool = True

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setObjectName(self.panel_id)

    def why_not(self, tool: str, run: Run | None) -> str:
        """'' if ``run`` can use ``tool`` (from the faces its run.json records), else why not."""
        from genstudio.core import tools

        if run is None:
            return "select a run"
        try:
            info = run.info()
            try:
                cls = self.ctx.registry.get(info.get("plugin", ""))
            except KeyError:
                cls = None
            return tools.why_not(tool, info, cls)
        except (OSError, ValueError, KeyError, RunError) as e:
            return str(e).strip("'\"")

    def set_on_screen(self, visible: bool) -> None:
        """The window says the panel's dock came into sight or left it; calls :meth:`screen_changed`."""
        if visible != self.on_screen:
            self.on_screen = visible
            self.screen_changed(visible)

    def screen_changed(self, visible: bool) -> None:
        """The panel came into sight (catch up on skipped redraws) or left it."""

    def on_events(self, events: list[Event]) -> None:
        """A batch of events since the last tick (all kinds, all runs; filter by run_id)."""

    def set_run(self, run: Run | None) -> None:
        """The selected run changed (None = no selection)."""
