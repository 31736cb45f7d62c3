"""Shared fixtures: real clips made by PyAV, real RTSP cameras, real recorder processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server.service import PORTS_FILE
from server.sim.clips import ClipSpec, make_clip
from server.sim.rtsp_cameras import CameraFarm, RtspCameraHost, gst_available
from tests.helpers import refused_port

ROOT = Path(__file__).resolve().parent.parent
# Deadlines for things that start (a recorder process, nats-server, a camera), in one place. The
# waits end on the event itself, so a generous deadline costs nothing when all is well and keeps
# a loaded CI machine (two cores, other jobs) from failing tests that are right.
START_S = 180.0


# Under CI a test that would skip because a part is missing (GStreamer, Xvfb, GL, root for a
# network namespace or a tmpfs, the default model) fails instead: `make test` installs every
# part, so a skip there means a check silently did not run. Tests that may skip on CI anyway
# are listed here by node id, each with the reason.
CI_ALLOWED_SKIPS: dict[str, str] = {}


def _fail_skip_under_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    if (
        os.environ.get("CI")
        and report.skipped
        and not hasattr(report, "wasxfail")
        and report.nodeid not in CI_ALLOWED_SKIPS
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI (a part is missing; see CI_ALLOWED_SKIPS): {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report: pytest.TestReport = yield
    _fail_skip_under_ci(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport:
    """A whole module skipped at import (``pytest.importorskip``...) counts too."""
    report: pytest.CollectReport = yield
    _fail_skip_under_ci(report)
    return report


# `make test` runs the modules on two workers (pytest-xdist, --dist loadgroup): a module's tests
# stay on one worker (its module fixtures are made once), and modules that browse or advertise
# on the LAN with zeroconf share one worker, so no discovery test sees another's recorders.
ZEROCONF_MODULES = frozenset({
    "test_app_discovery", "test_app_welcome", "test_discovery", "test_ui_welcome", "test_cli",
    "test_packages", "test_packaging_service",
})  # fmt: skip


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.path.stem
        group = "zeroconf" if module in ZEROCONF_MODULES else module
        item.add_marker(pytest.mark.xdist_group(group))


def wait_until(predicate: Callable[[], object], timeout: float, what: str, poll: float = 0.05):
    """Wait for a condition another process (or thread) makes true; fail with ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections throughout the test (see refused_port)."""
    with refused_port() as port:
        yield port


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def camera_clips(clip_dir: Path) -> list[tuple[Path, Path]]:
    """(main, sub) H.264 clip pairs for 4 cameras: 640x360 / 320x180, 25 fps, GOP 1 s."""
    pairs = []
    for i in range(4):
        main = make_clip(
            clip_dir / f"cam{i}-main.mp4",
            ClipSpec(640, 360, fps=25, seconds=8, label=f"cam{i} main", scene=i),
        )
        sub = make_clip(
            clip_dir / f"cam{i}-sub.mp4",
            ClipSpec(320, 180, fps=25, seconds=8, label=f"cam{i} sub", scene=i),
        )
        pairs.append((main, sub))
    return pairs


@pytest.fixture(scope="session")
def hevc_clip(clip_dir: Path) -> Path:
    return make_clip(
        clip_dir / "hevc.mp4", ClipSpec(640, 360, fps=25, seconds=4, codec="hevc", label="hevc")
    )


@pytest.fixture(scope="session")
def gst() -> None:
    """Real RTSP cameras need Debian's GStreamer RTSP server; `make test` installs it."""
    reason = gst_available()
    if reason:
        pytest.fail(f"{reason}; run packaging/system-deps.sh test")


@pytest.fixture
def farm(gst: None, camera_clips: list[tuple[Path, Path]]) -> Iterator[CameraFarm]:
    with CameraFarm(camera_clips) as f:
        yield f


@pytest.fixture
def camera_host(gst: None) -> Iterator[Callable[..., RtspCameraHost]]:
    hosts: list[RtspCameraHost] = []

    def make(mounts: dict[str, Path], **kw: object) -> RtspCameraHost:
        host = RtspCameraHost(mounts, **kw)  # type: ignore[arg-type]
        host.start()
        hosts.append(host)
        return host

    yield make
    for h in hosts:
        h.stop()


