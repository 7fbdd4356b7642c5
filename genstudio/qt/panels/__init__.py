"""Dockable panels. Each one is a :class:`~genstudio.qt.panels.base.Panel` subclass in its own file."""
