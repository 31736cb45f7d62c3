"""SRT live out: a real recorder, Debian's ffmpeg as the SRT caller (docs/design/live.md).

One recorder with one file-source camera (a clip with a burned-in frame code, looped at real
time) and ``[srt]`` on port 0 with a passphrase: ffmpeg receives the camera's stream whose frame
code advances at the camera's rate; a wrong token, a user without the camera, an unknown stream
and a caller without the passphrase are refused.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import shutil
import subprocess
import time
from collections.abc import Iterator

import aiohttp
import numpy as np
import pytest

from server.sim.clips import read_frame_number
from tests.conftest import ServerProcess, camera_toml, wait_until

ADMIN_PASSWORD = "admin-password-1"
PASSPHRASE = "srt-passphrase-42"
FPS = 25
CLIP_FRAMES = 8 * FPS  # camera_clips: 8 s at 25 fps
W, H = 640, 360


def _ffmpeg_has_srt() -> bool:
    exe = shutil.which("ffmpeg")
    if exe is None:
        return False
    out = subprocess.run([exe, "-hide_banner", "-protocols"], capture_output=True, text=True)
    return bool(re.search(r"^\s*srt$", out.stdout, re.M))


pytestmark = pytest.mark.skipif(not _ffmpeg_has_srt(), reason="no ffmpeg with SRT")


def api(base: str, method: str, path: str, token: str | None = None, body=None):
    async def go():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, base + path, json=body, headers=headers) as r,
        ):
            return r.status, await r.json(content_type=None)

    return asyncio.run(go())


def srt_url(port: int, streamid: str, passphrase: str | None = PASSPHRASE) -> str:
    url = f"srt://127.0.0.1:{port}?streamid={streamid}&latency=40000"
    if passphrase:
        url += f"&passphrase={passphrase}"
    return url


def receive(url: str, frames: int, timeout: float = 20) -> tuple[list[tuple[float, int]], str]:
    """Decode ``frames`` frames with ffmpeg: (arrival time, frame code) each, and its stderr."""
    proc = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-fflags", "nobuffer",
         "-i", url, "-map", "0:v", "-frames:v", str(frames), "-f", "rawvideo",
         "-pix_fmt", "gray", "-"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    codes: list[tuple[float, int]] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        while len(codes) < frames and time.monotonic() < deadline:
            raw = proc.stdout.read(W * H)
            if len(raw) < W * H:
                break
            code = read_frame_number(np.frombuffer(raw, np.uint8).reshape(H, W))
            if code is not None:
                codes.append((time.monotonic(), code))
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=10)
    return codes, err.decode(errors="replace")


@pytest.fixture(scope="module")
def recorder(camera_clips, tmp_path_factory) -> Iterator[tuple[ServerProcess, str, int]]:
    tmp = tmp_path_factory.mktemp("srt")
    (m0, s0), (m1, _) = camera_clips[0], camera_clips[1]
    extra = f'[srt]\nlisten = "127.0.0.1:0"\npassphrase = "{PASSPHRASE}"\n'
    cfg = tmp / "vigia.toml"
    cfg.write_text(camera_toml([("cam0", f"file://{m0}", f"file://{s0}"),
                                ("cam1", f"file://{m1}", None)], extra))  # fmt: skip
    rec = ServerProcess(tmp / "data", cfg, tmp / "server.log")
    rec.start({"VIGIA_ADMIN_PASSWORD": ADMIN_PASSWORD})
    try:
        port = rec.ports()["srt"]
        assert port, rec.log()
        status, body = api(rec.base_url, "POST", "/api/v1/auth/login", None,
                           {"name": "admin", "password": ADMIN_PASSWORD})  # fmt: skip
        assert status == 200, body
        token = body["token"]

        def online() -> bool:
            _, cams = api(rec.base_url, "GET", "/api/v1/cameras", token)
            up = {(c["id"], s["name"]) for c in cams for s in c["streams"]
                  if s["state"] == "online"}  # fmt: skip
            return {("cam0", "main"), ("cam0", "sub")} <= up

        wait_until(online, 30, "cam0 online")
        yield rec, token, port
    finally:
        if rec.proc is not None and rec.proc.poll() is None:
            rec.stop()
    assert "Traceback" not in rec.log(), rec.log()


def test_srt_stream_advances_at_the_camera_rate(recorder) -> None:
    rec, token, port = recorder
    codes, err = receive(srt_url(port, f"cam0/main?token={token}"), 5 * FPS)
    assert len(codes) >= 4 * FPS, f"{len(codes)} frames read; ffmpeg: {err}\n{rec.log()}"
    steps = [(b - a) % CLIP_FRAMES for (_, a), (_, b) in itertools.pairwise(codes)]
    assert steps.count(1) >= 0.9 * len(steps), steps  # consecutive frames, none repeated
    # the rate: past the first second (ffmpeg's start-up), the codes advance with the wall
    # clock at the camera's 25 fps; a least-squares slope, so one late frame cannot decide it
    t = np.array([w for w, _ in codes[FPS:]])
    c = np.cumsum([0, *steps[FPS:]])
    rate = np.polyfit(t - t[0], c, 1)[0]
    assert abs(rate - FPS) < 0.15 * FPS, rate
    # the sub stream is its own stream (320x180): ask for it too, and one frame is enough
    sub = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
         "-i", srt_url(port, f"cam0/sub?token={token}"), "-frames:v", "1", "-f", "null", "-"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert sub.returncode == 0, sub.stderr


def test_srt_refuses_bad_callers(recorder) -> None:
    rec, token, port = recorder
    account = {"name": "only1", "password": "only1-password-1", "cameras": ["cam1"]}
    status, body = api(rec.base_url, "POST", "/api/v1/users", token, account)
    assert status == 201, body
    status, body = api(rec.base_url, "POST", "/api/v1/auth/login", None,
                       {"name": "only1", "password": "only1-password-1"})  # fmt: skip
    other = body["token"]
    refused = [
        srt_url(port, "cam0/main?token=not-a-token"),
        srt_url(port, f"cam0/main?token={other}"),  # a user without cam0
        srt_url(port, f"cam1/sub?token={token}"),  # cam1 has no sub stream
        srt_url(port, f"cam0/main?token={token}", passphrase=None),
        srt_url(port, f"cam0/main?token={token}", passphrase="wrong-passphrase-1"),
    ]
    for url in refused:
        codes, err = receive(url, 1, timeout=15)
        assert not codes, url
        assert err, url
    # the same user may watch the camera it has
    codes, err = receive(srt_url(port, f"cam1/main?token={other}"), 3)
    assert codes, err
    assert re.search(r"SRT caller \S+ refused: unauthorized", rec.log())
    assert re.search(r"SRT caller \S+ refused: forbidden", rec.log())


def test_srt_connection_ends_when_the_right_goes(recorder) -> None:
    rec, token, port = recorder
    account = {"name": "only1b", "password": "only1-password-1", "cameras": ["cam1"]}
    assert api(rec.base_url, "POST", "/api/v1/users", token, account)[0] == 201
    login = {"name": "only1b", "password": "only1-password-1"}
    other = api(rec.base_url, "POST", "/api/v1/auth/login", None, login)[1]["token"]
    proc = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
         "-i", srt_url(port, f"cam1/main?token={other}"), "-f", "rawvideo", "-pix_fmt", "gray",
         "-"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert len(proc.stdout.read(W * H)) == W * H  # watching
        status, body = api(rec.base_url, "PATCH", "/api/v1/users/only1b", token,
                           {"cameras": ["cam0"]})  # fmt: skip
        assert status == 200, body
        t0 = time.monotonic()
        while proc.stdout.read(W * H):  # the recorder ends the connection: ffmpeg's EOF
            assert time.monotonic() - t0 < 20, "the connection outlived the right"
        assert re.search(r"SRT caller \S+ on cam1 ended: live right gone", rec.log())
    finally:
        proc.kill()
        proc.wait(10)
