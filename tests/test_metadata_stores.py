"""Motion-grid store (area search) and track store (hourly Parquet), on real files."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from server.analytics.motionstore import HOUR_US, MotionStore, MotionStoreError
from server.analytics.trackstore import TRACK_SCHEMA, TrackStore
from tests.conftest import wait_until

T0 = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp()) * 1_000_000  # an hour boundary
FRAME_US = 200_000  # 5 analysed frames per second
S = 1_000_000
M = 60 * S

# -- motion store -------------------------------------------------------------------------


def _rect_grid(col: int, row: int, w: int = 2, h: int = 2) -> bytes:
    cells = np.zeros((18, 32), bool)
    cells[row : row + h, col : col + w] = True
    return np.packbits(cells).tobytes()


def _sweep(store: MotionStore, start_us: int, row: int = 5) -> None:
    """A 2x2-cell rectangle crossing the frame left to right: one column a second, 31 s."""
    for step in range(31):
        for frame in range(5):
            store.append("cam1", start_us + step * S + frame * FRAME_US, _rect_grid(step, row))


LEFT = (0.0, 5 / 18, 4 / 32, 7 / 18)  # columns 0..3, rows 5..6: steps 0..3 touch it
RIGHT = (28 / 32, 5 / 18, 1.0, 7 / 18)  # columns 28..31: steps 27..30
BOTTOM = (0.0, 10 / 18, 1.0, 1.0)  # nothing moves there


def _left(t: int) -> tuple[int, int]:
    return (t, t + 3 * S + 4 * FRAME_US + 1)  # half-open: last hit + 1 µs


def _right(t: int) -> tuple[int, int]:
    return (t + 27 * S, t + 30 * S + 4 * FRAME_US + 1)


@pytest.fixture
def motion_dir(tmp_path: Path) -> Path:
    """Three hours: sweeps at minute 10 and 40 of each, and one across the hour 2/3 boundary."""
    store = MotionStore(tmp_path, flush_interval_s=None)
    for hour in range(3):
        for minute in (10, 40):
            _sweep(store, T0 + hour * HOUR_US + minute * M)
        for frame in range(100):  # still frames: nothing to store
            store.append("cam1", T0 + hour * HOUR_US + 20 * M + frame * FRAME_US, bytes(72))
    _sweep(store, T0 + 3 * HOUR_US - 2 * S)
    store.close()
    return tmp_path


def test_area_search_returns_exactly_the_sweeps(motion_dir: Path) -> None:
    store = MotionStore(motion_dir, flush_interval_s=None)
    files = sorted(p.name for p in (motion_dir / "cam1").iterdir())
    assert files == [f"202403010{h}.motion" for h in range(4)]
    sweeps = [T0 + h * HOUR_US + m * M for h in range(3) for m in (10, 40)]
    sweeps.append(T0 + 3 * HOUR_US - 2 * S)
    end = T0 + 4 * HOUR_US
    assert store.search("cam1", T0, end, LEFT) == [_left(t) for t in sweeps]
    assert store.search("cam1", T0, end, RIGHT) == [_right(t) for t in sweeps]
    # The range across the hour boundary comes from two files as one.
    assert _left(sweeps[-1])[0] < T0 + 3 * HOUR_US < _left(sweeps[-1])[1]
    assert store.search("cam1", T0, end, BOTTOM) == []
    # The whole width: one range per sweep; a gap wider than merge_gap_us splits.
    whole = (0.0, 0.0, 1.0, 1.0)
    assert store.search("cam1", T0, end, whole) == [
        (t, t + 30 * S + 4 * FRAME_US + 1) for t in sweeps
    ]
    # Sweeps are 29.5 min apart, but the last two only 19.5 min.
    joined = store.search("cam1", T0, end, whole, merge_gap_us=20 * M)
    assert joined[:5] == [(t, t + 30 * S + 4 * FRAME_US + 1) for t in sweeps[:5]]
    assert joined[5:] == [(sweeps[5], sweeps[6] + 30 * S + 4 * FRAME_US + 1)]
    # A window that cuts a sweep keeps only its frames.
    t = sweeps[2]
    assert store.search("cam1", t + 2 * S, t + 28 * S, LEFT) == [(t + 2 * S, _left(t)[1])]
    assert store.search("cam1", t + 2 * S, t + 28 * S, RIGHT) == [
        (t + 27 * S, t + 28 * S - FRAME_US + 1)
    ]
    assert store.search("cam1", T0 + 5 * HOUR_US, T0 + 6 * HOUR_US, LEFT) == []
    assert store.search("other", T0, end, LEFT) == []
    store.close()


def test_appends_are_searchable_before_flush(tmp_path: Path) -> None:
    store = MotionStore(tmp_path, flush_interval_s=None)
    _sweep(store, T0)
    assert store.search("cam1", T0, T0 + HOUR_US, LEFT) == [_left(T0)]
    store.close()


def test_background_thread_writes_the_files(tmp_path: Path) -> None:
    store = MotionStore(tmp_path, flush_interval_s=0.05)
    store.append("cam1", T0, _rect_grid(0, 0))
    path = tmp_path / "cam1" / "2024030100.motion"
    wait_until(lambda: path.exists() and path.stat().st_size == 16 + 80, 10, "motion file written")
    store.close()


def test_torn_last_record_loses_only_that_record(motion_dir: Path) -> None:
    last = motion_dir / "cam1" / "2024030103.motion"
    size = last.stat().st_size
    with open(last, "r+b") as f:
        f.truncate(size - 5)  # the crash hit the last write
    store = MotionStore(motion_dir, flush_interval_s=None)
    t = T0 + 3 * HOUR_US - 2 * S
    assert store.search("cam1", T0 + 2 * HOUR_US, T0 + 4 * HOUR_US, RIGHT)[-1] == (
        t + 27 * S,
        t + 30 * S + 3 * FRAME_US + 1,
    )
    # Appending again after the restart cuts the torn tail first: records stay aligned.
    store.append("cam1", t + 40 * S, _rect_grid(30, 5))
    store.flush()
    assert last.stat().st_size == size  # the torn record cut off, the new one added
    assert store.search("cam1", T0 + 2 * HOUR_US, T0 + 4 * HOUR_US, RIGHT)[-2:] == [
        (t + 27 * S, t + 30 * S + 3 * FRAME_US + 1),
        (t + 40 * S, t + 40 * S + 1),
    ]
    store.close()


def test_delete_before_removes_whole_hours(motion_dir: Path) -> None:
    store = MotionStore(motion_dir, flush_interval_s=None)
    assert store.delete_before("cam1", T0 + 2 * HOUR_US + 30 * M) == 2  # hours 0 and 1 ended
    assert store.hours("cam1") == [T0 // HOUR_US + 2, T0 // HOUR_US + 3]
    assert store.search("cam1", T0, T0 + 2 * HOUR_US, LEFT) == []
    last = T0 + 3 * HOUR_US - 2 * S  # the sweep across the boundary, cut by the window
    assert store.search("cam1", T0, T0 + 3 * HOUR_US, LEFT) == [
        _left(T0 + 2 * HOUR_US + 10 * M),
        _left(T0 + 2 * HOUR_US + 40 * M),
        (last, last + S + 4 * FRAME_US + 1),
    ]
    assert store.delete_before("cam1", T0 + 2 * HOUR_US + 30 * M) == 0
    store.close()


def test_grid_that_is_not_whole_words(tmp_path: Path) -> None:
    store = MotionStore(tmp_path, cols=10, rows=5, flush_interval_s=None)  # 50 bits: 7 bytes
    cells = np.zeros((5, 10), bool)
    cells[4, 9] = True
    store.append("cam1", T0, np.packbits(cells).tobytes())
    store.append("cam1", T0 + S, np.packbits(np.roll(cells, 1)).tobytes())  # wraps to (0, 0)
    assert store.search("cam1", T0, T0 + HOUR_US, (0.85, 0.85, 1.0, 1.0)) == [(T0, T0 + 1)]
    assert store.search("cam1", T0, T0 + HOUR_US, (0.0, 0.0, 0.1, 0.1)) == [(T0 + S, T0 + S + 1)]
    store.close()


def test_failed_write_loses_nothing(tmp_path: Path) -> None:
    store = MotionStore(tmp_path, flush_interval_s=None)
    blocker = tmp_path / "cam1" / "2024030100.motion"
    blocker.mkdir(parents=True)  # the hour's file cannot be opened
    _sweep(store, T0 + 10 * M)
    _sweep(store, T0 + HOUR_US + 10 * M)
    store.append("cam2", T0, _rect_grid(0, 5))
    with pytest.raises(IsADirectoryError):
        store.flush()
    assert (tmp_path / "cam2" / "2024030100.motion").stat().st_size == 16 + 80  # went on
    blocker.rmdir()
    store.flush()
    assert store.search("cam1", T0, T0 + 2 * HOUR_US, LEFT) == [
        _left(T0 + 10 * M),
        _left(T0 + HOUR_US + 10 * M),
    ]
    store.close()


def test_motion_store_refuses_bad_input(tmp_path: Path, motion_dir: Path) -> None:
    store = MotionStore(tmp_path / "fresh", flush_interval_s=None)
    for bad in ("../x", "a/b", "..", "", "Cam"):
        with pytest.raises(ValueError, match="camera id"):
            store.append(bad, T0, _rect_grid(0, 0))
        with pytest.raises(ValueError, match="camera id"):
            store.search(bad, T0, T0 + S, LEFT)
    with pytest.raises(MotionStoreError, match="72"):
        store.append("cam1", T0, b"\x01" * 71)
    with pytest.raises(MotionStoreError, match="region"):
        store.search("cam1", T0, T0 + S, (0.5, 0.0, 0.4, 1.0))
    assert not (tmp_path / "fresh" / "cam1").exists()  # the refused calls stored nothing
    store.close()
    other = MotionStore(motion_dir, cols=16, rows=9, flush_interval_s=None)
    with pytest.raises(MotionStoreError, match="32x18"):
        other.search("cam1", T0, T0 + HOUR_US, LEFT)
    other.close()


# -- track store --------------------------------------------------------------------------


@dataclass
class Box:
    track_id: int
    label: str
    score: float
    x1: float
    y1: float
    x2: float
    y2: float


def _frame(i: int) -> list[Box]:
    """Frame i's tracks: a person always, a car on even frames, nothing every 7th frame."""
    if i % 7 == 0:
        return []
    boxes = [Box(1, "person", 0.5 + (i % 4) / 8, i % 8 / 8, 0.25, i % 8 / 8 + 0.125, 0.75)]
    if i % 2 == 0:
        boxes.insert(0, Box(9, "car", 0.875, 0.5, 0.5, 0.75, 0.625))  # out of id order
    return boxes


