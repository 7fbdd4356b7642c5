"""Tours shipped with GenStudio (``genstudio demo NAME``): data files read by ``genstudio.core.tour``."""
