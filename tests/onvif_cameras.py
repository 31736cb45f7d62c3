"""IPyCam (``ipycam`` on PyPI, MIT): a real ONVIF camera we did not write, for the ONVIF tests.

Each camera runs as its own process inside a network namespace joined to ours by a veth pair
(``tests/test_whep.py``'s ``NetNs``): its WS-Discovery Hello/Bye multicasts and probe answers
stay on that pair instead of reaching the machine's real network, and its ports cannot clash
with anything else running here. It serves ONVIF on ``http://NS_ADDR:PORT/onvif/device_service``
and H.264 over RTSP; its PTZ is digital (a crop of the source picture), so moves show in the
picture. The source is a still, textured scene: image shifts between two frames are PTZ only.
"""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

from tests.test_whep import NetNs

USERNAME, PASSWORD = "admin", "cam-secret-1"
WIDTH, HEIGHT, FPS = 640, 360, 10


def scene_clip(path: Path) -> Path:
    """5 s of one still picture: 8-pixel random blocks (texture at every zoom)."""
    if path.exists():
        return path
    rng = np.random.default_rng(15)
    blocks = rng.integers(0, 255, (HEIGHT // 8, WIDTH // 8, 3), dtype=np.uint8)
    img = np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8))
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        s.options = {"g": str(FPS), "preset": "ultrafast", "crf": "18"}
        for _ in range(5 * FPS):
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


# IPyCam listens on the ports its config names. It runs inside a network namespace the test
# made, whose port space is its own: numbers from a counter cannot collide there, and no
# port is picked by binding and releasing one on the host.
_NS_PORTS = itertools.count(20_000)


def ns_port() -> int:
    return next(_NS_PORTS)


@dataclass
class IpyCam:
    netns: NetNs
    workdir: Path
    clip: Path
    name: str = "Cam A"
    onvif_port: int = field(default_factory=ns_port)
    rtsp_port: int = field(default_factory=ns_port)
    proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return self.netns.ns_addr

    @property
    def address(self) -> str:
        return f"http://{self.host}:{self.onvif_port}/onvif/device_service"

    @property
    def main_url(self) -> str:
        return f"rtsp://{USERNAME}:{PASSWORD}@{self.host}:{self.rtsp_port}/video_main"

    def start(self, ready_s: float = 90.0) -> IpyCam:
        cfg = self.workdir / f"ipycam-{self.onvif_port}.json"
        cfg.write_text(json.dumps({
            "local_ip": self.host, "onvif_port": self.onvif_port, "rtsp_port": self.rtsp_port,
            "web_port": ns_port(), "rtmp_port": ns_port(), "go2rtc_api_port": ns_port(),
            "main_width": WIDTH, "main_height": HEIGHT, "main_fps": FPS,
            "sub_width": WIDTH // 2, "sub_height": HEIGHT // 2, "sub_fps": FPS,
            "username": USERNAME, "password": PASSWORD, "name": self.name,
            "manufacturer": "IPyCam", "model": f"Virtual {self.name}",
        }))  # fmt: skip
        self.log = self.workdir / f"ipycam-{self.onvif_port}.log"
        with self.log.open("ab") as log:
            self.proc = self.netns.popen(
                [sys.executable, "-m", "ipycam", "--config", str(cfg), "--source",
                 str(self.clip), "--hw", "cpu", "--no-timestamp", "--log-level", "WARNING"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
            )  # fmt: skip
        deadline = time.monotonic() + ready_s
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"IPyCam did not come up: {self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        return self

    def _answers(self) -> bool:
        """Its ONVIF service answers and its RTSP server accepts connections."""
        try:
            socket.create_connection((self.host, self.rtsp_port), timeout=1).close()
        except OSError:
            return False
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.onvif_port}/", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # it answered
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class FrameWatch:
    """Decodes a camera's RTSP stream in a thread; keeps (receive time, grey frame) pairs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.frames: list[tuple[float, np.ndarray]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        """Reads until stopped; a stream that ends or fails is opened again (IPyCam's RTSP
        server drops a slow reader on a loaded machine), the failure kept for the message."""
        opts = {"rtsp_transport": "tcp", "fflags": "nobuffer", "flags": "low_delay"}
        while not self.stopping.is_set():
            try:
                with av.open(self.url, options=opts, timeout=10) as c:
                    for packet in c.demux(video=0):
                        try:
                            frames = packet.decode()
                        except av.InvalidDataError:
                            continue  # before the first key frame
                        for frame in frames:
                            grey = frame.to_ndarray(format="gray").astype(np.float32)
                            with self.lock:
                                self.frames.append((time.monotonic(), grey))
                                del self.frames[:-100]
                        if self.stopping.is_set():
                            return
                self.error = EOFError("the stream ended")
            except (av.FFmpegError, OSError) as exc:
                self.error = exc
            self.stopping.wait(0.5)

    def latest(self, after: float = 0.0, timeout: float = 20.0) -> tuple[float, np.ndarray]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.frames and self.frames[-1][0] > after:
                    return self.frames[-1]
            time.sleep(0.01)
        why = f" (last failure: {self.error})" if self.error else ""
        raise TimeoutError(f"no frame from {self.url} after {timeout} s{why}")

    def since(self, t: float) -> list[tuple[float, np.ndarray]]:
        with self.lock:
            return [f for f in self.frames if f[0] > t]

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(10)


def shift(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(dx, dy) in pixels by which the picture content moved from ``a`` to ``b``."""
    (dx, dy), _ = cv2.phaseCorrelate(a, b)
    return dx, dy
