"""Package data for the Qt shell (stylesheet); a package so importlib.resources finds it in any install."""
