#!/usr/bin/env bash
# One-step set-up on Debian/Ubuntu (and macOS): system libraries Qt/vispy need, the right torch
# FIRST (installer/pick_torch.py: kept if present, CUDA with an NVIDIA driver, else the CPU wheel
# index, falling back to the default index), so "torch>=2.2" pulls nothing more; then GenStudio.
#   bash installer/install.sh          # the app
#   bash installer/install.sh --test   # the app (editable) + test extras + Xvfb for the GL tests
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"

if command -v apt-get >/dev/null; then
  pkgs="libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libxcb-image0 libxcb-render-util0
        libxcb-shape0 libxcb-xinerama0 libxcb-randr0 libxcb-xkb1 libgl1 libegl1 libgl1-mesa-dri libglx-mesa0
        libegl-mesa0 libfontconfig1 libdbus-1-3 libportaudio2"  # libportaudio2: the codec panel's playback
  [ "${1:-}" = "--test" ] && pkgs="$pkgs xvfb xauth sox"  # sox: soxi checks the exported WAVs
  [ "${1:-}" = "--test" ] && pkgs="$pkgs chromium"  # headless Chromium opens the HTML report in tests
  missing=$(for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$missing" ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
  fi
fi

$PY -m pip install -q --upgrade pip
$PY installer/pick_torch.py --install
if [ "${1:-}" = "--test" ]; then
  $PY -m pip install -q -e ".[test,audio]"
else
  $PY -m pip install -q ".[audio]"
fi
echo "GenStudio installed: run 'genstudio' to launch."
