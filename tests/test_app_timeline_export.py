"""Timeline model (incremental fetching, thumbnails) and the export client, against a real
recorder serving an archive recorded offline with its own segmenter."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.export import ExportClient, ExportStatus, verify_export
from app.timeline import TimelineModel, level_for
from server.sim.clips import read_frame_number
from tests.test_app_playback import FRAME_US, GOP, Recorder, S, serve_archive

MIN = 60 * S


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, clip_dir: Path) -> Iterator[Recorder]:
    """8 min recorded, a 2 min gap, 8 min recorded up to about now."""
    with serve_archive(
        tmp_path_factory.mktemp("timeline"), clip_dir, 8 * MIN, 2 * MIN, 8 * MIN
    ) as rec:
        yield rec


def test_timeline_fetches_only_what_a_window_lacks(archive: Recorder) -> None:
    rec = archive
    gap_start = rec.b_start - 2 * MIN
    mark = rec.runner.call(
        rec.api.post_json(
            "/bookmarks",
            {"camera": "cam", "start_us": rec.a_start + MIN, "end_us": rec.a_start + MIN + S,
             "name": "door"},
        ),
        10,
    )  # fmt: skip
    model = TimelineModel(rec.runner, rec.api, "cam")
    views = []
    model.changed.connect(views.append)
    w0 = (rec.a_start, rec.a_start + 12 * MIN)
    view = model.set_window(*w0, width_px=720)
    assert view.resolution_us == level_for(12 * MIN, 720) == 1 * S
    assert view.ranges == [(rec.a_start, gap_start), (rec.b_start, w0[1])]
    assert view.gaps == [(gap_start, rec.b_start)]
    assert [b["id"] for b in view.bookmarks] == [mark["id"]]
    assert view.events == []  # no analytics here; a recorder without /events (404): none
    first = model.requests
    assert first == 3  # recordings, bookmarks, events
    marks = 1 + int(model.events_supported)  # /events is asked again only where it exists

    # panning right by 2 minutes fetches those 2 minutes only
    view = model.set_window(rec.a_start + 2 * MIN, rec.a_start + 14 * MIN, width_px=720)
    assert model.requests == first + 1 + marks
    assert view.ranges == [(rec.a_start + 2 * MIN, gap_start), (rec.b_start, view.end_us)]
    # back to a window already seen: nothing fetched
    assert model.set_window(*w0, width_px=720).ranges == [
        (rec.a_start, gap_start),
        (rec.b_start, w0[1]),
    ]
    assert model.requests == first + 1 + marks
    # zoomed out: another resolution, fetched once (marks are already known for the middle)
    wide = model.set_window(rec.a_start - 30 * MIN, rec.a_start + 14 * MIN, width_px=720)
    assert wide.resolution_us == level_for(44 * MIN, 720) == 2 * S
    assert model.requests == first + 1 + marks + 1 + marks
    assert wide.ranges[0] == (rec.a_start, gap_start)
    assert model.mark_times() == [rec.a_start + MIN]
    assert len(views) == 4


def test_hover_thumbnails_are_small_key_frames_and_cached(archive: Recorder) -> None:
    rec = archive
    model = TimelineModel(rec.runner, rec.api, "cam", thumb_width=160)
    t = rec.a_start + 3 * MIN + 700_000
    thumb = model.thumbnail(t)
    assert thumb is not None and (thumb.width, thumb.height) == (160, 90)
    key = (t - rec.a_start) // (GOP * FRAME_US) * GOP  # the key frame at or before t
    assert thumb.pts_us == rec.a_start + key * FRAME_US
    assert read_frame_number(thumb.luma) == key % 200
    fetched = model.fetcher.requests
    again = model.thumbnail(t + 300_000)  # same GOP: from the cache
    assert again is thumb and model.fetcher.requests == fetched
    in_gap = model.thumbnail(rec.b_start - 30 * S)  # in a gap: the first picture after it
    assert in_gap is not None and in_gap.pts_us == rec.b_start


def test_export_end_to_end_verified_and_tampering_detected(
    archive: Recorder, tmp_path: Path
) -> None:
    rec = archive
    client = ExportClient(rec.api)
    seen: list[ExportStatus] = []
    start = rec.a_start + 10 * S
    out, report = rec.runner.call(
        client.run([("cam", "main")], start, start + 10 * S, tmp_path, on_progress=seen.append),
        60,
    )
    assert report.ok, report.problems
    assert seen[-1].state == "done" and seen[-1].progress == 1.0
    assert report.manifest is not None and report.manifest.cameras == ["cam/main"]
    videos = [f.name for f in report.manifest.files]
    assert videos and all((out / v).stat().st_size > 0 for v in videos)

    # one byte of the video changed: its hash no longer matches
    video = out / videos[0]
    original = video.read_bytes()
    video.write_bytes(original[:1000] + bytes([original[1000] ^ 1]) + original[1001:])
    bad = verify_export(out)
    assert not bad.ok and any("modified" in p for p in bad.problems)
    video.write_bytes(original)
    assert verify_export(out).ok

    # the manifest edited to match the tampered file: the signature no longer matches
    manifest = json.loads((out / "manifest.json").read_bytes())
    manifest["exported_by"] = "someone else"
    (out / "manifest.json").write_text(json.dumps(manifest, sort_keys=True))
    bad = verify_export(out)
    assert not bad.ok and any("signature" in p for p in bad.problems)
    # a key other than the trusted one
    assert not verify_export(out, trusted_public_key=bytes(32)).ok
