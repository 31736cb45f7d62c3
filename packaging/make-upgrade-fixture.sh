#!/usr/bin/env bash
# Remakes tests/fixtures/catalog-0.1.0/: a small data dir (catalog.db and its segment files)
# an export (export/) and the workstation's settings (workstation/) made by Vigia 0.1.0, the last release (commit 4aa413e; git tags may not travel, so the
# release is named by its commit). tests/test_upgrade.py opens it with the current code: the
# catalog must migrate, its recordings play, its export verify, the settings load.
# Usage: packaging/make-upgrade-fixture.sh   (from the repository, with its .venv)
set -euo pipefail
release=4aa413e
repo=$(git rev-parse --show-toplevel)
py=${PYTHON:-$repo/.venv/bin/python}
out=$repo/tests/fixtures/catalog-0.1.0
work=$(mktemp -d)
cleanup() {
  git -C "$repo" worktree remove --force "$work/release" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
git -C "$repo" worktree add --detach --quiet "$work/release" "$release"
# Run from the release's tree: `python -m server` there imports the 0.1.0 code.
cd "$work/release"
"$py" - "$work" <<'PY'
import os, signal, sqlite3, subprocess, sys, time
from pathlib import Path

from server import __version__
from server.sim.clips import ClipSpec, make_clip

assert __version__ == "0.1.0", __version__
work = Path(sys.argv[1])
clip = make_clip(work / "clip.mp4", ClipSpec(320, 180, fps=10, seconds=4, label="v0.1.0"))
config = work / "vigia.toml"
config.write_text(f"""
[server]
listen = "127.0.0.1:0"
discovery = false
[recording]
segment_seconds = 2
[storage]
min_free_bytes = 0
[nats]
enabled = false
[analytics]
enabled = false
[[cameras]]
id = "cam"
name = "Camera recorded by 0.1.0"
main = "{clip.as_uri()}"
""")
data = work / "data"
env = {**os.environ, "VIGIA_ADMIN_PASSWORD": "admin-password-1"}
proc = subprocess.Popen([sys.executable, "-m", "server", "--data-dir", str(data), "--config",
                         str(config)], env=env)
deadline = time.monotonic() + 120
closed = 0
while closed < 3:  # a few closed segments, then stop
    if time.monotonic() > deadline or proc.poll() is not None:
        proc.kill()
        sys.exit("0.1.0 did not record 3 segments in 120 s")
    time.sleep(0.5)
    if (data / "catalog.db").exists():
        with sqlite3.connect(data / "catalog.db") as db:
            try:
                (closed,) = db.execute(
                    "SELECT count(*) FROM segments WHERE state = 'closed'").fetchone()
            except sqlite3.OperationalError:
                closed = 0
proc.send_signal(signal.SIGTERM)
assert proc.wait(60) == 0

# an export of the first two segments, as 0.1.0 makes and signs it
from server.catalog import Catalog
from server.datadir import DataDir
from server.export.jobs import ExportJobs

catalog = Catalog(data / "catalog.db")
first, second = catalog.segments(state="closed")[:2]
jobs = ExportJobs(catalog, DataDir(data))
job = jobs.submit([("cam", "main")], first.start_us, second.end_us)
deadline = time.monotonic() + 60
while jobs.status(job).state not in ("done", "failed", "cancelled"):
    assert time.monotonic() < deadline, "export did not finish"
    time.sleep(0.2)
status = jobs.status(job)
assert status.state == "done", status
jobs.close()
catalog.close()
(work / "export-dir").write_text(str(status.dir))

# the workstation's settings as 0.1.0 writes them
from keyring.backends import null
from app.settings import SavedServer, SecretStore, Settings

settings = Settings(work / "workstation", secrets=SecretStore(null.Keyring()))
settings.set_preferences(language="pt_BR", tile_stream_threshold_px=800)
settings.save_server(SavedServer("http://127.0.0.1:8480", name="Front office",
                                 server_id=DataDir(data).server_id(), user="operator"))
PY
rm -rf "$out"
mkdir -p "$out"
cp "$work/data/catalog.db" "$out/"
cp -r "$work/data/recordings" "$out/"
cp -r "$(cat "$work/export-dir")" "$out/export"
mkdir -p "$out/workstation"
cp "$work/workstation/settings.json" "$out/workstation/"
test ! -e "$work/data/catalog.db-wal" || { echo "catalog not checkpointed" >&2; exit 1; }
du -sh "$out"
