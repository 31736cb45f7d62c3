"""Export jobs persist (issue 19): one cut short by kill -9 is reported failed after the
restart with no temp file left; a finished one is still served after a restart."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from server.sim.clips import ClipSpec, make_clip
from tests.conftest import ServerProcess, camera_toml, wait_until

ADMIN = {"name": "admin", "password": "admin-password-1"}


class Api:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}/api/v1"
        self.token = ""

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(
            self.base + path, method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json",
                     **({"Authorization": f"Bearer {self.token}"} if self.token else {})},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def login(self) -> None:
        def up() -> bool:
            try:
                return self.call("GET", "/openapi.json")[0] == 200
            except OSError:
                return False

        wait_until(up, 60, "the API")
        status, body = self.call("POST", "/auth/login", ADMIN)
        assert status == 200, body
        self.token = body["token"]


def _span(db: Path) -> tuple[int, int]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        row = con.execute("SELECT min(start_us), max(end_us) FROM segments WHERE state = 'closed'")
        return tuple(row.fetchone())  # type: ignore[return-value]
    finally:
        con.close()


def _closed(db: Path) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute("SELECT count(*) FROM segments WHERE state = 'closed'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def test_an_export_cut_short_by_kill_9_is_failed_after_restart_without_temp_files(
    tmp_path: Path,
    clip_dir: Path,
    camera_host: Callable[..., object],
    server_process: Callable[[str], ServerProcess],
) -> None:
    clip = make_clip(clip_dir / "8mbps.mp4", ClipSpec(640, 360, fps=25, seconds=6,
                                                      bitrate=8_000_000, label="busy"))  # fmt: skip
    host = camera_host({"cam": clip})
    toml = camera_toml([("cam", host.url("cam"), None)])
    toml = toml.replace("segment_seconds = 15", "segment_seconds = 2")
    toml = toml.replace("discovery = false", 'discovery = false\nroles = "ingest,record,api"')
    server = server_process(toml)
    env = {"VIGIA_ADMIN_PASSWORD": ADMIN["password"]}
    server.start(env)
    api = Api(server.api_port)
    api.login()
    db = server.data_dir / "catalog.db"
    wait_until(lambda: _closed(db) >= 6, 60, "12 s of recordings")
    start_us, end_us = _span(db)
    exports = server.data_dir / "exports"
    body = {"cameras": [{"camera": "cam"}], "start_us": start_us, "end_us": end_us,
            "exact": True}  # fmt: skip

    # a finished export first: it must survive the restart
    status, done = api.call("POST", "/exports", body)
    assert status == 202, done
    done = wait_until(lambda: (r := api.call("GET", f"/exports/{done['id']}")[1])["state"]
                      == "done" and r, 60, "the first export")  # fmt: skip
    assert "manifest.json" in done["files"], done

    # then one stopped in the middle of writing: SIGSTOP once its temp file exists, so the
    # kill -9 surely lands mid-export (a job that finished in between is tried again)
    assert server.proc is not None
    for _attempt in range(5):
        status, job = api.call("POST", "/exports", body)
        assert status == 202, job
        tmp = wait_until(lambda j=job["id"]: next((exports / j).glob(".*.tmp"), None)
                         or api.call("GET", f"/exports/{j}")[1]["state"] == "done",
                         60, "the export to start writing", poll=0.005)  # fmt: skip
        if tmp is True:
            continue
        os.kill(server.proc.pid, signal.SIGSTOP)
        if tmp.exists():
            break
        os.kill(server.proc.pid, signal.SIGCONT)
    else:
        raise AssertionError("every export finished before it could be stopped")
    server.kill9()
    assert tmp.exists(), "the temp file is there after the crash"

    server.start(env)
    api = Api(server.api_port)  # a new run, a new port
    api.login()
    status, after = api.call("GET", f"/exports/{job['id']}")
    assert status == 200, after
    assert after["state"] == "failed" and "interrupted" in after["error"], after
    assert not list(exports.rglob("*.tmp")) and not (exports / job["id"]).exists()
    status, kept = api.call("GET", f"/exports/{done['id']}")
    assert status == 200 and kept["state"] == "done" and kept["files"] == done["files"], kept
    req = urllib.request.Request(f"{api.base}/exports/{done['id']}/files/manifest.json",
                                 headers={"Authorization": f"Bearer {api.token}"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as r:
        assert json.loads(r.read())["exported_by"] == "admin"
    assert server.stop() == 0


def test_exports_are_owned_counted_by_retention_checked_and_expired(
    tmp_path: Path, camera_clips: list
) -> None:
    from server.catalog import Catalog
    from server.catalog.exports import ExportStore
    from server.datadir import DataDir
    from server.export.cutter import ExportError
    from server.export.jobs import ExportJobs
    from server.recording.recovery import check
    from server.recording.retention import Retention, VolumeLimits
    from tests.test_export import T0, S, _record

    data = DataDir(tmp_path / "data")
    data.create()
    catalog = Catalog(data.catalog)
    _record(catalog, data, "cam", camera_clips[0][0], loops=2)
    jobs = ExportJobs(catalog, data)
    try:
        job_id = jobs.submit([("cam", "main")], T0, T0 + 6 * S, exported_by="ann")
        st = wait_until(lambda: (s := jobs.status(job_id)).state == "done" and s, 60, "export")
        assert st.owner == "ann" and [j.id for j in jobs.jobs(owner="ann")] == [job_id]
        assert jobs.jobs(owner="bob") == []
        size = sum((st.dir / f).stat().st_size for f in st.files)
        assert ExportStore(catalog).total_bytes() == size > 0

        # the video alone is within max_bytes; with the export it is not
        limit = catalog.total_bytes()
        report = Retention(catalog, data, VolumeLimits(max_bytes=limit), FixedAt(T0)).run_once()
        assert report.reasons.get("volume-bytes", 0) >= 1 and report.freed_bytes >= size

        (st.dir / ".cam-main.mp4.tmp").write_bytes(b"x")
        (data.root / "exports" / "0123456789abcdef").mkdir()
        kinds = {p.kind for p in check(catalog, data, repair=True).problems}
        assert {"export-temp", "orphan-export"} <= kinds
        assert not (st.dir / ".cam-main.mp4.tmp").exists()
        assert not (data.root / "exports" / "0123456789abcdef").exists()

        assert jobs.expire(before_us=st.finished_us + 1) == 1  # type: ignore[operator]
        assert not st.dir.exists() and ExportStore(catalog).all() == []
    finally:
        jobs.close()
    # quotas: the window, and the jobs one user may have waiting
    jobs = ExportJobs(catalog, data, max_pending_per_user=1, max_span_us=3600 * S)
    try:
        with pytest.raises(ExportError, match="at most 1 hours"):
            jobs.submit([("cam", "main")], 0, 2**62, exported_by="ann")
        lo = min(seg.start_us for seg in catalog.segments())  # retention took the oldest
        hi = max(seg.end_us for seg in catalog.segments())
        first = jobs.submit([("cam", "main")], lo, hi, exact=True, exported_by="ann")
        with pytest.raises(ExportError, match="ann already has 1 exports queued or running"):
            jobs.submit([("cam", "main")], lo, lo + 2 * S, exported_by="ann")
        jobs.submit([("cam", "main")], lo, lo + 2 * S, exported_by="bob")  # others still may
        wait_until(lambda: jobs.status(first).state == "done", 60, "the first export")
        jobs.submit([("cam", "main")], lo, lo + 2 * S, exported_by="ann")
    finally:
        jobs.close()
        catalog.close()


class FixedAt:
    def __init__(self, now_us: int) -> None:
        self.now = now_us

    def now_us(self) -> int:
        return self.now
