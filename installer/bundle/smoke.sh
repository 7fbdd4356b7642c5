#!/usr/bin/env bash
# Smoke test of a built bundle: --version, the plugin list (entry points found inside the bundle)
# and an offscreen screenshot of the window. GENSTUDIO_BUNDLE = the bundled binary.
set -euo pipefail
BIN=${GENSTUDIO_BUNDLE:-dist/genstudio/genstudio}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export GENSTUDIO_DATA_DIR="$tmp/data" QT_QPA_PLATFORM=offscreen
"$BIN" --version
"$BIN" plugins | tee "$tmp/plugins.txt"
grep -q "ddpm" "$tmp/plugins.txt" && grep -q "biggan" "$tmp/plugins.txt"
! grep -qi "broken\|error" "$tmp/plugins.txt"
"$BIN" shot --out "$tmp/window.png"
test -s "$tmp/window.png"
cp "$tmp/window.png" "${GENSTUDIO_SMOKE_SHOT:-/dev/null}" 2>/dev/null || true
echo "bundle smoke test passed"
