"""Exports cut from real segments (recorded fast, simulated clock), then signed and verified."""

from __future__ import annotations

import base64
import itertools
import json
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

import av
import pytest

from server.catalog import Catalog
from server.datadir import DataDir
from server.export import (
    ExportCancelled,
    ExportError,
    ExportJobs,
    cut_range,
    export_range,
    load_or_create_signing_key,
    verify_export,
)
from server.export.manifest import load_public_key, public_raw
from server.recording.segmenter import RecordingSettings, SegmentWriter
from server.sim.clips import read_frame_number
from tests.conftest import wait_until
from tests.helpers import clip_packets, decode_errors, ffprobe, ingest_packet

T0 = 1_800_000_000_000_000
S = 1_000_000
FRAME_US = 40_000  # the clips are 25 fps, a key frame every second (25 frames)
CLIP_FRAMES = 200  # 8 s clips: frame codes repeat every 200 frames


@dataclass(frozen=True)
class Archive:
    catalog: Catalog
    data: DataDir


def _record(catalog: Catalog, data: DataDir, camera: str, clip: Path, loops: int,
            segment_s: float = 5, close: bool = True) -> SegmentWriter:  # fmt: skip
    """Record a looped clip as if received live from T0 (a few ms of network jitter)."""
    catalog.upsert_camera(camera, camera, {"main": ("rtsp://127.0.0.1:1/x", True)}, now_us=T0)
    rec = SegmentWriter(catalog, data.root, camera, "main",
                         RecordingSettings(segment_us=int(segment_s * S)))  # fmt: skip
    info, packets = clip_packets(clip, loops)
    rec.on_connect(info)
    tb, first = info.time_base, packets[0][2]
    for n, (payload, pts, dts, key) in enumerate(packets):
        media_us = int((dts - first) * tb * S)
        rec.on_packet(ingest_packet(payload, pts, dts, key, T0 + media_us + n % 7 * 1000, tb))
    if close:
        rec.close()
    return rec


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, camera_clips: list) -> Archive:
    """Two cameras, 40 s each, in 5 s segments."""
    data = DataDir(tmp_path_factory.mktemp("export") / "data")
    data.create()
    catalog = Catalog(data.catalog)
    _record(catalog, data, "cam", camera_clips[0][0], loops=5)
    _record(catalog, data, "cam2", camera_clips[1][0], loops=5)
    return Archive(catalog, data)


def _frame_numbers(path: Path) -> list[int | None]:
    with av.open(str(path)) as c:
        return [read_frame_number(f.to_ndarray(format="gray")) for f in c.decode(video=0)]


def _assert_continuous(numbers: list[int | None], period: int = CLIP_FRAMES) -> None:
    assert None not in numbers
    steps = {(b - a) % period for a, b in itertools.pairwise(numbers)}  # type: ignore[operator]
    assert steps == {1}, "every frame once, in order, across segment boundaries"


def _duration_us(path: Path) -> float:
    return float(ffprobe(path)["format"]["duration"]) * S


def test_export_crosses_segments_seamlessly(archive: Archive, tmp_path: Path) -> None:
    start, end = T0 + 3_500_000, T0 + 33_500_000
    segs = archive.catalog.segments(archive.catalog.stream_id("cam", "main"), start_us=start,
                                    end_us=end)  # fmt: skip
    assert len(segs) >= 6, "the range spans several segment boundaries"
    progress: list[float] = []
    files = cut_range(archive.catalog, archive.data, [("cam", "main"), ("cam2", "main")], start,
                      end, tmp_path, "mp4", progress=progress.append)  # fmt: skip
    assert [f.path.name for f in files] == ["cam-main.mp4", "cam2-main.mp4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam-main.mp4", "cam2-main.mp4"]
    assert progress == sorted(progress) and progress[-1] == 1.0
    for f in files:
        # from the key frame at or before start: up to one GOP (1 s) longer than asked
        assert start - S < f.start_us <= start
        duration = _duration_us(f.path)
        assert end - start <= duration + FRAME_US <= end - start + S + FRAME_US
        assert abs(duration - (f.end_us - f.start_us)) < 1000
        assert ffprobe(f.path)["streams"][0]["nb_read_packets"] == str(f.frames)
        assert decode_errors(f.path) == ""
    numbers = _frame_numbers(files[0].path)
    _assert_continuous(numbers)
    assert numbers[0] == 75, "starts on the key frame at 3.0 s"