def _rows(frames: range, start_us: int, labels: set[str] | None = None) -> list[tuple]:
    out = []
    for i in frames:
        for b in sorted(_frame(i), key=lambda b: b.track_id):
            if labels is None or b.label in labels:
                out.append(
                    (start_us + i * FRAME_US, b.track_id, b.label, b.score, b.x1, b.y1, b.x2, b.y2)
                )
    return out


def _as_rows(table) -> list[tuple]:
    assert table.schema == TRACK_SCHEMA
    return list(zip(*(table.column(n).to_pylist() for n in TRACK_SCHEMA.names), strict=True))


def _append_frames(store: TrackStore, frames: range, start_us: int) -> None:
    for i in frames:
        store.append("cam1", start_us + i * FRAME_US, _frame(i))


def test_tracks_over_an_hour_boundary_chunks_then_compaction(tmp_path: Path) -> None:
    store = TrackStore(tmp_path, flush_interval_us=HOUR_US, background=False)
    start = T0 + HOUR_US - 60 * S  # the last minute of hour 0, then into hour 1
    _append_frames(store, range(0, 300), start)  # up to 00:59:59.8
    store.flush()
    chunks = list((tmp_path / "cam1" / "2024030100").glob("*.parquet"))
    assert len(chunks) == 1 and not (tmp_path / "cam1" / "2024030100.parquet").exists()
    _append_frames(store, range(300, 310), start)  # hour 1 seen: hour 0 is complete
    store.flush()
    assert (tmp_path / "cam1" / "2024030100.parquet").exists()
    assert not (tmp_path / "cam1" / "2024030100").exists()
    assert len(list((tmp_path / "cam1" / "2024030101").glob("*.parquet"))) == 1
    _append_frames(store, range(310, 400), start)  # buffered only: read sees them too
    assert _as_rows(store.read("cam1", start, start + 400 * FRAME_US)) == _rows(range(400), start)
    assert _as_rows(store.read("cam1", start + 250 * FRAME_US, start + 350 * FRAME_US)) == _rows(
        range(250, 350), start
    )
    store.close()
    assert sorted(p.name for p in (tmp_path / "cam1").iterdir()) == [
        "2024030100.parquet",
        "2024030101.parquet",
    ]
    hourly = pq.read_table(tmp_path / "cam1" / "2024030101.parquet")
    assert _as_rows(hourly) == _rows(range(300, 400), start)
    reopened = TrackStore(tmp_path, background=False)
    assert _as_rows(reopened.read("cam1", T0, T0 + 2 * HOUR_US)) == _rows(range(400), start)
    assert _as_rows(reopened.read("cam1", T0, T0 + 2 * HOUR_US, labels={"car"})) == _rows(
        range(400), start, {"car"}
    )
    assert reopened.read("cam1", T0, T0 + 2 * HOUR_US, labels=[]).num_rows == 0
    reopened.close()


