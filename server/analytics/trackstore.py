"""Tracked boxes of every analysed frame, in hourly Parquet files per camera.

Layout under ``root``::

    <camera_id>/<YYYYMMDDHH>.parquet            the complete hour, sorted by ts_us
    <camera_id>/<YYYYMMDDHH>/<ts>-<rand>.parquet chunks of an hour still being written

Parquet files cannot be appended to, so rows are buffered in memory and written as a small
chunk file every ``flush_interval_us`` of stream time (and on ``flush()``). When a later hour
shows up (or on ``close()``) the hour's chunks are compacted into the hourly file and removed.
Every file is written under a temporary name, fsynced, renamed and its directory fsynced.

The rule that keeps a crash from losing or doubling rows: **once the hourly file exists, chunks
of that hour are leftovers already inside it**. Readers ignore them, start-up deletes them,
and rows that arrive late for a compacted hour are merged into a rewritten hourly file instead
of a new chunk. Start-up also redoes the compaction of every hour older than the camera's
newest one, so an interrupted compaction is finished.

Writes happen on a background thread; ``append`` only copies values into lists.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from server.analytics.motionstore import HOUR_US, check_camera_id, hour_name, parse_hour_name
from server.protocol.files import fsync_dir

log = logging.getLogger(__name__)

TRACK_SCHEMA = pa.schema(
    [
        pa.field("ts_us", pa.int64(), nullable=False),  # frame time, µs since the epoch, UTC
        pa.field("track_id", pa.int64(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("score", pa.float32(), nullable=False),
        # Box normalised to 0..1 of the frame, x right, y down.
        pa.field("x1", pa.float32(), nullable=False),
        pa.field("y1", pa.float32(), nullable=False),
        pa.field("x2", pa.float32(), nullable=False),
        pa.field("y2", pa.float32(), nullable=False),
    ]
)
_COLUMNS = TRACK_SCHEMA.names
_ORDER = [("ts_us", "ascending"), ("track_id", "ascending")]
SUFFIX = ".parquet"
TMP_SUFFIX = ".tmp"
COMPRESSION = "zstd"


class TrackLike(Protocol):
    """What is read from a tracker's ``Track`` (server/analytics/tracker.py)."""

    track_id: int
    label: str
    score: float
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass
class _Rows:
    """Column-wise buffer of one camera-hour."""

    cols: dict[str, list] = field(default_factory=lambda: {name: [] for name in _COLUMNS})

    def __len__(self) -> int:
        return len(self.cols["ts_us"])

    def extend(self, values: dict[str, list]) -> None:
        for name in _COLUMNS:
            self.cols[name].extend(values[name])

    def table(self) -> pa.Table:
        return pa.table(self.cols, schema=TRACK_SCHEMA)


@dataclass
class _Camera:
    rows: dict[int, _Rows] = field(default_factory=dict)  # hour -> rows not yet on disk
    latest_hour: int | None = None  # newest hour seen (appended or found on disk)
    complete: set[int] = field(default_factory=set)  # hours to compact
    first_buffered_us: int | None = None


def _write_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(path.name + TMP_SUFFIX)
    with open(tmp, "wb") as f:
        pq.write_table(table, f, compression=COMPRESSION)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def check_safe(name: str) -> bool:
    """Directory names that are not camera ids (stray files, lost+found) are left alone."""
    try:
        check_camera_id(name)
    except ValueError:
        return False
    return True


