#!/usr/bin/env bash
# Runs the recorder with demo cameras; opens the workstation too when a display is available,
# logged in as admin with a 2x2 wall of the first four cameras.
set -euo pipefail
bin=$1 data=$2 cameras=$3
url=http://127.0.0.1:8480
mkdir -p "$data"
# The demo admin's password: made once, kept in the data dir (the recorder uses it only when it
# creates its first admin, so a data dir made before this file existed keeps its own password)
pwfile="$data/demo-admin-password"
if [ ! -s "$pwfile" ]; then
  (umask 077; "$bin/python" -c 'import secrets; print(secrets.token_urlsafe(12))' >"$pwfile")
fi
password=$(cat "$pwfile")
VIGIA_ADMIN_PASSWORD=$password "$bin/vigia-server" --data-dir "$data" --demo "$cameras" &
server=$!
trap 'kill -INT $server 2>/dev/null; wait $server' EXIT INT TERM
echo "== Demo login: admin / $password (also in $pwfile)"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  echo "== Waiting for the recorder at $url (the first run prepares the demo clips)"
  "$bin/python" - "$url" "$server" <<'PY'
import os, sys, time, urllib.request
url, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 300
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("the recorder stopped; see its messages above")
    try:
        urllib.request.urlopen(f"{url}/api/v1/server", timeout=2)
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)  # it answers (even 401): it is up
    except OSError:
        time.sleep(0.5)
sys.exit(f"the recorder did not answer at {url} within 300 s")
PY
  echo "== Workstation (close its window to stop the demo)"
  VIGIA_PASSWORD=$password "$bin/vigia" --server "$url" --user admin --wall 2x2 || true
else
  echo "== No display: recorder only. Recordings appear under $data/recordings (Ctrl-C stops)"
  wait $server
fi
