"""``--roles``: a process does only part of the work (e.g. recorders on several hosts)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from server.catalog import Catalog
from server.config import ROLES, ConfigError, parse_roles
from server.service import PORTS_FILE
from tests.conftest import ROOT, START_S, camera_toml, wait_until


def test_parse_roles() -> None:
    assert parse_roles("all") == ROLES
    assert parse_roles("ingest, record") == {"ingest", "record"}
    for bad, message in [("record", "need ingest"), ("ingest,fly", "unknown fly"), ("", "empty")]:
        with pytest.raises(ConfigError, match=message):
            parse_roles(bad)


def test_record_only_process_records_without_api_or_nats(
    tmp_path, camera_host, camera_clips: list
) -> None:
    host = camera_host({"main": camera_clips[0][0]})
    toml = camera_toml([("cam", host.url("main"), None)])
    (tmp_path / "v.toml").write_text(toml)
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server",
            "--data-dir",
            str(data),
            "--config",
            str(tmp_path / "v.toml"),
            "--roles",
            "ingest,record",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:

        def recorded() -> bool:
            if not (data / "catalog.db").exists():
                return False
            cat = Catalog(data / "catalog.db")
            try:
                return any(s.frames > 0 for s in cat.segments())
            finally:
                cat.close()

        wait_until(recorded, 30, "the record-only process to record")

        def ports() -> dict | None:
            try:
                ports = json.loads((data / PORTS_FILE).read_text())
            except (FileNotFoundError, ValueError):
                return None
            return ports if ports["pid"] == proc.pid else None

        # it says what it listens on: nothing (API and NATS are other processes' roles)
        assert wait_until(ports, START_S, "its ports file") == {
            "pid": proc.pid,
            "api": None,
            "nats": None,
            "mqtt": None,
            "cluster": None,
            "srt": None,
        }
        assert not (data / "nats").exists(), "no live distribution in this process"
        proc.terminate()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "roles: ingest, record" in (proc.stderr.read() if proc.stderr else "")
