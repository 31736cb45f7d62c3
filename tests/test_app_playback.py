"""Playback engine against a real recorder: an hour built offline with the recorder's own
segmenter (a gap in the middle), served by a real vigia-server whose cameras are also live."""

from __future__ import annotations

import contextlib
import random
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import pytest

from app.api import ApiClient
from app.frames import VideoFrame
from app.loop import AsyncRunner
from app.playback import ManualTime, PlaybackClock, PlaybackEngine, SegmentFetcher
from server.catalog import Catalog
from server.datadir import DataDir
from server.recording.segmenter import RecordingSettings, SegmentWriter
from server.sim.clips import ClipSpec, make_clip, read_frame_number
from tests.conftest import START_S, ServerProcess, camera_toml, wait_until
from tests.helpers import clip_packets, ingest_packet

S = 1_000_000
FRAME_US = 40_000  # 25 fps
CLIP_FRAMES = 200  # 8 s clips: the frame code repeats every 200 frames
GOP = 50  # 2 s
PASSWORD = "admin-password-1"
PART_A_US = 30 * 60 * S
GAP_US = 3 * 60 * S
PART_B_US = 30 * 60 * S
CAM2_OFFSET_US = 13_000  # cam2's frames fall between cam's


@dataclass
class Recorder:
    base: str
    data: Path
    a_start: int  # first frame of part A (frame code 0)
    b_start: int  # first frame after the gap (frame code 0)
    b_end: int
    cam2_start: int
    cam2_end: int
    runner: AsyncRunner
    api: ApiClient

    def fetcher(self, camera: str = "cam") -> SegmentFetcher:
        return SegmentFetcher(self.runner, self.api, camera)


