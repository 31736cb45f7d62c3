"""Recording real RTSP cameras (GStreamer's RTSP server) with a real vigia-server process."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.catalog import Catalog
from server.protocol.fragindex import decode_fragment_index
from server.recording.mp4boxes import scan_segment_bytes
from server.sim.rtsp_cameras import CameraFarm
from tests.conftest import ROOT, camera_toml, wait_until
from tests.helpers import decode_errors, ffprobe

FRAME_US = 40_000  # the test clips are 25 fps


def _catalog(data: Path) -> Catalog:
    return Catalog(data / "catalog.db")


def _streams_recording(data: Path, n: int, min_fragments: int = 1) -> bool:
    if not (data / "catalog.db").exists():
        return False
    cat = _catalog(data)
    try:
        per_stream: dict[int, int] = {}
        for seg in cat.segments():
            _, frags = decode_fragment_index(seg.fragment_index, seg.start_us)
            per_stream[seg.stream_id] = per_stream.get(seg.stream_id, 0) + len(frags)
        return sum(1 for v in per_stream.values() if v >= min_fragments) >= n
    finally:
        cat.close()


def _check_cli(data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", "check", "--data-dir", str(data)],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_four_cameras_for_a_minute(farm: CameraFarm, server_process) -> None:
    cams = [(f"cam{i}", farm.camera(i).url("main"), farm.camera(i).url("sub")) for i in range(4)]
    server = server_process(camera_toml(cams))
    server.start()
    data = server.data_dir
    wait_until(lambda: _streams_recording(data, 8), 30, "8 streams recording")
    t_start = time.time()
    time.sleep(60)  # the scenario: one minute of recording
    t_stop = time.time()
    assert server.stop() == 0, server.log()

    cat = _catalog(data)
    streams = cat.streams()
    assert len(streams) == 8
    for st in streams:
        segs = cat.segments(st.id)
        assert segs and all(s.state == "closed" for s in segs), st
        assert len(segs) >= 4, f"{st.camera_id}/{st.name}: 15 s segments over a minute"
        for prev, seg in itertools.pairwise(segs):
            assert seg.start_us >= prev.end_us, f"overlap in {st.camera_id}/{st.name}"
        for seg in segs:
            probe = ffprobe(data / seg.path)
            duration_us = float(probe["format"]["duration"]) * 1e6
            assert abs(duration_us - seg.duration_us) <= FRAME_US, seg.path
            assert int(probe["streams"][0]["nb_read_packets"]) == seg.frames
        span = segs[-1].end_us - segs[0].start_us
        covered = sum(s.duration_us for s in segs)
        assert covered >= 0.99 * span, f"{st.camera_id}/{st.name}: {covered}/{span}"
        # the catalog covers the time the test watched it record
        assert segs[0].start_us <= t_start * 1e6 and segs[-1].end_us >= (t_stop - 1) * 1e6
    for seg in cat.segments()[:4]:
        assert decode_errors(data / seg.path) == ""
    cat.close()
    chk = _check_cli(data)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    assert "0 problems" in chk.stdout


def test_kill_9_loses_nothing_complete(farm: CameraFarm, server_process, tmp_path: Path) -> None:
    cams = [(f"cam{i}", farm.camera(i).url("main"), None) for i in range(2)]
    server = server_process(camera_toml(cams))
    server.start()
    data = server.data_dir
    wait_until(lambda: _streams_recording(data, 2, min_fragments=3), 30, "3 fragments each")
    server.kill9()

    # what was on disk at the moment of the kill: the truth recovery must keep
    snapshot = tmp_path / "at-kill"
    shutil.copytree(data / "recordings", snapshot)
    complete = {}
    for part in snapshot.rglob("*.part"):
        scan = scan_segment_bytes(part.read_bytes())
        complete[str(part.relative_to(snapshot)).removesuffix(".part")] = scan
    assert len(complete) == 2, "each stream had an open segment"

    server.start()

    # recording resumes: a second run appears for every stream
    def resumed() -> bool:
        cat = _catalog(data)
        try:
            runs = {s.run_id for s in cat.segments() if s.frames > 0}
            return len(runs) >= 4
        finally:
            cat.close()

    wait_until(resumed, 30, "recording to resume after restart")
    for rel in complete:  # recovered at start-up, before recording resumed
        assert not (data / "recordings" / (rel + ".part")).exists(), rel
    assert server.stop() == 0, server.log()
    assert not list((data / "recordings").rglob("*.part")), "no .part left"
    cat = _catalog(data)
    for rel, scan in complete.items():
        (row,) = [s for s in cat.segments() if s.path == "recordings/" + rel]
        _, frags = decode_fragment_index(row.fragment_index, row.start_us)
        assert len(frags) >= len(scan.fragments) >= 3, "every complete fragment is indexed"
        assert row.frames >= sum(f.samples for f in scan.fragments)
        assert decode_errors(data / row.path) == ""
    for a, b in zip(cat.segments(), cat.segments()[1:], strict=False):
        if a.stream_id == b.stream_id:
            assert b.start_us >= a.end_us
    cat.close()
    chk = _check_cli(data)
    assert chk.returncode == 0 and "0 problems" in chk.stdout, chk.stdout + chk.stderr
