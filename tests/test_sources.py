"""Camera outages and bad sources, with the recorder in-process and real RTSP cameras."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from server.catalog import Catalog
from server.clock import SystemClock
from server.config import CameraConfig, RecordingConfig
from server.datadir import DataDir
from server.ingest.worker import State, StreamStatus
from server.protocol.fragindex import decode_fragment_index
from server.service import apply_camera
from server.supervisor import IngestSupervisor
from tests.conftest import wait_until
from tests.helpers import decode_errors, ffprobe


class Harness:
    """A real IngestSupervisor on a temp data dir; status changes arrive on a queue."""

    def __init__(self, tmp_path: Path, segment_seconds: float = 10) -> None:
        self.data = DataDir(tmp_path / "data")
        self.data.create()
        self.catalog = Catalog(self.data.catalog)
        self.clock = SystemClock()
        self.history: list[StreamStatus] = []
        self._changed = threading.Condition()
        self.recorder = IngestSupervisor(
            self.catalog, self.data, self.clock,
            RecordingConfig(segment_seconds=segment_seconds, read_timeout_s=3, open_timeout_s=5),
            on_status=self._on_status,
        )  # fmt: skip

    def add(self, cam_id: str, main: str, sub: str | None = None) -> None:
        apply_camera(self.catalog, CameraConfig(cam_id, cam_id, main, sub), self.clock, "api")
        self.recorder.sync()

    def _on_status(self, status: StreamStatus) -> None:
        with self._changed:
            self.history.append(status)
            self._changed.notify_all()

    def mark(self) -> int:
        """Position in the status history; ``wait_state(since=mark)`` ignores older changes."""
        with self._changed:
            return len(self.history)

    def wait_state(
        self, cam_id: str, state: State, since: int = 0, timeout: float = 20
    ) -> StreamStatus:
        def found() -> StreamStatus | None:
            return next(
                (s for s in self.history[since:] if s.camera_id == cam_id and s.state == state),
                None,
            )

        with self._changed:
            if not self._changed.wait_for(found, timeout):
                pytest.fail(f"{cam_id} never became {state}: {self.recorder.status()}")
            result = found()
            assert result is not None
            return result

    def fragments(self, cam_id: str, stream: str = "main") -> int:
        sid = self.catalog.stream_id(cam_id, stream)
        total = 0
        for seg in self.catalog.segments(sid):
            total += len(decode_fragment_index(seg.fragment_index, seg.start_us)[1])
        return total

    def close(self) -> None:
        self.recorder.stop()
        self.catalog.close()


@pytest.fixture
def harness(tmp_path: Path):
    h = Harness(tmp_path)
    yield h
    h.close()


def test_outage_gives_offline_then_online_and_a_true_gap(
    harness: Harness, camera_host, camera_clips: list
) -> None:
    host = camera_host({"main": camera_clips[0][0]})
    harness.add("cam", host.url("main"))
    harness.wait_state("cam", State.ONLINE)
    wait_until(lambda: harness.fragments("cam") >= 2, 20, "two fragments")

    mark = harness.mark()
    host.stop()
    t_stop_us = harness.clock.now_us()
    offline = harness.wait_state("cam", State.OFFLINE, since=mark)
    assert offline.reason
    time.sleep(10)  # the outage itself
    mark = harness.mark()
    host.restart()
    t_back_us = harness.clock.now_us()
    harness.wait_state("cam", State.ONLINE, since=mark)
    sid = harness.catalog.stream_id("cam", "main")
    runs = lambda: sorted({s.run_id for s in harness.catalog.segments(sid)})  # noqa: E731
    wait_until(lambda: len(runs()) == 2, 10, "a second run after the outage")

    segs = harness.catalog.segments(sid)
    before = [s for s in segs if s.run_id == runs()[0]]
    after = [s for s in segs if s.run_id == runs()[1]]
    gap_start, gap_end = before[-1].end_us, after[0].start_us
    assert abs(gap_start - t_stop_us) <= 1_000_000, "gap starts when the camera went dark"
    assert 0 <= gap_end - t_back_us <= 2_000_000, "recording resumes within 2 s"
    assert gap_end - gap_start >= 9_000_000
    # nothing else is lost: every frame recorded before the outage is in closed, clean files
    assert all(s.state == "closed" for s in before)
    for s in before:
        assert decode_errors(harness.data.root / s.path) == ""
    rec = harness.recorder.recorder("cam", "main")
    assert rec is not None
    wait_until(lambda: harness.fragments("cam") >= len(before) + 2, 10, "fragments after")


def test_bad_sources_get_clear_errors_and_do_not_disturb_others(
    harness: Harness, camera_host, camera_clips: list, hevc_clip: Path, closed_port: int
) -> None:
    host = camera_host({"main": hevc_clip, "sub": camera_clips[1][1]}, audio_mounts=["audio"])
    harness.add("good", host.url("main"), host.url("sub"))
    harness.add("notfound", host.url("no-such-mount"))
    harness.add("refused", f"rtsp://127.0.0.1:{closed_port}/main")
    harness.add("novideo", host.url("audio"))
    harness.add("garbage", "rtsp://")

    reasons = {cam: harness.wait_state(cam, State.ERROR).reason
               for cam in ("notfound", "refused", "novideo", "garbage")}  # fmt: skip
    assert "404" in reasons["notfound"] or "not found" in reasons["notfound"].lower()
    assert "refused" in reasons["refused"].lower()
    assert "no video stream" in reasons["novideo"] and "audio" in reasons["novideo"]
    assert reasons["garbage"]

    wait_until(lambda: harness.fragments("good") >= 3, 20, "good camera recording")
    wait_until(lambda: harness.fragments("good", "sub") >= 3, 20, "good sub recording")
    status = {(s.camera_id, s.stream): s for s in harness.recorder.status()}
    assert status["good", "main"].state == State.ONLINE
    assert status["refused", "main"].reconnects >= 1, "keeps retrying"
    sid = harness.catalog.stream_id("good", "main")
    seg = harness.catalog.segments(sid)[0]
    assert seg.codec == "hevc"
    head = harness.data.root / "head.mp4"
    head.write_bytes((harness.data.root / (seg.path + ".part")).read_bytes()[: seg.bytes])
    assert ffprobe(head)["streams"][0]["codec_name"] == "hevc"


def test_cameras_added_and_removed_live(harness: Harness, camera_host, camera_clips) -> None:
    host = camera_host({"main": camera_clips[0][0], "b": camera_clips[1][0]})
    harness.add("a", host.url("main"))
    wait_until(lambda: harness.fragments("a") >= 1, 20, "camera a recording")
    harness.add("b", host.url("b"))
    wait_until(lambda: harness.fragments("b") >= 1, 20, "camera b recording without restart")
    harness.catalog.set_camera_enabled("a", False, now_us=harness.clock.now_us())
    harness.recorder.sync()
    assert {s.camera_id for s in harness.recorder.status()} == {"b"}
    sid = harness.catalog.stream_id("a", "main")
    assert all(s.state == "closed" for s in harness.catalog.segments(sid))
    n = harness.fragments("b")
    wait_until(lambda: harness.fragments("b") > n, 10, "camera b still recording")
