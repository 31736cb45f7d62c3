"""Simulated cameras: synthetic clips, and real GStreamer RTSP servers read by ffprobe and PyAV."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import psutil
import pytest

from server.sim import rtsp_cameras
from server.sim.clips import ClipSpec, make_clip, read_frame_number, transcode_to_h264
from server.sim.footage import VTEST
from server.sim.rtsp_cameras import CameraFarm, RtspCameraHost

RTSP_OPTIONS = {"rtsp_transport": "tcp"}


@pytest.fixture(scope="session")
def main_clip(clip_dir: Path) -> Path:
    return make_clip(clip_dir / "main.mp4", ClipSpec(320, 240, seconds=2, label="test main"))


@pytest.fixture(scope="session")
def sub_clip(clip_dir: Path) -> Path:
    spec = ClipSpec(176, 144, seconds=2, codec="hevc", label="sub")
    return make_clip(clip_dir / "sub.mp4", spec)


@pytest.fixture(scope="module")
def host(gst: None, main_clip: Path, sub_clip: Path):
    with RtspCameraHost({"main": main_clip, "sub": sub_clip}, audio_mounts=["mic"]) as h:
        yield h


def ffprobe(url: str) -> list[dict]:
    """The streams ffprobe sees at an RTSP URL (over TCP)."""
    proc = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-show_entries",
            "stream=codec_type,codec_name,width,height",
            "-of",
            "json",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["streams"]


def decode_all(path: Path) -> tuple[list[np.ndarray], list[int]]:
    """Luma planes of every frame, and the indices of the key frames."""
    frames, keys = [], []
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(c.streams.video[0])):
            frames.append(frame.to_ndarray(format="gray"))
            if frame.key_frame:
                keys.append(i)
    return frames, keys


# --- clips -----------------------------------------------------------------------------------


def test_clip_has_running_clock_frame_code_and_fixed_gop(clip_dir: Path) -> None:
    path = make_clip(clip_dir / "gop12.mp4", ClipSpec(320, 240, seconds=2, gop=12, label="x"))
    frames, keys = decode_all(path)
    assert len(frames) == 50
    assert keys == [0, 12, 24, 36, 48]
    assert [read_frame_number(f) for f in frames] == list(range(50))
    # The burned-in clock (top-left text box) changes from frame to frame.
    clock = [f[:80, :200].astype(int) for f in frames]
    assert all(np.abs(a - b).mean() > 0.5 for a, b in itertools.pairwise(clock))


def test_default_gop_is_one_second_and_hevc_works(main_clip: Path, sub_clip: Path) -> None:
    assert decode_all(main_clip)[1] == [0, 25]
    with av.open(str(sub_clip)) as c:
        s = c.streams.video[0]
        assert (s.codec_context.name, s.width, s.height) == ("hevc", 176, 144)
    assert decode_all(sub_clip)[1] == [0, 25]


def test_make_clip_is_cached_and_leaves_no_temp_file(clip_dir: Path, main_clip: Path) -> None:
    mtime = main_clip.stat().st_mtime_ns
    assert make_clip(main_clip, ClipSpec(320, 240, seconds=2, label="test main")) == main_clip
    assert main_clip.stat().st_mtime_ns == mtime
    assert not list(clip_dir.glob("*.tmp.mp4"))


def test_cbr_bitrate_is_reached_at_1080p(tmp_path: Path) -> None:
    spec = ClipSpec(1920, 1080, seconds=3, bitrate=3_000_000)
    path = make_clip(tmp_path / "cbr.mp4", spec)
    with av.open(str(path)) as c:
        total = sum(p.size for p in c.demux(c.streams.video[0]))
    rate = total * 8 / spec.seconds
    assert 0.75 * spec.bitrate <= rate <= 1.25 * spec.bitrate, rate


def test_transcode_real_footage(tmp_path: Path) -> None:
    path = transcode_to_h264(VTEST, tmp_path / "vtest.mp4", max_seconds=3)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        assert (s.codec_context.name, s.width, s.height) == ("h264", 768, 576)
    frames, keys = decode_all(path)
    assert len(frames) == 30  # 10 fps source
    assert keys == [0, 10, 20]


# --- RTSP ------------------------------------------------------------------------------------


def test_gst_available_explains_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rtsp_cameras, "GST_PYTHON", "/nonexistent/python3")
    reason = rtsp_cameras.gst_available.__wrapped__()
    assert reason is not None and "/nonexistent/python3" in reason


def test_main_and_sub_are_served_with_their_codec_and_size(host: RtspCameraHost) -> None:
    main = ffprobe(host.url("main"))
    assert [(s["codec_name"], s["width"], s["height"]) for s in main] == [("h264", 320, 240)]
    sub = ffprobe(host.url("sub"))
    assert [(s["codec_name"], s["width"], s["height"]) for s in sub] == [("hevc", 176, 144)]


def test_audio_only_mount_has_no_video(host: RtspCameraHost) -> None:
    streams = ffprobe(host.url("mic"))
    assert [s["codec_type"] for s in streams] == ["audio"]
    assert streams[0]["codec_name"] == "pcm_alaw"


def test_timestamps_keep_increasing_when_the_clip_loops(host: RtspCameraHost) -> None:
    """The 2 s clip loops on the server; the stream's DTS must not go back to 0."""
    rows: list[tuple[int, int]] = []  # (dts, burned-in frame number)
    with av.open(host.url("main"), options=RTSP_OPTIONS, timeout=(5, 5)) as c:
        stream = c.streams.video[0]
        for packet in c.demux(stream):
            for frame in packet.decode():
                if packet.dts is not None:  # the first packet over RTSP may have none
                    rows.append((packet.dts, read_frame_number(frame.to_ndarray(format="gray"))))
            wrapped = any(b[1] < a[1] for a, b in itertools.pairwise(rows))
            if (wrapped and len(rows) >= 40) or len(rows) >= 150:
                break
        tb = stream.time_base
    numbers = [n for _, n in rows]
    assert None not in numbers
    wraps = [i for i in range(1, len(rows)) if numbers[i] < numbers[i - 1]]
    assert wraps, f"the clip never looped: {numbers}"
    i = wraps[0]
    assert (numbers[i - 1], numbers[i]) == (49, 0)
    assert all(b[1] == a[1] + 1 for a, b in itertools.pairwise(rows[:i]))
    steps = [float((b[0] - a[0]) * tb) for a, b in itertools.pairwise(rows)]
    assert all(s > 0 for s in steps), steps
    # Real-time pace, and no jump at the loop: about 40 ms everywhere, loop boundary included.
    assert 0.02 < steps[i - 1] < 0.08, steps[i - 1]
    assert abs(sum(steps) / len(steps) - 0.04) < 0.004, steps


