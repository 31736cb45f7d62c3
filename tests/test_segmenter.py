"""Segments from real H.264/H.265 packets, driven with simulated receive times (fast)."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from server.catalog import Catalog
from server.datadir import DataDir
from server.protocol.fragindex import decode_fragment_index
from server.recording.mp4boxes import scan_segment_bytes
from server.recording.recovery import check, recover
from server.recording.segmenter import RecordingSettings, SegmentWriter
from tests.helpers import clip_packets, decode_errors, ffprobe, ingest_packet

T0 = 1_800_000_000_000_000


def _recorder(tmp_path: Path, segment_s: float = 5) -> tuple[Catalog, DataDir, SegmentWriter]:
    data = DataDir(tmp_path / "data")
    data.create()
    catalog = Catalog(data.catalog)
    catalog.upsert_camera("cam", "Cam", {"main": ("rtsp://127.0.0.1:1/x", True)}, now_us=T0)
    rec = SegmentWriter(
        catalog, data.root, "cam", "main", RecordingSettings(segment_us=int(segment_s * 1e6))
    )
    return catalog, data, rec


def _feed(rec: SegmentWriter, clip: Path, loops: int, stop_after: int | None = None) -> int:
    info, packets = clip_packets(clip, loops)
    rec.on_connect(info)
    rng = random.Random(7)
    tb = info.time_base
    first = packets[0][2]
    for n, (data, pts, dts, key) in enumerate(packets):
        if stop_after is not None and n == stop_after:
            return n
        media_us = int((dts - first) * tb * 1_000_000)
        rec.on_packet(ingest_packet(data, pts, dts, key, T0 + media_us + rng.randrange(30_000), tb))
    return len(packets)


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_segments_are_valid_chained_and_indexed(
    tmp_path: Path, codec: str, camera_clips: list, hevc_clip: Path
) -> None:
    clip = hevc_clip if codec == "hevc" else camera_clips[0][0]
    catalog, data, rec = _recorder(tmp_path)
    frames = _feed(rec, clip, loops=3)
    rec.close()
    segs = catalog.segments()
    assert len(segs) >= 2
    assert all(s.state == "closed" and s.codec == codec for s in segs)
    assert sum(s.frames for s in segs) == frames
    for prev, seg in itertools.pairwise(segs):
        assert seg.start_us == prev.end_us, "segments of a run are chained exactly"
    assert segs[0].start_us - T0 < 30_000  # least-delayed frame's estimate
    for seg in segs:
        path = data.root / seg.path
        assert path.stat().st_size == seg.bytes
        probe = ffprobe(path)
        duration_us = float(probe["format"]["duration"]) * 1e6
        assert abs(duration_us - seg.duration_us) <= 40_000, "within one frame"
        assert probe["streams"][0]["codec_name"] == codec
        assert int(probe["streams"][0]["nb_read_packets"]) == seg.frames
        assert decode_errors(path) == ""
        init, frags = decode_fragment_index(seg.fragment_index, seg.start_us)
        scan = scan_segment_bytes(path.read_bytes())
        assert init == scan.init_bytes
        assert [(f.offset, f.bytes) for f in frags] == [(f.offset, f.bytes) for f in scan.fragments]
        assert frags[-1].end_us == seg.end_us
    assert check(catalog, data, repair=False).problems == []


def test_open_segment_is_visible_while_recording(tmp_path: Path, camera_clips: list) -> None:
    catalog, data, rec = _recorder(tmp_path, segment_s=60)
    _feed(rec, camera_clips[0][0], loops=1, stop_after=110)  # 4 full GOPs and a bit
    (seg,) = catalog.segments()
    assert seg.state == "open"
    part = data.root / (seg.path + ".part")
    _init, frags = decode_fragment_index(seg.fragment_index, seg.start_us)
    assert len(frags) == 4 and seg.frames == 100
    assert seg.bytes == frags[-1].offset + frags[-1].bytes
    # what the index covers is a playable file on its own (what a client would fetch)
    head = tmp_path / "head.mp4"
    head.write_bytes(part.read_bytes()[: seg.bytes])
    assert decode_errors(head) == ""
    assert ffprobe(head)["streams"][0]["nb_read_packets"] == "100"


def test_recovery_cuts_torn_fragment_and_keeps_the_rest(tmp_path: Path, camera_clips: list) -> None:
    catalog, data, rec = _recorder(tmp_path, segment_s=60)
    _feed(rec, camera_clips[0][0], loops=1, stop_after=160)
    (seg,) = catalog.segments()
    part = data.root / (seg.path + ".part")
    complete = scan_segment_bytes(part.read_bytes())
    # a kill in the middle of writing a fragment: a moof and part of its mdat
    with part.open("ab") as f:
        f.write(part.read_bytes()[complete.fragments[-1].offset :][:5000])
    catalog.close()  # the recorder "dies" here: its open segment is never closed

    catalog = Catalog(data.catalog)
    report = recover(catalog, data)
    assert [p.kind for p in report.problems] == ["open-segment"]
    assert not part.exists()
    (fixed,) = catalog.segments()
    final = data.root / fixed.path
    assert fixed.state == "closed" and final.stat().st_size == fixed.bytes
    assert fixed.frames == 150 and len(complete.fragments) == 6
    assert decode_errors(final) == ""
    assert check(catalog, data, repair=False).problems == []


def test_check_reports_and_repairs_without_losing_files(tmp_path: Path, camera_clips: list) -> None:
    catalog, data, rec = _recorder(tmp_path)
    _feed(rec, camera_clips[0][0], loops=2)
    rec.close()
    segs = catalog.segments()
    missing = data.root / segs[0].path
    missing.unlink()
    stray = data.recordings / "cam" / "main" / "stray.mp4"
    stray.write_bytes((data.root / segs[1].path).read_bytes())
    report = check(catalog, data, repair=False)
    assert sorted(p.kind for p in report.problems) == ["missing-file", "orphan-file"]
    report = check(catalog, data, repair=True)
    assert all(p.repaired for p in report.problems)
    assert (data.lost_found / "recordings" / "cam" / "main" / "stray.mp4").exists()
    assert len(catalog.segments()) == len(segs) - 1
    assert check(catalog, data, repair=False).problems == []


def test_parameter_change_starts_a_segment_with_the_new_size(
    tmp_path: Path, camera_clips: list
) -> None:
    """A camera reconfigured mid-stream (new SPS/PPS): new segment, decodable, right size."""
    catalog, data, rec = _recorder(tmp_path, segment_s=60)
    info, first = clip_packets(camera_clips[0][0])  # 640x360
    _, second = clip_packets(camera_clips[0][1])  # 320x180, same 25 fps
    rec.on_connect(info)
    shift = first[-1][2] + (first[1][2] - first[0][2]) - second[0][2]
    packets = first + [(d, pts + shift, dts + shift, k) for d, pts, dts, k in second]
    for data_, pts, dts, key in packets:
        media_us = int((dts - first[0][2]) * info.time_base * 1_000_000)
        rec.on_packet(ingest_packet(data_, pts, dts, key, T0 + media_us, info.time_base))
    rec.close()
    a, b = catalog.segments()
    assert (a.width, a.height, b.width, b.height) == (640, 360, 320, 180)
    assert b.start_us == a.end_us
    probe = ffprobe(data.root / b.path)["streams"][0]
    assert (probe["width"], probe["height"]) == (320, 180)
    assert decode_errors(data.root / a.path) == decode_errors(data.root / b.path) == ""


def test_timestamp_jump_starts_a_new_run(tmp_path: Path, camera_clips: list) -> None:
    catalog, _data, rec = _recorder(tmp_path, segment_s=60)
    info, packets = clip_packets(camera_clips[0][0])
    rec.on_connect(info)
    jump = int(3600 / info.time_base)  # an hour forward (a camera clock set)
    half = len(packets) // 2 // 25 * 25  # on a key frame
    for n, (data_, pts, dts, key) in enumerate(packets):
        extra = jump if n >= half else 0
        media_us = int((dts - packets[0][2]) * info.time_base * 1_000_000)
        rec.on_packet(
            ingest_packet(data_, pts + extra, dts + extra, key, T0 + media_us, info.time_base)
        )
    rec.close()
    a, b = catalog.segments()
    assert a.run_id != b.run_id
    assert 0 <= b.start_us - a.end_us < 100_000, "wall time follows our clock, not the jump"


def test_startup_recovery_finds_a_part_file_created_just_before_a_crash(
    tmp_path: Path, camera_clips: list
) -> None:
    """A crash between creating a segment file and inserting its row leaves a .part no row
    knows: start-up recovery looks in each stream's newest day directory and keeps it aside."""
    catalog, data, rec = _recorder(tmp_path)
    _feed(rec, camera_clips[0][0], loops=1)
    rec.close()
    newest = data.root / catalog.segments()[-1].path
    stray = newest.with_name("1999999999999999.mp4.part")
    stray.write_bytes(newest.read_bytes()[:500])
    report = recover(catalog, data)
    assert [p.kind for p in report.problems] == ["orphan-part"]
    assert not stray.exists()
    assert (data.lost_found / stray.relative_to(data.root)).exists()
    assert check(catalog, data, repair=False).problems == []
