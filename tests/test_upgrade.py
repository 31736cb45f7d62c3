"""Upgrades: a data dir recorded by the last release, 0.1.0 (tests/fixtures/catalog-0.1.0, made
by packaging/make-upgrade-fixture.sh), opens in this version: the catalog migrates to the
current schema and its recordings are listed and play through the API."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import av

from server.catalog.schema import SCHEMA_VERSION
from tests.conftest import ROOT, START_S, ServerProcess, camera_toml, wait_until
from tests.helpers import decode_errors

FIXTURE = ROOT / "tests" / "fixtures" / "catalog-0.1.0"
PASSWORD = "admin-password-1"  # the fixture's admin (make-upgrade-fixture.sh)


def _user_version(catalog: Path) -> int:
    with sqlite3.connect(f"file:{catalog}?mode=ro", uri=True) as db:
        return db.execute("PRAGMA user_version").fetchone()[0]


def _get(url: str, token: str | None = None, body: dict | None = None) -> bytes:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=30) as r:
        return r.read()


def test_fixture_is_small_and_from_0_1_0() -> None:
    files = [p for p in FIXTURE.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 2_000_000
    assert _user_version(FIXTURE / "catalog.db") == 5  # 0.1.0's schema


def test_catalog_of_0_1_0_migrates_and_its_recordings_play(
    server_process: Callable[[str], ServerProcess], tmp_path: Path
) -> None:
    proc = server_process(camera_toml([]))
    shutil.copytree(FIXTURE, proc.data_dir)
    with sqlite3.connect(proc.data_dir / "catalog.db") as db:
        before = db.execute(
            "SELECT id, start_us, end_us, path FROM segments WHERE state = 'closed' ORDER BY id"
        ).fetchall()
    assert len(before) >= 3
    proc.start()
    port = proc.api_port
    wait_until(lambda: "HTTP API on" in proc.log(), START_S, "the recorder's API")
    assert _user_version(proc.data_dir / "catalog.db") == SCHEMA_VERSION
    base = f"http://127.0.0.1:{port}/api/v1"
    token = json.loads(_get(f"{base}/auth/login", body={"name": "admin", "password": PASSWORD}))[
        "token"
    ]
    cameras = json.loads(_get(f"{base}/cameras", token))
    assert "cam" in [c["id"] for c in cameras]
    start, end = before[0][1] - 1, before[-1][2] + 1
    segments = json.loads(
        _get(f"{base}/cameras/cam/segments?stream=main&start_us={start}&end_us={end}", token)
    )
    assert [s["id"] for s in segments if s["state"] == "closed"] == [row[0] for row in before]
    for seg in segments:
        if seg["state"] != "closed":
            continue
        media = tmp_path / f"{seg['id']}.mp4"
        media.write_bytes(_get(f"{base}/segments/{seg['id']}/media", token))
        assert decode_errors(media) == "", seg
        with av.open(str(media)) as container:
            frames = sum(1 for _ in container.decode(video=0))
        assert frames == seg["frames"] > 0, seg
    assert proc.stop() == 0, proc.log()


def test_export_of_0_1_0_verifies_with_this_version(tmp_path: Path) -> None:
    """Both verifiers, the recorder's command and the workstation's, accept 0.1.0's export."""
    from app.export import verify_export

    export = tmp_path / "export"
    shutil.copytree(FIXTURE / "export", export)
    out = subprocess.run(
        [sys.executable, "-m", "server", "verify", str(export), "--key",
         str(export / "server.pub")],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0 and out.stdout.startswith("OK: 1 file(s) intact"), out
    result = verify_export(export)
    assert result.ok, result
    assert decode_errors(export / "cam-main.mp4") == ""


def test_workstation_settings_of_0_1_0_load(tmp_path: Path) -> None:
    from keyring.backends import null

    from app.settings import SecretStore, Settings

    shutil.copytree(FIXTURE / "workstation", tmp_path / "config")
    settings = Settings(tmp_path / "config", secrets=SecretStore(null.Keyring()))
    assert settings.preferences.language == "pt_BR"
    assert settings.preferences.tile_stream_threshold_px == 800
    (server,) = settings.servers
    assert (server.base_url, server.name, server.user) == (
        "http://127.0.0.1:8480", "Front office", "operator"
    )  # fmt: skip
    assert not list((tmp_path / "config").glob("*.bad*")), "nothing moved aside"
