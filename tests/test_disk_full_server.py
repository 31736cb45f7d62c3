"""A full volume under a real ``vigia-server`` with real RTSP cameras: it keeps running, frees
space by retention, records again, and starts again on a full volume (issue 19)."""

from __future__ import annotations

import errno
import os
import sqlite3
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server.sim.clips import ClipSpec, make_clip
from tests.conftest import ServerProcess, camera_toml, wait_until
from tests.helpers import small_tmpfs

MiB = 1024 * 1024


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """A real 64 MiB file system (tmpfs): the recorder's data dir, which really fills up."""
    with small_tmpfs(tmp_path, 64) as vol:
        yield vol


def fill(path: Path) -> int:
    """Write ``path`` until the volume has no byte left (as another program filling it would)."""
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (MiB, 64 * 1024, 4096):
            try:
                while True:
                    written += os.write(fd, b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return written


def closed_since(db: Path, since_us: int) -> dict[str, int]:
    """Closed segments per camera that started after ``since_us`` (read-only, while it runs)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = con.execute(
            "SELECT st.camera_id, count(*) FROM segments s JOIN streams st ON st.id = s.stream_id"
            " WHERE s.state = 'closed' AND s.start_us > ? GROUP BY st.camera_id",
            (since_us,),
        ).fetchall()
    except sqlite3.OperationalError:  # the recorder holds the write lock for a moment
        return {}
    finally:
        con.close()
    return dict(rows)


def metric(port: int, name: str) -> float:
    """One sample of ``/metrics``, ``name`` with its labels as Prometheus writes them."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def written(port: int, camera: str) -> float:
    return metric(port, f'vigia_segments_written_total{{camera="{camera}",stream="main"}}')


def test_recorder_survives_a_full_volume_and_restarts_on_one(
    volume: Path,
    clip_dir: Path,
    camera_host: Callable[..., object],
    server_process: Callable[[str], ServerProcess],
) -> None:
    """Two 8 Mbit/s cameras (2 MB/s in all) on a 64 MiB tmpfs; another program fills the
    volume to its last byte twice: once while recording, once while the recorder is down
    after a kill -9 (open segments left for recovery).

    The issue asked for two minutes past full; 20 s are enough here: retention checks the
    volume every second, so 20 s are twenty passes and ten segment rotations per camera
    after the full moment, and the assertion is on segments *started* after it, which can
    only exist once space was freed and the catalog written again. Longer adds run time
    and proves nothing more; ``VIGIA_PAST_FULL_S=120`` runs the issue's two minutes.
    """
    clip = make_clip(clip_dir / "8mbps.mp4", ClipSpec(640, 360, fps=25, seconds=6,
                                                      bitrate=8_000_000, label="busy"))  # fmt: skip
    host = camera_host({"a": clip, "b": clip})
    toml = camera_toml([("a", host.url("a"), None), ("b", host.url("b"), None)])
    toml = toml.replace("segment_seconds = 15", "segment_seconds = 2")
    # no analytics: its detector model alone would take half of the small volume
    toml = toml.replace("discovery = false", 'discovery = false\nroles = "ingest,record,live,api"')
    toml = toml.replace(
        "min_free_bytes = 0",
        f"min_free_bytes = {4 * MiB}\nreserve_bytes = {4 * MiB}\nretention_interval_s = 1",
    )
    server = server_process(toml)
    server.data_dir = volume / "data"
    db = server.data_dir / "catalog.db"
    server.start({"VIGIA_ADMIN_PASSWORD": "correct horse battery"})
    port = server.api_port
    assert server.proc is not None
    wait_until(lambda: db.exists() and sum(closed_since(db, 0).values()) >= 4, 60,
               "a few segments before the volume fills")  # fmt: skip
    assert (server.data_dir / "catalog.reserve").stat().st_blocks * 512 >= 4 * MiB

    assert fill(volume / "ballast") > 0
    before = {cam: written(port, cam) for cam in "ab"}
    # keeps recording past full (see the docstring for the length)
    time.sleep(float(os.environ.get("VIGIA_PAST_FULL_S", "20")))
    assert server.proc.poll() is None, server.log()
    log = server.log_path.read_text(errors="replace")
    assert "volume full: released the catalog reserve" in log
    # retention deletes segments as fast as they close now: count them as they close
    after = {cam: written(port, cam) - before[cam] for cam in "ab"}
    assert min(after.values()) >= 3, (after, server.log())
    assert metric(port, "vigia_storage_full_total") >= 1
    assert metric(port, 'vigia_storage_state{state="ok"}') == 1.0

    server.kill9()  # open segments and .part files left for start-up recovery
    fill(volume / "ballast2")
    start_at = len(server.log_path.read_bytes())
    server.start({"VIGIA_ADMIN_PASSWORD": "correct horse battery"})
    wait_until(lambda: b"HTTP API on" in server.log_path.read_bytes()[start_at:], 60, "the API")
    port = server.api_port  # a new run, a new port
    wait_until(lambda: min(written(port, cam) for cam in "ab") >= 2, 60,
               "recording after a restart on a full volume")  # fmt: skip
    assert server.proc.poll() is None
    restart_log = server.log_path.read_bytes()[start_at:].decode(errors="replace")
    freed = restart_log.index("retention deleted")
    assert freed < restart_log.index("HTTP API on"), "retention frees space before the rest"
    assert "start-up recovery incomplete" not in restart_log
    assert server.stop() == 0
