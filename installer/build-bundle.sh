#!/usr/bin/env bash
# A one-folder desktop bundle with PyInstaller: dist/genstudio/genstudio (+ a .desktop entry and icon).
#   bash installer/build-bundle.sh            # build (a few minutes; about 1 GB with the CPU torch)
#   bash installer/build-bundle.sh --smoke    # build, then run the bundled binary's smoke test
# Needs the app installed (bash installer/install.sh) and `pip install pyinstaller`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${GENSTUDIO_BUNDLE_DIR:-dist}
$PY -c "import PyInstaller" 2>/dev/null || $PY -m pip install -q "pyinstaller>=6.10"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# plugins/ is installed as the package genstudio_plugins (see pyproject.toml); give PyInstaller
# that name on its search path so it can collect the folder, found at run time via entry points
ln -s "$PWD/plugins" "$work/genstudio_plugins"
# collecting Qt modules imports them: no display is needed for that
QT_QPA_PLATFORM=offscreen $PY -m PyInstaller --noconfirm --clean --onedir --name genstudio \
  --distpath "$OUT" --workpath "$work/build" --specpath "$work" \
  --paths "$PWD" --paths "$work" \
  --copy-metadata genstudio \
  --collect-submodules genstudio --collect-data genstudio \
  --collect-submodules genstudio_plugins \
  --collect-data pyqtgraph \
  --collect-submodules vispy.app.backends --collect-submodules vispy.scene --collect-submodules vispy.visuals --collect-data vispy \
  --hidden-import vispy.app.backends._pyside6 \
  --collect-data sklearn --collect-all skimage --collect-all imageio_ffmpeg \
  --collect-submodules ot \
  --exclude-module tkinter --exclude-module PyQt5 --exclude-module PyQt6 --exclude-module PySide2 \
  installer/bundle/launcher.py
install -m 644 installer/bundle/genstudio.desktop "$OUT/genstudio/genstudio.desktop"
install -m 644 installer/bundle/genstudio.svg "$OUT/genstudio/genstudio.svg"
echo "bundle: $OUT/genstudio ($(du -sh "$OUT/genstudio" | cut -f1)); run $OUT/genstudio/genstudio"
if [ "${1:-}" = "--smoke" ]; then
  GENSTUDIO_BUNDLE="$OUT/genstudio/genstudio" bash installer/bundle/smoke.sh
fi
