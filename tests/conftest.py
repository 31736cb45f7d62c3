"""Shared fixtures: real clips made by PyAV, real RTSP cameras, real recorder processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server.sim.clips import ClipSpec, make_clip
from server.sim.rtsp_cameras import CameraFarm, RtspCameraHost, gst_available

ROOT = Path(__file__).resolve().parent.parent
SHARED_MEDIA = ROOT.parent / "shared" / "media"
# Real surveillance footage (768x576, 10 fps): the project's shared media, or Debian's opencv-doc
VTEST_CANDIDATES = (
    *([Path(os.environ["VIGIA_VTEST"])] if os.environ.get("VIGIA_VTEST") else []),  # a worktree
    SHARED_MEDIA / "vtest.avi",
    Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi"),
)


def vtest_path() -> Path:
    return next((p for p in VTEST_CANDIDATES if p.exists()), VTEST_CANDIDATES[0])


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
    test camera would load the machine for tests that are not about it. Port 0: any free one
    (a test that must know a port beforehand takes one from ``free_port``)."""
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
