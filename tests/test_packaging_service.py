"""The recorder as a systemd service: the unit passes systemd's own checks, and a real recorder
speaks the notification protocol (READY, WATCHDOG, STOPPING) and stops cleanly on SIGTERM
within the unit's stop time-out, its segments closed."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from server import __version__
from server.catalog import Catalog
from server.sim.clips import ClipSpec, make_clip
from tests.conftest import ServerProcess, camera_toml, wait_until

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "packaging" / "systemd" / "vigia-server.service"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.fail("systemd-analyze is missing; run packaging/system-deps.sh test")
    return exe


def unit_setting(key: str) -> str:
    (value,) = re.findall(rf"^{key}=(.*)$", UNIT.read_text(), re.MULTILINE)
    return value.strip()


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """Verified as installed: in a root with the system's units and the unit's executable (the
    package puts it at /usr/bin/vigia-server). Warnings count as failures."""
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_UNITS, root / SYSTEM_UNITS.relative_to("/"), symlinks=True)
    exe = root / unit_setting("ExecStart").split()[0].lstrip("/")
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    shutil.copy(UNIT, root / SYSTEM_UNITS.relative_to("/") / UNIT.name)
    out = subprocess.run(
        [analyze(), "verify", f"--root={root}", str(SYSTEM_UNITS / UNIT.name)],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0 and not out.stdout.strip() and not out.stderr.strip(), (
        out.stdout + out.stderr
    )


def test_unit_hardening_scores_ok_or_better() -> None:
    out = subprocess.run(
        [analyze(), "security", "--offline=true", str(UNIT)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", out.stdout)
    assert found, out.stdout + out.stderr
    exposure, rating = float(found.group(1)), found.group(2)
    assert rating in ("PERFECT", "SAFE", "OK"), (exposure, rating)
    assert exposure < 2.0, exposure  # what this unit scores now (1.2); keep it there


def test_unit_runs_the_recorder_the_way_the_package_installs_it() -> None:
    assert unit_setting("Type") == "notify"
    assert unit_setting("ExecStart") == (
        "/usr/bin/vigia-server run --config /etc/vigia/vigia.toml --data-dir /var/lib/vigia"
    )
    assert unit_setting("StateDirectory") == "vigia"
    assert unit_setting("User") == "vigia"
    assert int(unit_setting("WatchdogSec")) > 0


def server_info(port: int) -> dict:
    base = f"http://127.0.0.1:{port}/api/v1"
    login = json.dumps({"name": "admin", "password": "admin-password-1"}).encode()
    req = urllib.request.Request(f"{base}/auth/login", login, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        token = json.load(r)["token"]
    req = urllib.request.Request(f"{base}/server", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


class NotifyListener:
    """The service manager's side of ``NOTIFY_SOCKET``: a datagram socket that keeps what
    arrives, in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[str] = []

    def receive_until(self, wanted: str, timeout: float, alive: Callable[[], bool]) -> None:
        deadline = time.monotonic() + timeout
        while wanted not in self.messages:
            left = deadline - time.monotonic()
            if left <= 0 or not alive():
                pytest.fail(f"no {wanted} within {timeout} s; got {self.messages}")
            self.sock.settimeout(min(left, 1.0))
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.extend(data.decode().splitlines())

    def close(self) -> None:
        self.sock.close()


def test_recorder_notifies_and_stops_cleanly_on_sigterm(
    server_process: Callable[[str], ServerProcess], clip_dir: Path, tmp_path: Path
) -> None:
    clip = make_clip(clip_dir / "notify.mp4", ClipSpec(320, 180, fps=25, seconds=4, label="sd"))
    proc = server_process(camera_toml([("cam", clip.resolve().as_uri(), None)]))
    listener = NotifyListener(tmp_path / "notify.sock")
    try:
        proc.start(
            env={
                "NOTIFY_SOCKET": str(listener.path),
                "WATCHDOG_USEC": "400000",
                "VIGIA_ADMIN_PASSWORD": "admin-password-1",
            }
        )
        assert proc.proc is not None
        alive = lambda: proc.proc.poll() is None  # noqa: E731
        listener.receive_until("READY=1", 120, alive)
        # ready means serving: the API answers at once, with the version
        assert server_info(proc.api_port)["version"] == __version__
        listener.receive_until("WATCHDOG=1", 10, alive)
        assert listener.messages.index("READY=1") < listener.messages.index("WATCHDOG=1")
        # recording: an open segment on disk
        wait_until(
            lambda: list((proc.data_dir / "recordings").rglob("*.part")), 30, "an open segment"
        )
        started = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)
        stop_limit = float(unit_setting("TimeoutStopSec"))
        code = proc.proc.wait(stop_limit)
        took = time.monotonic() - started
        listener.receive_until("STOPPING=1", 1, lambda: True)
    finally:
        listener.close()
    assert code == 0, proc.log()
    assert took < stop_limit
    assert not list((proc.data_dir / "recordings").rglob("*.part")), "segments closed"
    catalog = Catalog(proc.data_dir / "catalog.db")
    try:
        assert catalog.segments(state="open") == []
        assert catalog.segments(state="closed"), "the recording was kept"
    finally:
        catalog.close()
    assert "stopped cleanly" in proc.log()