def test_flush_interval_writes_chunks_in_the_background(tmp_path: Path) -> None:
    store = TrackStore(tmp_path, flush_interval_us=2 * S)
    _append_frames(store, range(1, 12), T0)  # 2.2 s of stream time
    chunk_dir = tmp_path / "cam1" / "2024030100"
    wait_until(lambda: any(chunk_dir.glob("*.parquet")), 10, "a chunk written by the thread")
    assert _as_rows(store.read("cam1", T0, T0 + HOUR_US)) == _rows(range(1, 12), T0)
    store.close()


def test_crash_leftovers_read_without_duplicates_or_loss(tmp_path: Path) -> None:
    start = T0 + HOUR_US - 60 * S
    store = TrackStore(tmp_path, flush_interval_us=20 * S, background=False)
    for part in (range(0, 100), range(100, 200), range(200, 300)):
        _append_frames(store, part, start)
        store.flush()  # three chunks of hour 0
    saved = tmp_path / "saved"
    shutil.copytree(tmp_path / "cam1" / "2024030100", saved)
    _append_frames(store, range(300, 350), start)
    store.flush()  # hour 0 compacted, hour 1 in a chunk; then the process dies (no close)
    del store
    early = TrackStore(tmp_path, background=False)  # opened before the leftovers appear
    # The crash came between the compacted file's rename and the chunks' removal, and an
    # interrupted chunk write left a temporary file.
    shutil.copytree(saved, tmp_path / "cam1" / "2024030100")
    (tmp_path / "cam1" / "2024030101" / "x.parquet.tmp").write_bytes(b"PAR1 half a file")
    expected = _rows(range(350), start)
    # Leftovers are ignored when read ...
    assert _as_rows(early.read("cam1", T0, T0 + 2 * HOUR_US)) == expected
    # ... and cleaned up at start: the hour's chunks go, the newest hour stays in chunks.
    store = TrackStore(tmp_path, background=False)
    assert not (tmp_path / "cam1" / "2024030100").exists()
    (chunk,) = (tmp_path / "cam1" / "2024030101").iterdir()  # the temp file is gone
    assert chunk.suffix == ".parquet"
    assert _as_rows(store.read("cam1", T0, T0 + 2 * HOUR_US)) == expected
    store.close()