@pytest.mark.parametrize("fmt", ["mp4", "mkv"])
def test_exact_export_starts_and_ends_on_the_frame(
    archive: Archive, tmp_path: Path, fmt: str
) -> None:
    start, end = T0 + 3_500_000, T0 + 33_500_000
    (f,) = cut_range(archive.catalog, archive.data, [("cam", "main")], start, end, tmp_path, fmt,
                     exact=True)  # fmt: skip
    assert f.path.name == f"cam-main.{fmt}"
    assert start <= f.start_us < start + FRAME_US
    assert 0 < f.reencoded_frames < 25, "only the first GOP is re-encoded"
    assert abs(_duration_us(f.path) - (end - start)) <= FRAME_US
    assert decode_errors(f.path) == ""
    numbers = _frame_numbers(f.path)
    _assert_continuous(numbers)  # through the junction of re-encoded and copied frames
    assert numbers[0] == 88 and len(numbers) == 750  # 3.52 s .. 33.48 s


def test_exact_export_of_hevc(tmp_path: Path, hevc_clip: Path) -> None:
    data = DataDir(tmp_path / "data")
    data.create()
    catalog = Catalog(data.catalog)
    _record(catalog, data, "cam", hevc_clip, loops=2, segment_s=3)
    start, end = T0 + 1_300_000, T0 + 6_300_000
    (f,) = cut_range(catalog, data, [("cam", "main")], start, end, tmp_path / "out", "mp4",
                     exact=True)  # fmt: skip
    assert ffprobe(f.path)["streams"][0]["codec_name"] == "hevc"
    assert 0 < f.reencoded_frames < 25
    assert abs(_duration_us(f.path) - (end - start)) <= FRAME_US
    assert decode_errors(f.path) == ""
    _assert_continuous(_frame_numbers(f.path), period=100)  # a 4 s clip


def test_open_segment_and_codec_change(tmp_path: Path, camera_clips: list) -> None:
    """A segment still being recorded is exported up to its last fragment; a new picture size
    mid-range makes a second file (one MP4 track cannot change its decoder configuration)."""
    data = DataDir(tmp_path / "data")
    data.create()
    catalog = Catalog(data.catalog)
    catalog.upsert_camera("cam", "cam", {"main": ("rtsp://127.0.0.1:1/x", True)}, now_us=T0)
    rec = SegmentWriter(catalog, data.root, "cam", "main", RecordingSettings(segment_us=60 * S))
    info, big = clip_packets(camera_clips[0][0])  # 640x360
    _, small = clip_packets(camera_clips[0][1])  # 320x180
    shift = big[-1][2] + (big[1][2] - big[0][2]) - small[0][2]
    packets = big + [(d, p + shift, t + shift, k) for d, p, t, k in small[:110]]
    rec.on_connect(info)
    for payload, pts, dts, key in packets:
        media_us = int((dts - big[0][2]) * info.time_base * S)
        rec.on_packet(ingest_packet(payload, pts, dts, key, T0 + media_us, info.time_base))
    _first, second = catalog.segments()
    assert second.state == "open" and not (data.root / second.path).exists()
    a, b = cut_range(catalog, data, [("cam", "main")], T0 + 6 * S, T0 + 20 * S, tmp_path / "out")
    assert (a.path.name, b.path.name) == ("cam-main.mp4", "cam-main-2.mp4")
    assert (ffprobe(a.path)["streams"][0]["width"], ffprobe(b.path)["streams"][0]["width"]) == (
        640, 320,
    )  # fmt: skip
    assert b.start_us == second.start_us and b.frames == 100, "4 complete GOPs are indexed"
    assert decode_errors(a.path) == decode_errors(b.path) == ""
    rec.close()