class TrackStore:
    """Crash-safe hourly Parquet files of tracked boxes, per camera."""

    def __init__(
        self, root: Path, flush_interval_us: int = 10_000_000, background: bool = True
    ) -> None:
        if flush_interval_us <= 0:
            raise ValueError(f"flush_interval_us must be positive, got {flush_interval_us}")
        self.root = Path(root)
        self.flush_interval_us = flush_interval_us
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # buffers: held for microseconds
        self._io_lock = threading.Lock()  # files
        self._cameras: dict[str, _Camera] = {}
        self._closed = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        with self._io_lock:
            self._recover()
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, name="track-store", daemon=True)
            self._thread.start()

    # -- writing --------------------------------------------------------------------------

    def append(self, camera_id: str, ts_us: int, tracks: Sequence[TrackLike]) -> None:
        """Buffer one analysed frame's tracks (a frame without tracks stores nothing)."""
        if camera_id not in self._cameras:
            check_camera_id(camera_id)
        ts_us = int(ts_us)
        values: dict[str, list] = {name: [] for name in _COLUMNS}
        for t in tracks:  # convert first: a bad value fails here, before anything is buffered
            values["track_id"].append(int(t.track_id))
            values["label"].append(str(t.label))
            values["score"].append(float(t.score))
            values["x1"].append(float(t.x1))
            values["y1"].append(float(t.y1))
            values["x2"].append(float(t.x2))
            values["y2"].append(float(t.y2))
        values["ts_us"] = [ts_us] * len(values["track_id"])
        hour = ts_us // HOUR_US
        wake = False
        with self._lock:
            if self._closed:
                raise RuntimeError("track store is closed")
            cam = self._cameras.get(camera_id)
            if cam is None:
                cam = self._cameras[camera_id] = _Camera()
            if cam.latest_hour is None or hour > cam.latest_hour:
                if cam.latest_hour is not None:
                    cam.complete.add(cam.latest_hour)
                    wake = True
                cam.latest_hour = hour
            elif hour < cam.latest_hour:
                cam.complete.add(hour)  # late rows: merged into that hour's file
            if values["ts_us"]:
                rows = cam.rows.get(hour)
                if rows is None:
                    rows = cam.rows[hour] = _Rows()
                rows.extend(values)
                if cam.first_buffered_us is None:
                    cam.first_buffered_us = ts_us
                elif ts_us - cam.first_buffered_us >= self.flush_interval_us:
                    wake = True
        if wake:
            self._wake.set()

    def flush(self) -> None:
        """Write buffered rows as chunks (compacting finished hours) and make them durable."""
        with self._io_lock:
            self._write(close=False)

    def close(self) -> None:
        """Write everything and compact every hour, so only hourly files remain."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with self._io_lock:
            self._write(close=True)

    def _run(self) -> None:
        interval_s = self.flush_interval_us / 1e6
        while True:
            self._wake.wait(interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.flush()
            except Exception:  # the writer thread must outlive any one failure
                log.exception("writing tracks under %s failed; will retry", self.root)

    def _write(self, close: bool) -> None:
        """Move buffered rows to disk; caller holds the I/O lock."""
        with self._lock:
            batch: list[tuple[str, dict[int, _Rows], set[int], int | None]] = []
            for camera_id, cam in self._cameras.items():
                if cam.rows or cam.complete or close:
                    batch.append((camera_id, cam.rows, cam.complete, cam.latest_hour))
                    cam.rows, cam.complete, cam.first_buffered_us = {}, set(), None
        failure: BaseException | None = None
        for camera_id, rows, complete, latest in batch:
            try:
                hours = set(rows) | complete
                if close and latest is not None:
                    hours.add(latest)
                for hour in sorted(hours):
                    extra = rows.get(hour)
                    if close or hour in complete or hour != latest:
                        self._compact(camera_id, hour, extra)
                    elif extra:
                        self._write_chunk(camera_id, hour, extra)
            except BaseException as e:  # keep this camera's rows; go on with the others
                self._restore(camera_id, rows, complete)
                failure = failure or e
        if failure is not None:
            raise failure
        if close:  # hours left as chunks by an earlier run for cameras not seen this time
            for camera_id, hour in self._chunk_dirs():
                self._compact(camera_id, hour, None)

    def _restore(self, camera_id: str, rows: dict[int, _Rows], complete: set[int]) -> None:
        """Put back rows a failed write did not store (those it stored were popped)."""
        with self._lock:
            cam = self._cameras[camera_id]
            for hour, old in rows.items():
                if not old:
                    continue  # written before the failure
                newer = cam.rows.get(hour)
                if newer is not None:
                    old.extend(newer.cols)
                cam.rows[hour] = old
            cam.complete |= complete

    def _write_chunk(self, camera_id: str, hour: int, rows: _Rows) -> None:
        if self._hour_file(camera_id, hour).exists():
            self._compact(camera_id, hour, rows)  # never a chunk beside a finished hour
            return
        chunk_dir = self.root / camera_id / hour_name(hour)
        if not chunk_dir.is_dir():
            chunk_dir.mkdir(parents=True)
            fsync_dir(chunk_dir.parent)
        first = rows.cols["ts_us"][0]
        _write_atomic(rows.table(), chunk_dir / f"{first:020d}-{os.urandom(4).hex()}{SUFFIX}")
        rows.cols = {name: [] for name in _COLUMNS}  # stored: not to be restored on error

    def _compact(self, camera_id: str, hour: int, rows: _Rows | None) -> None:
        """Make the hour's file hold everything of the hour, then drop its chunks."""
        hour_file = self._hour_file(camera_id, hour)
        chunk_dir = self.root / camera_id / hour_name(hour)
        has_file = hour_file.exists()
        if rows or not has_file:  # else: nothing new, and chunks are leftovers inside the file
            parts: list[pa.Table] = []
            if has_file:
                parts.append(pq.read_table(hour_file, schema=TRACK_SCHEMA))
            elif chunk_dir.is_dir():
                chunks = sorted(chunk_dir.glob("*" + SUFFIX))
                parts.extend(pq.read_table(p, schema=TRACK_SCHEMA) for p in chunks)
            if rows:
                parts.append(rows.table())
            if sum(len(p) for p in parts):
                hour_file.parent.mkdir(parents=True, exist_ok=True)
                _write_atomic(pa.concat_tables(parts).sort_by(_ORDER), hour_file)
        if rows:
            rows.cols = {name: [] for name in _COLUMNS}
        if chunk_dir.is_dir():
            shutil.rmtree(chunk_dir)
            fsync_dir(chunk_dir.parent)

    def _hour_file(self, camera_id: str, hour: int) -> Path:
        return self.root / camera_id / f"{hour_name(hour)}{SUFFIX}"

    # -- start-up -------------------------------------------------------------------------

    def _recover(self) -> None:
        """Finish what a crash interrupted: temp files, duplicate chunks, compactions."""
        for cam_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if not check_safe(cam_dir.name):
                continue
            for tmp in list(cam_dir.glob("*" + TMP_SUFFIX)) + list(
                cam_dir.glob("*/*" + TMP_SUFFIX)
            ):
                log.info("removing %s left by an interrupted write", tmp)
                tmp.unlink()
            hours = self._hours(cam_dir.name)
            if not hours:
                continue
            newest = max(hours)
            for hour, (has_file, has_chunks) in sorted(hours.items()):
                if has_chunks and (has_file or hour < newest):
                    self._compact(cam_dir.name, hour, None)
            self._cameras[cam_dir.name] = _Camera(latest_hour=newest)

    def _hours(self, camera_id: str) -> dict[int, tuple[bool, bool]]:
        """hour -> (hourly file exists, chunk directory exists) for one camera."""
        found: dict[int, tuple[bool, bool]] = {}
        try:
            entries = list(os.scandir(self.root / camera_id))
        except FileNotFoundError:
            return found
        for entry in entries:
            if entry.is_dir():
                hour = parse_hour_name(entry.name)
                if hour is not None:
                    found[hour] = (found.get(hour, (False, False))[0], True)
            elif entry.name.endswith(SUFFIX):
                hour = parse_hour_name(entry.name[: -len(SUFFIX)])
                if hour is not None:
                    found[hour] = (True, found.get(hour, (False, False))[1])
        return found

    def _chunk_dirs(self) -> list[tuple[str, int]]:
        out = []
        for cam_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if check_safe(cam_dir.name):
                out += [(cam_dir.name, h) for h, (_, c) in self._hours(cam_dir.name).items() if c]
        return out

    # -- reading --------------------------------------------------------------------------

    def read(
        self,
        camera_id: str,
        start_us: int,
        end_us: int,
        labels: Collection[str] | None = None,
    ) -> pa.Table:
        """Rows with start_us <= ts_us < end_us (optionally of some labels), by ts_us, track_id.

        Includes rows still buffered in memory, so playback sees the last seconds too.
        """
        check_camera_id(camera_id)
        if end_us <= start_us:
            return TRACK_SCHEMA.empty_table()
        label_list = sorted(set(labels)) if labels is not None else None
        if label_list == []:
            return TRACK_SCHEMA.empty_table()
        first_hour, last_hour = start_us // HOUR_US, (end_us - 1) // HOUR_US
        expr = (ds.field("ts_us") >= start_us) & (ds.field("ts_us") < end_us)
        if label_list is not None:
            expr = expr & ds.field("label").isin(label_list)
        parts: list[pa.Table] = []
        with self._io_lock:  # no compaction moves files while they are listed and read
            with self._lock:
                cam = self._cameras.get(camera_id)
                buffered = [
                    rows.table()
                    for hour, rows in (cam.rows.items() if cam else ())
                    if first_hour <= hour <= last_hour and len(rows)
                ]
            files: list[str] = []
            cam_dir = self.root / camera_id
            for hour, (has_file, has_chunks) in sorted(self._hours(camera_id).items()):
                if not first_hour <= hour <= last_hour:
                    continue
                if has_file:  # its chunks, if any, are leftovers already inside it
                    files.append(str(cam_dir / f"{hour_name(hour)}{SUFFIX}"))
                elif has_chunks:
                    files += sorted(str(p) for p in (cam_dir / hour_name(hour)).glob("*" + SUFFIX))
            if files:
                dataset = ds.dataset(files, schema=TRACK_SCHEMA, format="parquet")
                parts.append(dataset.to_table(filter=expr))
        for table in buffered:
            parts.append(table.filter(expr))
        if not parts:
            return TRACK_SCHEMA.empty_table()
        table = pa.concat_tables(parts)
        return table.sort_by(_ORDER)

    # -- retention ------------------------------------------------------------------------

    def delete_before(self, camera_id: str, ts_us: int) -> int:
        """Remove the camera's hours that end at or before ``ts_us``; returns how many."""
        check_camera_id(camera_id)
        cut_hour = ts_us // HOUR_US
        with self._io_lock:
            with self._lock:
                cam = self._cameras.get(camera_id)
                if cam is not None:
                    for hour in [h for h in cam.rows if h < cut_hour]:
                        del cam.rows[hour]
                    cam.complete = {h for h in cam.complete if h >= cut_hour}
            cam_dir = self.root / camera_id
            removed = 0
            for hour, (has_file, has_chunks) in self._hours(camera_id).items():
                if hour >= cut_hour:
                    continue
                if has_file:
                    (cam_dir / f"{hour_name(hour)}{SUFFIX}").unlink()
                if has_chunks:
                    shutil.rmtree(cam_dir / hour_name(hour))
                removed += 1
            if removed:
                fsync_dir(cam_dir)
        return removed