def test_interrupted_before_compaction_is_compacted_at_start(tmp_path: Path) -> None:
    start = T0 + HOUR_US - 60 * S
    root, elsewhere = tmp_path / "a", tmp_path / "b"
    store = TrackStore(root, background=False)
    _append_frames(store, range(0, 300), start)
    store.flush()
    # The process dies right after a later hour's chunk, before hour 0 was compacted.
    later = TrackStore(elsewhere, background=False)
    _append_frames(later, range(300, 320), start)
    later.flush()
    os.rename(elsewhere / "cam1" / "2024030101", root / "cam1" / "2024030101")
    tmp_path = root
    store = TrackStore(root, background=False)
    assert (tmp_path / "cam1" / "2024030100.parquet").exists()
    assert not (tmp_path / "cam1" / "2024030100").exists()
    assert (tmp_path / "cam1" / "2024030101").is_dir()
    assert _as_rows(store.read("cam1", T0, T0 + 2 * HOUR_US)) == _rows(range(320), start)
    # Late rows for the compacted hour are merged into its file, not left beside it.
    store.append("cam1", start + 1, [Box(5, "dog", 0.5, 0.0, 0.0, 0.5, 0.5)])
    store.flush()
    assert not (tmp_path / "cam1" / "2024030100").exists()
    table = store.read("cam1", T0, T0 + 2 * HOUR_US, labels={"dog"})
    assert _as_rows(table) == [(start + 1, 5, "dog", 0.5, 0.0, 0.0, 0.5, 0.5)]
    assert store.read("cam1", T0, T0 + 2 * HOUR_US).num_rows == len(_rows(range(320), start)) + 1
    store.close()


