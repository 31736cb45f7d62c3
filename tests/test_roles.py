"""``--roles``: a process does only part of the work (e.g. recorders on several hosts)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from server.catalog import Catalog
from server.config import ROLES, ConfigError, parse_roles
from tests.conftest import ROOT, camera_toml, wait_until


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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        api_port = s.getsockname()[1]
    toml = camera_toml([("cam", host.url("main"), None)], api_port=api_port)
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
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", api_port), timeout=2).close()
        assert not (data / "nats").exists(), "no live distribution in this process"
        proc.terminate()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "roles: ingest, record" in (proc.stderr.read() if proc.stderr else "")
