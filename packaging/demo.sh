#!/usr/bin/env bash
# Runs the recorder with demo cameras; opens the workstation too when a display is available.
set -euo pipefail
bin=$1 data=$2 cameras=$3
"$bin/vigia-server" --data-dir "$data" --demo "$cameras" &
server=$!
trap 'kill -INT $server 2>/dev/null; wait $server' EXIT INT TERM
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  echo "== Workstation (close its window to stop the demo)"
  "$bin/vigia" --server http://127.0.0.1:8480 || true
else
  echo "== No display: recorder only. Recordings appear under $data/recordings (Ctrl-C stops)"
  wait $server
fi
