"""A full disk: clear error, complete fragments kept, recording resumes when space returns."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.catalog import Catalog
from server.clock import SystemClock
from server.config import CameraConfig, RecordingConfig
from server.datadir import DataDir
from server.recording.recovery import check, recover
from server.service import apply_camera
from server.sim.clips import ClipSpec, make_clip
from server.supervisor import IngestSupervisor
from tests.conftest import wait_until
from tests.helpers import decode_errors, small_tmpfs


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A real 24 MiB file system (tmpfs), so the disk really fills up."""
    with small_tmpfs(tmp_path, 24) as vol:
        yield vol


def test_disk_full_keeps_what_was_written_and_recovers(small_volume: Path, clip_dir: Path) -> None:
    clip = make_clip(clip_dir / "8mbps.mp4", ClipSpec(640, 360, fps=25, seconds=6,
                                                      bitrate=8_000_000, label="busy"))  # fmt: skip
    data = DataDir(small_volume / "data")
    data.create()
    catalog = Catalog(data.catalog)
    clock = SystemClock()
    apply_camera(catalog, CameraConfig("cam", "cam", clip.resolve().as_uri()), clock, "api")
    ballast = small_volume / "ballast"
    free = os.statvfs(small_volume).f_bavail * os.statvfs(small_volume).f_frsize
    ballast.write_bytes(b"\0" * (free - 4 * 1024 * 1024))  # leave ~4 MiB: a few seconds
    recorder = IngestSupervisor(catalog, data, clock, RecordingConfig(segment_seconds=2))
    recorder.sync()
    try:
        rec = wait_until(lambda: recorder.recorder("cam", "main"), 5, "stream recorder")
        wait_until(lambda: rec.stats.error, 30, "the disk to fill up")
        assert "No space left on device" in rec.stats.error
        assert [s.state.value for s in recorder.status()] == ["online"], "ingest goes on"
        assert "No space left on device" in recorder.status()[0].reason, "status says why"
        closed_before = {s.path for s in catalog.segments(state="closed")}
        assert closed_before, "segments finished before the disk filled are kept"

        ballast.unlink()  # the operator frees space (retention would do the same)
        wait_until(
            lambda: len({s.path for s in catalog.segments(state="closed")} - closed_before) >= 2,
            30, "recording to resume once space is back",
        )  # fmt: skip
        assert rec.stats.error is None
    finally:
        recorder.stop()
    recover(catalog, data)  # what the next start-up does
    assert check(catalog, data, repair=False).problems == []
    assert not list(data.recordings.rglob("*.part"))
    for seg in catalog.segments():
        assert decode_errors(data.root / seg.path) == "", seg.path
    catalog.close()