def test_signed_export_verifies_and_detects_tampering(archive: Archive) -> None:
    jobs = ExportJobs(archive.catalog, archive.data)
    try:
        job = jobs.submit([("cam", "main")], T0 + 10 * S, T0 + 20 * S, fmt="mkv",
                          exported_by="alice")  # fmt: skip
        status = wait_until(lambda: jobs.status(job).state in ("done", "failed") and
                            jobs.status(job), 30, "the export job")  # fmt: skip
    finally:
        jobs.close()
    assert status.state == "done" and status.error is None and status.progress == 1.0
    assert status.files == ("cam-main.mkv", "manifest.json", "manifest.sig", "server.pub")
    out = status.dir
    key_file = archive.data.root / "keys" / "export-signing.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    trusted = load_public_key(archive.data)
    assert trusted is not None and base64.b64decode((out / "server.pub").read_text()) == trusted

    report = verify_export(out, trusted)
    assert report.ok and report.trusted and report.problems == []
    manifest = json.loads((out / "manifest.json").read_bytes())
    assert manifest["exported_by"] == "alice" and manifest["cameras"] == ["cam/main"]
    assert manifest["server_id"] == archive.data.server_id() and manifest["format"] == "mkv"
    assert (out / "manifest.json").read_bytes() == json.dumps(
        manifest, sort_keys=True, separators=(",", ":")
    ).encode(), "canonical JSON"

    video = out / "cam-main.mkv"
    original = video.read_bytes()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    video.write_bytes(flipped)
    report = verify_export(out, trusted)
    assert not report.ok and report.problems == ["cam-main.mkv was modified (SHA-256 differs)"]
    video.write_bytes(original)

    signed = (out / "manifest.json").read_bytes()
    (out / "manifest.json").write_bytes(signed.replace(b'"alice"', b'"mallory"'))
    report = verify_export(out)
    assert not report.ok and any("signature" in p for p in report.problems)
    (out / "manifest.json").write_bytes(signed)

    (out / "extra.txt").write_text("not exported")
    assert verify_export(out).problems == ["extra.txt is not part of the export"]
    (out / "extra.txt").unlink()
    other = load_or_create_signing_key(archive.data.root / "other")
    assert any("not the trusted key" in p for p in verify_export(out, public_raw(other)).problems)
    assert verify_export(out, trusted).ok


def test_cancel(archive: Archive, tmp_path: Path) -> None:
    cancel = threading.Event()
    with pytest.raises(ExportCancelled):
        cut_range(archive.catalog, archive.data, [("cam", "main"), ("cam2", "main")], T0,
                  T0 + 40 * S, tmp_path, progress=lambda f: f > 0.3 and cancel.set(),
                  cancel=cancel)  # fmt: skip
    assert list(tmp_path.iterdir()) == [], "nothing left behind"

    jobs = ExportJobs(archive.catalog, archive.data, exports_dir=tmp_path / "exports")
    gate = threading.Event()
    jobs._pool.submit(gate.wait)  # occupy the only worker, so the job stays queued
    try:
        job = jobs.submit([("cam", "main")], T0, T0 + 10 * S)
        assert jobs.status(job).state == "queued"
        assert jobs.cancel(job)
        assert jobs.status(job).state == "cancelled"
    finally:
        gate.set()
        jobs.close()
    assert not jobs.cancel(job), "already finished"
    assert not (tmp_path / "exports" / job).exists()


def test_clear_errors(archive: Archive, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"no recording of cam/main between 2027-01-15T"):
        export_range(archive.catalog, archive.data, [("cam", "main")], T0 + 3600 * S,
                     T0 + 3700 * S, tmp_path)  # fmt: skip
    with pytest.raises(ExportError, match="unknown camera 'nope'"):
        export_range(archive.catalog, archive.data, [("cam", "main"), ("nope", "main")], T0,
                     T0 + S, tmp_path)  # fmt: skip
    with pytest.raises(ExportError, match="has no stream 'sub'"):
        export_range(archive.catalog, archive.data, [("cam", "sub")], T0, T0 + S, tmp_path)
    with pytest.raises(ExportError, match="format"):
        export_range(archive.catalog, archive.data, [("cam", "main")], T0, T0 + S, tmp_path, "avi")
    assert list(tmp_path.iterdir()) == []
    jobs = ExportJobs(archive.catalog, archive.data, exports_dir=tmp_path / "exports")
    try:
        earlier = jobs.jobs()  # jobs persist in the catalog: other tests' jobs are there
        with pytest.raises(ExportError, match="no recording"):
            jobs.submit([("cam", "main")], T0 - 100 * S, T0 - 50 * S)
        assert jobs.jobs() == earlier, "a refused request leaves no job"
    finally:
        jobs.close()
