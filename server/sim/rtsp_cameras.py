"""Simulated RTSP cameras: processes running ``gst_rtsp_camera.py`` under Debian's Python.

GStreamer's RTSP server comes from Debian packages (python3-gi, gir1.2-gst-rtsp-server-1.0), not
from the virtual environment, so every simulated camera host is a child process of
``/usr/bin/python3``. A host can be stopped (the camera goes dark: connections are refused) and
restarted on the same port, which is what the recorder's reconnect logic is tested against.
Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType

logger = logging.getLogger(__name__)

GST_PYTHON = "/usr/bin/python3"
SCRIPT = Path(__file__).with_name("gst_rtsp_camera.py")
HOST = "127.0.0.1"
# Startup ends on the process's READY line, so the cap only matters when something is wrong; a
# fresh machine builds GStreamer's plugin registry on the first start, and a loaded one is slow.
READY_TIMEOUT_S = 120.0


@functools.cache
def gst_available() -> str | None:
    """``None`` when simulated cameras can run here, else why not (for a skip or a failure)."""
    if not os.access(GST_PYTHON, os.X_OK):
        return f"{GST_PYTHON} not found (Debian python3 with python3-gi is needed)"
    try:
        proc = subprocess.run(
            [GST_PYTHON, str(SCRIPT), "--check"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run {GST_PYTHON} {SCRIPT.name} --check: {exc}"
    if proc.returncode == 0:
        return None
    lines = (proc.stdout.strip() + "\n" + proc.stderr.strip()).strip().splitlines()
    detail = lines[-1] if lines else f"exit status {proc.returncode}"
    if "gi" in detail and ("No module" in detail or "Namespace" in detail):
        detail += " (install python3-gi and gir1.2-gst-rtsp-server-1.0)"
    return f"GStreamer RTSP server unusable: {detail}"


class RtspCameraHost:
    """One camera host: a process serving some mounts on one port of 127.0.0.1.

    ``mounts`` maps mount names to MP4 clips (H.264 or H.265, detected by the process);
    ``audio_mounts`` are mounts with an audio tone and no video; ``aac_mounts``,
    ``pcma_mounts`` and ``opus_mounts`` (names in ``mounts``) carry AAC, G.711 or Opus audio
    beside their video (a beep each second, in sync with a known frame). ``port=None`` lets
    the first start pick a free port, which later restarts keep.
    """

    def __init__(
        self,
        mounts: Mapping[str, Path],
        *,
        port: int | None = None,
        audio_mounts: Sequence[str] = (),
        aac_mounts: Sequence[str] = (),
        pcma_mounts: Sequence[str] = (),
        opus_mounts: Sequence[str] = (),
        name: str = "camera",
        udp_only: bool = False,
    ) -> None:
        self.mounts = {k: Path(v) for k, v in mounts.items()}
        self.udp_only = udp_only  # a camera that refuses RTSP over TCP (transport tests)
        self.audio_mounts = tuple(audio_mounts)
        self.aac_mounts = tuple(aac_mounts)
        self.pcma_mounts = tuple(pcma_mounts)
        self.opus_mounts = tuple(opus_mounts)
        self.name = name
        self._port = port
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=30)
        self._stderr_thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The listening port (known once started)."""
        if self._port is None:
            raise RuntimeError(f"{self.name}: not started yet, no port")
        return self._port

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def url(self, mount: str) -> str:
        """``rtsp://127.0.0.1:PORT/mount``."""
        return f"rtsp://{HOST}:{self.port}/{mount}"

    def start(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Launch the process and return once it listens."""
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the process without waiting (see :meth:`wait_ready`)."""
        if self.running:
            raise RuntimeError(f"{self.name}: already running")
        cmd = [GST_PYTHON, str(SCRIPT), "--host", HOST, "--port", str(self._port or 0)]
        for mount, path in self.mounts.items():
            flag = (
                "--aac-mount" if mount in self.aac_mounts
                else "--pcma-mount" if mount in self.pcma_mounts
                else "--opus-mount" if mount in self.opus_mounts
                else "--mount"
            )  # fmt: skip
            cmd += [flag, f"{mount}={path}"]
        for mount in self.audio_mounts:
            cmd += ["--audio-mount", mount]
        if self.udp_only:
            cmd.append("--udp-only")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        self._stderr_tail.clear()
        # stdin stays an open pipe: the child exits when it reaches EOF, i.e. when we die.
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # a Ctrl-C in the terminal reaches us, and we stop it
        )
        self._stderr_thread = threading.Thread(
            target=self._drain_stderr,
            args=(self._proc,),
            name=f"{self.name}-stderr",
            daemon=True,
        )
        self._stderr_thread.start()

    def _drain_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self._stderr_tail.append(line)
            logger.debug("%s: %s", self.name, line)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Wait for the ``READY <port>`` line of a launched process."""
        proc = self._proc
        if proc is None:
            raise RuntimeError(f"{self.name}: not launched")
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.stop()
                    raise TimeoutError(f"{self.name}: not ready after {timeout} s{self._tail()}")
                if not sel.select(left):
                    continue
                chunk = os.read(proc.stdout.fileno(), 256)
                if not chunk:  # the process exited before it was ready
                    rc = proc.wait()
                    if self._stderr_thread is not None:
                        self._stderr_thread.join(timeout=2)
                    self._proc = None
                    raise RuntimeError(f"{self.name}: exited with {rc} at start{self._tail()}")
                buf += chunk
        line = buf.split(b"\n", 1)[0].decode(errors="replace").strip()
        kind, _, port = line.partition(" ")
        if kind != "READY" or not port.isdigit():
            self.stop()
            raise RuntimeError(f"{self.name}: unexpected output {line!r}{self._tail()}")
        self._port = int(port)
        logger.info("%s listening on %s:%s", self.name, HOST, self._port)

    def _tail(self) -> str:
        return (":\n" + "\n".join(self._stderr_tail)) if self._stderr_tail else ""

    def stop(self, timeout: float = 5) -> None:
        """Terminate the process (SIGTERM, then SIGKILL): the camera goes dark."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s: no exit after SIGTERM, killing", self.name)
                proc.kill()
                proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=2)
        if proc.stderr is not None:
            proc.stderr.close()
        logger.info("%s stopped (exit status %s)", self.name, proc.returncode)

    def restart(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start(timeout)

    def __enter__(self) -> RtspCameraHost:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __del__(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()


class CameraFarm:
    """N simulated cameras, each its own host serving ``main`` and ``sub``.

    ``clips`` are (main, sub) clip pairs, reused round-robin when there are fewer pairs than
    cameras. All processes are launched at once and then awaited, so dozens start quickly.
    """

    def __init__(self, clips: Sequence[tuple[Path, Path]], count: int | None = None) -> None:
        if not clips:
            raise ValueError("at least one (main, sub) clip pair is needed")
        count = len(clips) if count is None else count
        self.hosts = [
            RtspCameraHost(
                {"main": clips[i % len(clips)][0], "sub": clips[i % len(clips)][1]},
                name=f"camera{i}",
            )
            for i in range(count)
        ]

    def camera(self, i: int) -> RtspCameraHost:
        return self.hosts[i]

    def __len__(self) -> int:
        return len(self.hosts)

    def __iter__(self) -> Iterator[RtspCameraHost]:
        return iter(self.hosts)

    def start(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Start every camera that is not running; all or nothing."""
        deadline = time.monotonic() + timeout
        started = time.perf_counter()
        pending = [h for h in self.hosts if not h.running]
        try:
            for host in pending:
                host.launch()
            for host in pending:
                host.wait_ready(max(0.1, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise
        logger.info("%d cameras ready in %.2f s", len(pending), time.perf_counter() - started)

    def stop(self) -> None:
        """Stop every camera: SIGTERM to all first, so they exit in parallel."""
        for host in self.hosts:
            proc = host._proc
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for host in self.hosts:
            host.stop()

    def __enter__(self) -> CameraFarm:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
