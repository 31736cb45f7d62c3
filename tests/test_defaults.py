"""Safe defaults (issue 19): a private data dir, and a taken NATS port stops the start."""

from __future__ import annotations

import socket
import stat
from collections.abc import Callable
from pathlib import Path

from server.config import Config, NatsConfig
from server.datadir import DataDir
from server.service import open_services
from tests.conftest import ServerProcess, camera_toml


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_dir_is_private(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir(mode=0o755)  # as an older version (or an admin) left it
    data = DataDir(root)
    config = Config(nats=NatsConfig(enabled=False), roles=frozenset({"ingest", "record"}))
    services = open_services(config, data)
    try:
        assert _mode(root) == 0o700 and _mode(data.recordings) == 0o700
        assert _mode(data.catalog) == 0o600
        assert _mode(root / "vigia.lock") & 0o077 == 0
    finally:
        services.catalog.close()


def test_a_taken_nats_port_fails_the_start_loudly(
    server_process: Callable[[str], ServerProcess],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = server_process(camera_toml([], nats_port=port))
        server.start()
        assert server.proc is not None
        assert server.proc.wait(60) == 2, server.log()
    assert f"[nats] listen = '127.0.0.1:{port}': the port is taken" in server.log()