def test_track_store_failed_write_loses_nothing(tmp_path: Path) -> None:
    store = TrackStore(tmp_path, background=False)
    _append_frames(store, range(1, 50), T0)
    _append_frames(store, range(1, 5), T0 + 3 * HOUR_US)  # hour 0 complete: compact it
    store.append("cam2", T0, _frame(1))
    blocker = tmp_path / "cam1" / "2024030100.parquet.tmp"
    blocker.mkdir(parents=True)  # the temporary file cannot be written
    with pytest.raises(IsADirectoryError):
        store.flush()
    assert any((tmp_path / "cam2" / "2024030100").glob("*.parquet"))  # other cameras went on
    assert _as_rows(store.read("cam1", T0, T0 + HOUR_US)) == _rows(range(1, 50), T0)
    blocker.rmdir()
    store.close()
    assert sorted(p.name for p in (tmp_path / "cam1").iterdir()) == [
        "2024030100.parquet",
        "2024030103.parquet",
    ]
    reopened = TrackStore(tmp_path, background=False)
    assert _as_rows(reopened.read("cam1", T0, T0 + 4 * HOUR_US)) == _rows(range(1, 50), T0) + _rows(
        range(1, 5), T0 + 3 * HOUR_US
    )
    reopened.close()


def test_track_store_retention_and_bad_input(tmp_path: Path) -> None:
    store = TrackStore(tmp_path, background=False)
    for hour in range(3):
        _append_frames(store, range(1, 6), T0 + hour * HOUR_US)
    store.flush()
    assert store.delete_before("cam1", T0 + 2 * HOUR_US) == 2
    assert _as_rows(store.read("cam1", T0, T0 + 3 * HOUR_US)) == _rows(
        range(1, 6), T0 + 2 * HOUR_US
    )
    with pytest.raises(ValueError, match="camera id"):
        store.append("../etc", T0, _frame(1))
    with pytest.raises(ValueError, match="camera id"):
        store.read("a/b", T0, T0 + S)
    with pytest.raises(ValueError):
        store.append("cam1", T0 + 2 * HOUR_US + 7, [Box(1, "person", "high", 0, 0, 1, 1)])  # type: ignore[arg-type]
    store.close()
    assert _as_rows(TrackStore(tmp_path, background=False).read("cam1", T0, T0 + 3 * HOUR_US)) == (
        _rows(range(1, 6), T0 + 2 * HOUR_US)
    )
