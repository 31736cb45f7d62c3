"""Test helpers that are plain functions (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from server.recording.packets import IngestPacket, StreamInfo


def ffprobe(path: Path) -> dict:
    """Independent check of a file with Debian's ffprobe: fails on any decode error."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-show_entries",
         "format=duration:stream=codec_name,width,height,nb_read_packets", "-of", "json",
         str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0 and not out.stderr.strip(), f"ffprobe {path}: {out.stderr}"
    return json.loads(out.stdout)


def decode_errors(path: Path) -> str:
    """Decode every frame with ffmpeg; return its error output (empty when clean).

    ``-enc_time_base -1`` keeps the stream's own time base for the null sink: at the frame
    rate's, a packet the recorder nudged one tick past a camera's repeated timestamp rounds
    onto its neighbour and the sink complains, though every frame decodes.
    """
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-enc_time_base", "-1", "-f", "null", "-"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return out.stderr.strip() + ("" if out.returncode == 0 else f" (exit {out.returncode})")


def clip_packets(
    clip: Path, loops: int = 1
) -> tuple[StreamInfo, list[tuple[bytes, int, int, bool]]]:
    """Annex B packets of a clip (looped, timestamps continuing), as a camera would send them."""
    with av.open(str(clip)) as c:
        s = c.streams.video[0]
        codec = "hevc" if s.codec_context.name == "hevc" else "h264"
        bsf = av.BitStreamFilterContext(f"{codec}_mp4toannexb", s)
        raw = []
        for p in c.demux(s):
            if p.dts is None:
                continue
            for q in bsf.filter(p):
                raw.append((bytes(q), q.pts, q.dts, q.is_keyframe, q.duration))
        info = StreamInfo(codec, s.codec_context.width, s.codec_context.height, s.time_base,
                          None, float(s.average_rate))  # fmt: skip
    span = raw[-1][2] + raw[-1][4] - raw[0][2]
    out = []
    for loop in range(loops):
        for data, pts, dts, key, _ in raw:
            out.append((data, pts + loop * span, dts + loop * span, key))
    return info, out


def ingest_packet(
    data: bytes, pts: int, dts: int, key: bool, recv_us: int, time_base: Fraction
) -> IngestPacket:
    pkt = av.Packet(data)
    pkt.pts, pkt.dts, pkt.is_keyframe, pkt.time_base = pts, dts, key, time_base
    return IngestPacket(pkt, dts, pts, key, recv_us, len(data))


def video_frames(path: Path, indices: list[int]) -> list[np.ndarray]:
    """RGB frames of a clip by index, decoded in order (exact, unlike seeking by frame)."""
    wanted = set(indices)
    found: dict[int, np.ndarray] = {}
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i in wanted:
                found[i] = frame.to_ndarray(format="rgb24")
                if len(found) == len(wanted):
                    break
    missing = wanted - set(found)
    assert not missing, f"{path} has no frames {sorted(missing)}"
    return [found[i] for i in indices]


def frame_count(path: Path) -> int:
    with av.open(str(path)) as c:
        return c.streams.video[0].frames


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 where connections are refused for as long as the block runs: bound
    but never listening, so no other process can take it meanwhile (a port that was merely free
    a moment ago may not be). Servers in tests listen on port 0 and say what they got."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def smtp_server(handler: object, **kw: object):
    """A real aiosmtpd server on 127.0.0.1. aiosmtpd needs a port number up front (its
    readiness check connects to it), so take one the kernel just handed out and start there;
    if another process took it in between, the start fails with EADDRINUSE and the next one
    is tried: a test never talks to somebody else's server."""
    from aiosmtpd.controller import Controller

    last: OSError | None = None
    for _ in range(20):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        controller = Controller(handler, hostname="127.0.0.1", port=port, **kw)
        try:
            controller.start()
        except OSError as exc:  # taken meanwhile
            last = exc
            continue
        return controller
    raise RuntimeError(f"no port for the SMTP server: {last}")


@contextlib.contextmanager
def small_tmpfs(parent: Path, mib: int) -> Iterator[Path]:
    """A real file system of ``mib`` MiB (tmpfs) under ``parent``, so a disk really fills up.
    Mounting needs root: `make test` runs as root in CI, where the skip becomes a failure."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (make test runs as root in CI)")
    vol = parent / "vol"
    vol.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(vol)], check=True)
    try:
        yield vol
    finally:
        subprocess.run(["umount", "-l", str(vol)], check=False)