class ServerProcess:
    """``vigia-server`` run as a real child process, its log kept for failure messages."""

    def __init__(self, data_dir: Path, config: Path, log_path: Path) -> None:
        self.data_dir, self.config, self.log_path = data_dir, config, log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._ports: dict[str, int | None] | None = None

    def start(self, env: dict[str, str] | None = None) -> None:
        """``env``: more environment for the recorder (e.g. ``VIGIA_ADMIN_PASSWORD``)."""
        log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", "--data-dir", str(self.data_dir),
             "--config", str(self.config), "--log-level", "DEBUG"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )  # fmt: skip
        log.close()
        self._ports = None

    def ports(self, timeout: float = START_S) -> dict[str, int | None]:
        """The ports this run bound, from ``run/ports.json`` in its data dir (written once its
        listeners are up; the pid tells it from a file an earlier run left): ``api``, ``nats``.
        Tests configure port 0, so no port is picked by a bind-and-release race."""
        if self._ports is None:
            path = self.data_dir / PORTS_FILE

            def read() -> dict | None:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    pytest.fail(f"vigia-server exited ({self.proc.returncode}):\n{self.log()}")
                try:
                    ports = json.loads(path.read_text())
                except (FileNotFoundError, ValueError):
                    return None
                return ports if ports.get("pid") == self.proc.pid else None

            try:
                self._ports = wait_until(read, timeout, f"{path} (the recorder's ports)")
            except BaseException:  # a recorder that never came up does not outlive the test
                if self.proc is not None and self.proc.poll() is None:
                    self.kill9()
                raise
        return self._ports

    @property
    def api_port(self) -> int:
        port = self.ports()["api"]
        assert port, f"the recorder serves no API:\n{self.log()}"
        return port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[Callable[[str], ServerProcess]]:
    procs: list[ServerProcess] = []

    def make(config_toml: str) -> ServerProcess:
        cfg = tmp_path / "vigia.toml"
        cfg.write_text(config_toml)
        p = ServerProcess(tmp_path / "data", cfg, tmp_path / "server.log")
        procs.append(p)
        return p

    yield make
    for p in procs:
        if p.proc is not None and p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait(10)


EVERY_FRAME = "main_key_frames_only = false\nshed_load = false"
"""``[analytics]`` keys of tests that count analysed frames of a main-only camera: every frame
at the analysis rate, whatever the machine's load (the defaults analyse key frames only and shed
load when the machine is busy; docs/design/analytics.md)."""


def camera_toml(
    cameras: list[tuple[str, str, str | None]],
    extra: str = "",
    analytics: str = "enabled = false",
    *,
    api_port: int = 0,
    nats_port: int = 0,
) -> str:
    """TOML for (id, main url, sub url) cameras, quick reconnects. Analytics is off unless a
    test asks (``analytics`` is the body of the ``[analytics]`` table): detection on every
    test camera would load the machine for tests that are not about it. Port 0: any free one,
    which the recorder reports (``ServerProcess.ports``); a fixed port only to restart a
    recorder at the address it had."""
    out = [
        "[server]",
        f'listen = "127.0.0.1:{api_port}"',  # the HTTP API
        "discovery = false",
        "[recording]",
        "segment_seconds = 15",
        "read_timeout_s = 3",
        "open_timeout_s = 5",
        "[storage]",
        "min_free_bytes = 0",
        "[nats]",
        f'listen = "127.0.0.1:{nats_port}"',  # the embedded nats-server
        "[analytics]",
        analytics,
        extra,
    ]
    for cid, main, sub in cameras:
        out += ["[[cameras]]", f'id = "{cid}"', f'name = "{cid}"', f'main = "{main}"']
        if sub:
            out.append(f'sub = "{sub}"')
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def xvfb_display() -> Iterator[str]:
    """A private X server (real OpenGL through Mesa) for GL and screenshot tests: offscreen
    Qt never paints a QOpenGLWidget. Its display number comes back on a pipe once it accepts
    clients."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1600x1200x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()
        if not number:
            pytest.fail(f"Xvfb exited ({proc.poll()}) without announcing a display")
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(10)
