"""Entry script of the PyInstaller bundle: the `genstudio` command (GUI by default)."""

import multiprocessing
import sys

from genstudio.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # DataLoader / torch workers re-enter the frozen binary
    sys.exit(main())
