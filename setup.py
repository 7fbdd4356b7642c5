"""Maps the top-level ``plugins/`` folder to the importable package ``genstudio_plugins``.

pyproject.toml cannot express "find packages under plugins/ and rename them", so this is the one
piece of setup logic that stays in code.
"""

from setuptools import find_packages, setup

_plugin_pkgs = ["genstudio_plugins" + p[len("plugins"):] for p in find_packages(include=["plugins", "plugins.*"])]

setup(
    packages=find_packages(include=["genstudio", "genstudio.*"]) + _plugin_pkgs,
    package_dir={"genstudio_plugins": "plugins"},
)