def test_stop_refuses_connections_and_restart_reuses_the_port(
    gst: None, main_clip: Path, sub_clip: Path
) -> None:
    with RtspCameraHost({"main": main_clip}) as cam:
        port = cam.port
        # A connected client leaves the server's side of the connection in FIN-WAIT/TIME-WAIT
        # when the camera goes away; the restart must bind the port anyway (SO_REUSEADDR).
        with av.open(cam.url("main"), options=RTSP_OPTIONS, timeout=(5, 5)) as c:
            next(c.demux(c.streams.video[0]))
            proc = cam._proc
            cam.stop()
            assert proc is not None and proc.returncode == 0  # SIGTERM is a clean exit
            assert not cam.running
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
            # The lingering connection blocks a plain bind: the restart below proves the
            # server sets SO_REUSEADDR.
            with socket.socket() as plain, pytest.raises(OSError):
                plain.bind(("127.0.0.1", port))
            cam.restart()
        assert cam.running and cam.port == port
        assert ffprobe(cam.url("main"))[0]["codec_name"] == "h264"


def test_process_exits_when_its_stdin_closes(gst: None, main_clip: Path) -> None:
    cam = RtspCameraHost({"main": main_clip})
    cam.start()
    try:
        proc = cam._proc
        assert proc is not None and proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(timeout=5) == 0
    finally:
        cam.stop()


def test_camera_exits_when_its_parent_is_killed(gst: None, main_clip: Path) -> None:
    """A crashed parent (stdin and stderr pipes gone at once) leaves no camera behind."""
    code = (
        "import os, sys\n"
        "from server.sim.rtsp_cameras import RtspCameraHost\n"
        f"cam = RtspCameraHost({{'main': {str(main_clip)!r}}})\n"
        "cam.start()\n"
        "print(cam._proc.pid, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    parent = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=30,
    )
    pid = int(parent.stdout.split()[0])
    try:
        child = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    _, alive = psutil.wait_procs([child], timeout=5)
    for p in alive:
        p.kill()
    assert not alive, "the camera process outlived its parent"


def test_transcoded_footage_is_served(gst: None, tmp_path: Path) -> None:
    path = transcode_to_h264(VTEST, tmp_path / "vtest.mp4", max_seconds=3)
    with RtspCameraHost({"main": path}) as cam:
        streams = ffprobe(cam.url("main"))
    assert [(s["codec_name"], s["width"], s["height"]) for s in streams] == [("h264", 768, 576)]


def test_camera_farm_starts_cameras_in_parallel(gst: None, main_clip: Path, sub_clip: Path) -> None:
    with CameraFarm([(main_clip, sub_clip)], count=4) as farm:
        assert len(farm) == 4
        assert all(cam.running for cam in farm)
        assert len({cam.port for cam in farm}) == 4
        assert farm.camera(3).url("sub").startswith("rtsp://127.0.0.1:")
        sub = ffprobe(farm.camera(3).url("sub"))
        assert sub[0]["codec_name"] == "hevc"
    assert not any(cam.running for cam in farm)