def _record(catalog: Catalog, data: DataDir, camera: str, clip: Path, start_us: int,
            seconds: int, segment_s: int) -> int:  # fmt: skip
    """Record ``seconds`` of a looped clip as if received live from ``start_us``; its end."""
    rec = SegmentWriter(catalog, data.root, camera, "main",
                         RecordingSettings(segment_us=segment_s * S))  # fmt: skip
    info, packets = clip_packets(clip, loops=seconds * S // (CLIP_FRAMES * FRAME_US))
    rec.on_connect(info)
    tb, first = info.time_base, packets[0][2]
    for payload, pts, dts, key in packets:
        recv = start_us + int((dts - first) * tb * S)
        rec.on_packet(ingest_packet(payload, pts, dts, key, recv, tb))
    rec.close()
    return start_us + len(packets) * FRAME_US


@contextlib.contextmanager
def serve_archive(
    root: Path,
    clip_dir: Path,
    part_a_us: int = PART_A_US,
    gap_us: int = GAP_US,
    part_b_us: int = PART_B_US,
) -> Iterator[Recorder]:
    """Record part A, a gap, part B (ending about now) and 80 s of cam2 offline with the
    recorder's segmenter, then serve the data dir with a real vigia-server whose two cameras
    (file:// clips) keep recording live."""
    spec = ClipSpec(320, 180, fps=25, seconds=8, gop=GOP, label="playback")
    clip = make_clip(clip_dir / "playback-320-gop2.mp4", spec)
    clip2 = make_clip(clip_dir / "playback2-320-gop2.mp4", ClipSpec(
        320, 180, fps=25, seconds=8, gop=GOP, label="playback 2", scene=2))  # fmt: skip
    data = DataDir(root / "data")
    data.create()
    catalog = Catalog(data.catalog)
    now = time.time_ns() // 1000
    urls = {"cam": clip.as_uri(), "cam2": clip2.as_uri()}
    for cam, url in urls.items():
        catalog.upsert_camera(cam, cam, {"main": (url, True)}, now_us=now)
    a_start = now - (part_a_us + gap_us + part_b_us) - 5 * S
    a_end = _record(catalog, data, "cam", clip, a_start, part_a_us // S, 60)
    b_start = a_end + gap_us
    b_end = _record(catalog, data, "cam", clip, b_start, part_b_us // S, 60)
    cam2_start = b_end - 100 * S + CAM2_OFFSET_US
    cam2_end = _record(catalog, data, "cam2", clip2, cam2_start, 80, 20)
    catalog.close()

    toml = camera_toml([("cam", urls["cam"], None), ("cam2", urls["cam2"], None)])
    (root / "vigia.toml").write_text(toml)
    server = ServerProcess(data.root, root / "vigia.toml", root / "server.log")
    server.start(env={"VIGIA_ADMIN_PASSWORD": PASSWORD})
    base = server.base_url

    def up() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    runner = AsyncRunner("test-playback").start()
    try:
        wait_until(up, START_S, "the recorder's API")

        async def login() -> ApiClient:
            api = ApiClient(base)
            await api.login("admin", PASSWORD)
            return api

        api = runner.call(login(), 10)
        rec = Recorder(base, data.root, a_start, b_start, b_end, cam2_start, cam2_end, runner, api)
        yield rec
        runner.call(api.close(), 5)
    finally:
        runner.stop()
        assert server.proc is not None
        if server.proc.poll() is None:
            server.stop()


@pytest.fixture(scope="module")
def recorder(tmp_path_factory: pytest.TempPathFactory, clip_dir: Path) -> Iterator[Recorder]:
    with serve_archive(tmp_path_factory.mktemp("playback"), clip_dir) as rec:
        yield rec


def _live_segment(rec: Recorder, min_fragments: int) -> dict:
    """The open (still recording) segment of cam once it has ``min_fragments`` fragments."""

    def probe() -> dict | None:
        rows = rec.runner.call(
            rec.api.get_json(
                "/cameras/cam/segments", {"start_us": rec.b_end, "end_us": rec.b_end + 3600 * S}
            ),
            10,
        )
        live = [r for r in rows if r["state"] == "open"]
        return live[0] if live and len(live[0]["fragments"]) >= min_fragments else None

    return wait_until(probe, 40, f"a live segment with {min_fragments} fragments", poll=0.2)


def _first_code_on_disk(rec: Recorder) -> int:
    """Frame code of the open segment's first frame, read from its file on disk."""
    (part,) = (rec.data / "recordings" / "cam" / "main").rglob("*.mp4.part")
    with av.open(str(part)) as c:
        frame = next(c.decode(video=0))
        code = read_frame_number(frame.to_ndarray(format="gray"))
    assert code is not None
    return code


def _code(frame: VideoFrame) -> int | None:
    return read_frame_number(frame.luma)


def test_seek_to_100_random_instants_of_a_recorded_hour(recorder: Recorder) -> None:
    rec = recorder
    live = _live_segment(rec, 2)
    n0 = _first_code_on_disk(rec)
    live_start, live_end = (
        live["start_us"],
        live["fragments"][-1]["start_us"] + live["fragments"][-1]["duration_us"],
    )
    rng = random.Random(5)
    cases: list[tuple[int, int, str]] = []  # (instant, expected frame code, where)

    def archived(t: int, origin: int, where: str) -> None:
        cases.append((t, (t - origin) // FRAME_US % CLIP_FRAMES, where))

    for _ in range(40):
        archived(rng.randrange(rec.a_start, rec.b_start - GAP_US), rec.a_start, "part A")
    for _ in range(40):
        archived(rng.randrange(rec.b_start, rec.b_end), rec.b_start, "part B")
    for _ in range(5):  # just after the gap: the first frames after it
        archived(rec.b_start + rng.randrange(0, 3 * FRAME_US), rec.b_start, "after the gap")
    for _ in range(15):  # in the segment still being written: frame centres (its start is
        # refined by a few ms while it records)
        k = rng.randrange(0, (live_end - live_start) // FRAME_US)
        t = live_start + k * FRAME_US + rng.randrange(8_000, 32_000)
        cases.append((t, (n0 + k) % CLIP_FRAMES, "live segment"))
    rng.shuffle(cases)
    quick: list[int] = []
    with PlaybackEngine(rec.fetcher()) as engine:
        engine.on_frame.connect(lambda p: None if p.exact else quick.append(p.frame.pts_us))
        for t, expected, where in cases:
            frame = engine.seek(t).result(10)
            assert frame is not None, where
            assert frame.pts_us <= t < frame.pts_us + FRAME_US, (where, t, frame.pts_us)
            assert _code(frame) == expected, (where, t - frame.pts_us)
        # seeking into the gap shows the first frame after it
        frame = engine.seek(rec.b_start - GAP_US // 2).result(10)
        assert frame is not None and frame.pts_us == rec.b_start and _code(frame) == 0
    assert len(quick) > 50, "a quick key-frame image came first for seeks between key frames"
    assert all((t - rec.a_start) % (GOP * FRAME_US) == 0 for t in quick if t < rec.b_start)


def test_open_segment_row_is_refetched_past_its_known_end(recorder: Recorder) -> None:
    rec = recorder
    fetcher = rec.fetcher()
    first = _live_segment(rec, 1)
    known = fetcher.segments(first["start_us"], first["start_us"] + 1)
    (seg,) = [s for s in known if s.state == "open"]
    newer = _live_segment(rec, len(seg.fragments) + 1)
    target = newer["fragments"][len(seg.fragments)]["start_us"] + 10_000
    pos = fetcher.locate(target)
    assert pos is not None and pos.segment.id == seg.id and pos.index == len(seg.fragments)


def test_play_into_the_recording_segment_reaches_live(recorder: Recorder) -> None:
    rec = recorder
    live = _live_segment(rec, 2)
    end = live["fragments"][-1]["start_us"] + live["fragments"][-1]["duration_us"]
    went_live: list[int] = []
    with PlaybackEngine(rec.fetcher()) as engine:
        engine.reached_live.connect(went_live.append)
        assert engine.seek(end - 3 * FRAME_US).result(10) is not None
        engine.clock.play(4.0)
        wait_until(lambda: went_live, 20, "reached_live")
    assert went_live[0] >= end - FRAME_US


def test_reverse_play_and_step_over_gop_segment_and_gap_boundaries(recorder: Recorder) -> None:
    rec = recorder
    time_source = ManualTime()
    clock = PlaybackClock(time_source)
    gop_us = GOP * FRAME_US
    boundary = rec.a_start + 37 * gop_us  # a GOP (fragment) boundary
    with PlaybackEngine(rec.fetcher(), clock) as engine:
        k0 = 37 * GOP + 3
        frame = engine.seek(rec.a_start + k0 * FRAME_US + 20_000).result(10)
        assert frame is not None and _code(frame) == k0 % CLIP_FRAMES
        back = [engine.step(-1).result(10) for _ in range(8)]
        assert [_code(f) for f in back] == [(k0 - i) % CLIP_FRAMES for i in range(1, 9)]
        assert back[3].pts_us == boundary - FRAME_US, "crossed into the previous GOP"
        fwd = [engine.step(+1).result(10) for _ in range(8)]
        assert [_code(f) for f in fwd] == [(k0 - 8 + i) % CLIP_FRAMES for i in range(1, 9)]
        # across the gap: from the first frame after it back to the last before it, and on
        engine.seek(rec.b_start).result(10)
        before = engine.step(-1).result(10)
        last_a = (rec.b_start - GAP_US - rec.a_start) // FRAME_US - 1
        assert before.pts_us == rec.a_start + last_a * FRAME_US
        assert _code(before) == last_a % CLIP_FRAMES
        after = engine.step(+1).result(10)
        assert after.pts_us == rec.b_start and _code(after) == 0

        # reverse play at 1x through two GOP boundaries, one clock tick per frame interval
        k1 = 60 * GOP + 5
        engine.seek(rec.a_start + k1 * FRAME_US + 20_000).result(10)
        clock.play(-1.0)
        codes = []
        for _ in range(GOP + 10):
            time_source.advance(FRAME_US)
            clock.notify()
            shown = engine.wait_handled(clock.state().version, 10)
            assert shown is not None and shown.exact
            codes.append(_code(shown.frame))
        assert codes == [(k1 - i) % CLIP_FRAMES for i in range(1, GOP + 11)]


def test_two_cameras_stay_in_step_for_60_s(recorder: Recorder) -> None:
    rec = recorder
    time_source = ManualTime()
    clock = PlaybackClock(time_source)
    tick_us = 33_333  # a 30 Hz display
    start = rec.cam2_start + 5 * S
    with (
        PlaybackEngine(rec.fetcher("cam"), clock) as a,
        PlaybackEngine(rec.fetcher("cam2"), clock) as b,
    ):
        a.seek(start).result(10)
        b.wait_handled(clock.state().version, 10)
        clock.play(1.0)
        worst = 0
        for _ in range(60 * S // tick_us):
            time_source.advance(tick_us)
            clock.notify()
            st = clock.state()
            pa, pb = a.wait_handled(st.version, 10), b.wait_handled(st.version, 10)
            assert pa is not None and pb is not None
            for p in (pa, pb):
                assert p.frame.pts_us <= st.media_us < p.frame.pts_us + FRAME_US
            worst = max(worst, abs(pa.frame.pts_us - pb.frame.pts_us))
        assert worst <= FRAME_US
        # the frames are the right ones, not only their stamps
        assert _code(pa.frame) == (pa.frame.pts_us - rec.b_start) // FRAME_US % CLIP_FRAMES
        assert _code(pb.frame) == (pb.frame.pts_us - rec.cam2_start) // FRAME_US % CLIP_FRAMES
