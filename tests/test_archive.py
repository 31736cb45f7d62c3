"""Archive to S3-compatible storage against a real SeaweedFS on 127.0.0.1 (docs/design/archive.md).

Segments are 2 s long (the issue says 10 s; shorter keeps the suite's budget while every
segment still goes through close, hash, backlog and upload)."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, START_S, ServerProcess, camera_toml, wait_until
from tests.s3server import ACCESS_KEY, SECRET_KEY, SeaweedS3

ADMIN_PASSWORD = "archive-test-pass"
PREFIX = "site-test/"


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[SeaweedS3]:
    server = SeaweedS3(tmp_path / "s3")
    server.start()
    yield server
    server.stop()


def archive_toml(s3: SeaweedS3, clip: Path, extra: str = "") -> str:
    archive = "\n".join([
        "[archive]", f'endpoint = "{s3.endpoint}"', f'bucket = "{s3.bucket}"',
        f'prefix = "{PREFIX}"', "retry_max_s = 4", extra,
    ])  # fmt: skip
    toml = camera_toml([("cam", clip.resolve().as_uri(), None)], archive)
    return toml.replace("segment_seconds = 15", "segment_seconds = 2")


def keys_env(secret: str = SECRET_KEY) -> dict[str, str]:
    return {
        "VIGIA_ARCHIVE_ACCESS_KEY": ACCESS_KEY,
        "VIGIA_ARCHIVE_SECRET_KEY": secret,
        "VIGIA_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }


def query(rec: ServerProcess, sql: str, params: tuple = ()) -> list[tuple]:
    db = sqlite3.connect(f"file:{rec.data_dir / 'catalog.db'}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # the recorder has not migrated the catalog yet
        return []
    finally:
        db.close()


def closed(rec: ServerProcess) -> list[tuple[int, str, str, int]]:
    """(id, path, sha256, end_us) of the closed segments."""
    return query(rec, "SELECT id, path, sha256, end_us FROM segments WHERE state = 'closed'")


def archived(rec: ServerProcess) -> dict[int, tuple[str, str, int]]:
    rows = query(rec, "SELECT segment_id, key, sha256, archived_us FROM archived")
    return {r[0]: r[1:] for r in rows}


def backlog(rec: ServerProcess) -> int:
    rows = query(rec, "SELECT count(*) FROM archive_backlog")
    return rows[0][0] if rows else 0


def api(port: int, path: str, method: str = "GET", body: dict | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    """(status, headers, body) of an API call as the admin."""
    base = f"http://127.0.0.1:{port}/api/v1"
    login = json.dumps({"name": "admin", "password": ADMIN_PASSWORD}).encode()
    req = urllib.request.Request(f"{base}/auth/login", login, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        token = json.load(r)["token"]
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{base}{path}", data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json", **(headers or {}),
    })  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, dict(r.headers), r.read()


def server_status(port: int) -> dict:
    return json.loads(api(port, "/server")[2])


def start(
    server_process: Callable[[str], ServerProcess], toml: str, env: dict[str, str]
) -> ServerProcess:
    rec = server_process(toml)
    rec.start(env=env)
    wait_until(lambda: "HTTP API on" in rec.log(), START_S, "the recorder's API")
    return rec


def assert_in_bucket(s3: SeaweedS3, rec: ServerProcess, ids: list[int]) -> None:
    """Each segment's object hashes to the catalog's SHA-256 (computed when it closed), is the
    local file where that is still there, and its manifest says so."""
    catalog = {r[0]: r for r in closed(rec)}
    done = archived(rec)
    for sid in ids:
        key, archived_sha, _ = done[sid]
        body = s3.get(PREFIX + key)
        assert hashlib.sha256(body).hexdigest() == archived_sha, f"{key}: bytes differ"
        if sid in catalog:
            _, path, sha, _ = catalog[sid]
            assert key == path and archived_sha == sha, (sid, key, path)
            assert body == (rec.data_dir / path).read_bytes()
        manifest = json.loads(s3.get(PREFIX + key + ".json"))
        assert manifest["sha256"] == archived_sha and manifest["segment_id"] == sid


def test_segments_reach_the_bucket_within_30_s_and_play_from_it_once_local_copies_go(
    s3: SeaweedS3, server_process: Callable[[str], ServerProcess], camera_clips
) -> None:
    """Local retention (a 1.5 MB volume cap, ~6 segments) deletes archived segments while
    recording; the segment API lists them as 'archived' and serves their bytes from the bucket
    with HTTP Range, and they decode to the frames recorded."""
    toml = archive_toml(s3, camera_clips[0][0]).replace(
        "min_free_bytes = 0", "min_free_bytes = 0\nmax_bytes = 1500000\nretention_interval_s = 1"
    )
    rec = start(server_process, toml, keys_env())
    port = rec.api_port
    wait_until(lambda: len(closed(rec)) >= 4, 60, "4 closed segments")
    first = [r[0] for r in closed(rec)]
    closed_at = {r[0]: r[3] for r in closed(rec)}
    wait_until(lambda: set(first) <= set(archived(rec)), 30, "the closed segments archived")
    for sid in first:
        lag_s = (archived(rec)[sid][2] - closed_at[sid]) / 1e6
        assert lag_s < 30, f"segment {sid} archived {lag_s:.1f} s after closing"
    assert all(sha and len(sha) == 64 for _, _, sha, _ in closed(rec))
    assert_in_bucket(s3, rec, first)
    status = server_status(rec.api_port)["archive"]
    assert status["state"] == "ok" and status["error"] is None
    assert status["archived_segments"] >= len(first) and status["uploaded_bytes"] > 0
    assert f"{PREFIX}catalog/cameras/cam.json" in s3.objects(PREFIX + "catalog/")
    with urllib.request.urlopen(f"{rec.base_url}/metrics", timeout=10) as r:
        metrics = r.read().decode()
    assert "vigia_archive_up 1.0" in metrics and "vigia_archive_backlog_segments" in metrics

    # local retention takes archived segments; they stay listed and playable
    wait_until(lambda: set(first) - {r[0] for r in closed(rec)}, 60, "a local copy deleted")
    gone = min(set(first) - {r[0] for r in closed(rec)})
    window = f"start_us={closed_at[first[0]] - 60_000_000}&end_us={closed_at[first[-1]] + 1}"
    segs = json.loads(api(port, f"/cameras/cam/segments?{window}")[2])
    where = {x["id"]: x["location"] for x in segs}
    assert where[gone] == "archived" and set(where.values()) <= {"archived", "both", "local"}
    timeline = json.loads(api(port, f"/recordings?camera=cam&{window}")[2])
    assert timeline["locations"][0]["where"] == "archived"
    assert not timeline["gaps"] or timeline["gaps"][0]["end_us"] <= segs[0]["start_us"]
    status, headers, part = api(port, f"/segments/{gone}/media", headers={"Range": "bytes=0-99"})
    key, sha, _ = archived(rec)[gone]
    whole = s3.get(PREFIX + key)
    assert status == 206 and part == whole[:100]
    assert headers["Content-Range"] == f"bytes 0-99/{len(whole)}"
    status, _, body = api(port, f"/segments/{gone}/media")
    assert status == 200 and hashlib.sha256(body).hexdigest() == sha
    info = next(x for x in segs if x["id"] == gone)
    frames = decoded_frames(body)
    assert len(frames) == info["frames"] > 0
    assert frames == decoded_frames(s3.get(PREFIX + key)), "archive-only footage decodes as stored"

    # per-camera policy through the API
    policy = json.loads(api(port, "/cameras/cam/archive")[2])
    assert policy == {"camera": "cam", "mode": None, "effective": "all", "archive_days": None,
                      "effective_archive_days": 365.0}  # fmt: skip
    body = {"mode": "none", "archive_days": 30}
    policy = json.loads(api(port, "/cameras/cam/archive", "PUT", body)[2])
    assert policy["effective"] == "none" and policy["effective_archive_days"] == 30

    cli = subprocess.run(
        [sys.executable, "-m", "server", "archive", "verify", "--data-dir", str(rec.data_dir),
         "--config", str(rec.config), "--sample", "3"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env={**os.environ, **keys_env()},
    )  # fmt: skip
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "OK: 3 archived segment(s)" in cli.stdout
    rec.stop()


def decoded_frames(mp4: bytes) -> list[str]:
    """A digest of each decoded picture: equal lists mean the same frames."""
    import io

    import av

    with av.open(io.BytesIO(mp4)) as container:
        return [
            hashlib.sha256(frame.to_ndarray(format="gray").tobytes()).hexdigest()[:16]
            for frame in container.decode(video=0)
        ]


def test_store_outage_and_kill_9_mid_upload_lose_nothing(
    s3: SeaweedS3, server_process: Callable[[str], ServerProcess], camera_clips
) -> None:
    """The S3 server is killed for 20 s (the issue's 2 minutes, shortened for the suite;
    ``VIGIA_ARCHIVE_OUTAGE_S=120`` runs them) while recording; then, while the backlog drains at
    a 400 kB/s cap (uploads in flight; the camera makes ~125 kB/s), the recorder is killed with
    SIGKILL and restarted: every segment ends up in the bucket once."""
    toml = archive_toml(s3, camera_clips[0][0], "max_bytes_per_s = 400000")
    rec = start(server_process, toml, keys_env())
    wait_until(lambda: archived(rec), 40, "a first archived segment")
    s3.kill()
    down_at = time.monotonic()
    before = len(closed(rec))
    wait_until(lambda: backlog(rec) >= 3, 30, "the backlog to grow while the store is down")
    outage_s = float(os.environ.get("VIGIA_ARCHIVE_OUTAGE_S", "20"))
    wait_until(lambda: time.monotonic() - down_at >= outage_s, outage_s + 10, "the outage")
    # 2 s segments: most of those the outage lasted closed meanwhile (a loaded machine lags)
    assert len(closed(rec)) >= before + max(5, int(outage_s * 0.3)), "recording slowed"
    status = server_status(rec.api_port)["archive"]
    assert status["state"] == "error" and status["backlog_segments"] >= 3, status
    assert status["backlog_bytes"] > 0 and status["backlog_oldest_age_s"] > 5, status
    grown = backlog(rec)
    done = len(archived(rec))
    s3.start()
    wait_until(lambda: len(archived(rec)) > done, 60, "uploads to resume")
    assert backlog(rec) > 0, f"drained too fast to kill mid-upload ({grown} were waiting)"
    rec.kill9()
    ids = [r[0] for r in closed(rec)]
    rec.start(env=keys_env())
    wait_until(lambda: set(ids) <= set(archived(rec)), 90, "every segment archived after kill -9")
    rec.stop()
    assert_in_bucket(s3, rec, ids)
    media = [k for k in s3.objects(PREFIX + "recordings/") if k.endswith(".mp4")]
    assert len(media) == len(archived(rec)) == len(set(media)), "an object counted twice or lost"
    log = rec.log_path.read_text(errors="replace")
    assert "store unreachable" in log and "answers again" in log


def test_wrong_secret_is_a_clear_error_within_10_s_and_recording_goes_on(
    s3: SeaweedS3, server_process: Callable[[str], ServerProcess], camera_clips
) -> None:
    rec = start(server_process, archive_toml(s3, camera_clips[0][0]), keys_env("not-the-secret"))
    started = time.monotonic()
    status = wait_until(
        lambda: (st := server_status(rec.api_port)["archive"])["state"] == "error" and st, 10,
        "the archive's error in /api/v1/server",
    )  # fmt: skip
    assert "SignatureDoesNotMatch" in status["error"] and "secret" in status["error"]
    assert "wrong secret key" in rec.log_path.read_text(errors="replace")
    assert time.monotonic() - started < 10
    wait_until(lambda: len(closed(rec)) >= 3, 30, "recording goes on")
    assert not archived(rec) and not s3.objects(PREFIX)
    rec.stop()
