"""Motion grids on disk, laid out so that area search over a month reads fast.

Layout: ``<root>/<camera_id>/<YYYYMMDDHH>.motion``, one file per camera and UTC hour. A file
is a 16-byte header (magic ``VGMOTN01``, grid columns and rows as little-endian u16, zero
padding) followed by fixed-size records: ``ts_us`` (int64, little-endian) and the packed grid
(``ceil(cols*rows/8)`` bytes, 72 for 32x18). Only frames with motion are stored, in arrival
order. Fixed-size records make a torn last record (a crash mid-write) harmless: readers use
whole records only, and the writer cuts the torn tail off before it appends again.

Search maps the files read-only (numpy memmap), ANDs each record's grid with the region's
cells 64 bits at a time (only the words the region touches), and merges hits into ranges.

Appends only copy bytes into memory under a short lock; a background thread writes them and
fsyncs every ``flush_interval_s`` (and ``flush()`` does the same at once), so the analysis
thread never waits for the disk.
"""

from __future__ import annotations

import logging
import mmap
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from server.config import CAMERA_ID
from server.protocol.files import fsync_dir

log = logging.getLogger(__name__)

HOUR_US = 3_600_000_000
MAGIC = b"VGMOTN01"
HEADER_SIZE = 16
SUFFIX = ".motion"
_NAME_LEN = len("YYYYMMDDHH")
_MAP_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # Linux


class MotionStoreError(ValueError):
    """Stored data does not fit this store (another grid size) or a request is malformed."""


def check_camera_id(camera_id: str) -> str:
    """Camera ids become directory names: only the config's safe alphabet gets through."""
    if not isinstance(camera_id, str) or not CAMERA_ID.fullmatch(camera_id):
        raise ValueError(f"camera id {camera_id!r} must match {CAMERA_ID.pattern}")
    return camera_id


def hour_name(hour: int) -> str:
    """``YYYYMMDDHH`` of the UTC hour ``hour`` (hours since the epoch)."""
    return datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y%m%d%H")


def parse_hour_name(name: str) -> int | None:
    """Hours since the epoch from ``YYYYMMDDHH``, or None when the name is not one."""
    if len(name) != _NAME_LEN or not name.isdigit():
        return None
    try:
        moment = datetime.strptime(name, "%Y%m%d%H").replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(moment.timestamp()) // 3600


def region_mask(region: tuple[float, float, float, float], cols: int = 32, rows: int = 18) -> bytes:
    """Packed grid of the cells a normalised rectangle (x1, y1, x2, y2) overlaps."""
    x1, y1, x2, y2 = (float(v) for v in region)
    if not (0.0 <= x1 < x2 <= 1.0 and 0.0 <= y1 < y2 <= 1.0):
        raise MotionStoreError(
            f"region {region!r} must be x1 < x2 and y1 < y2, all within 0..1 (normalised)"
        )
    cells = np.zeros((rows, cols), np.bool_)
    c0, c1 = int(x1 * cols), min(cols, int(np.ceil(x2 * cols)))
    r0, r1 = int(y1 * rows), min(rows, int(np.ceil(y2 * rows)))
    cells[r0:r1, c0:c1] = True
    return np.packbits(cells).tobytes()


@dataclass
class _OpenFile:
    hour: int
    fd: int
    path: Path
    dirty: bool = False  # written since the last fsync


class MotionStore:
    """Append-only hourly files of motion grids per camera, searchable by area and time."""

    def __init__(
        self, root: Path, cols: int = 32, rows: int = 18, flush_interval_s: float | None = 2.0
    ) -> None:
        if cols < 1 or rows < 1 or cols > 0xFFFF or rows > 0xFFFF:
            raise ValueError(f"bad motion grid size {cols}x{rows}")
        self.root = Path(root)
        self.cols = cols
        self.rows = rows
        self.grid_bytes = (cols * rows + 7) // 8
        self.record_size = 8 + self.grid_bytes
        self._header = (MAGIC + cols.to_bytes(2, "little") + rows.to_bytes(2, "little")).ljust(
            HEADER_SIZE, b"\0"
        )
        words = (self.grid_bytes + 7) // 8
        # Search reads the grid as u64 words; a grid that is not a whole number of words is
        # read as bytes instead (slower, still correct).
        self._by_words = self.grid_bytes % 8 == 0
        self._dtype = np.dtype(
            [("ts_us", "<i8"), ("grid", "<u8", (words,))]
            if self._by_words
            else [("ts_us", "<i8"), ("grid", "u1", (self.grid_bytes,))]
        )
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # pending buffers: held for microseconds
        self._io_lock = threading.Lock()  # files: writes, fsync, deletion
        self._pending: dict[str, dict[int, bytearray]] = {}
        self._open: dict[str, _OpenFile] = {}
        self._unsynced: list[_OpenFile] = []  # closed for writing, fsync pending
        self._new_dirs: set[Path] = set()  # directories with new entries, fsync pending
        self._known_ids: set[str] = set()
        self._closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if flush_interval_s:
            self._thread = threading.Thread(
                target=self._run, args=(flush_interval_s,), name="motion-store", daemon=True
            )
            self._thread.start()

    # -- writing --------------------------------------------------------------------------

    def append(self, camera_id: str, ts_us: int, grid: bytes) -> None:
        """Queue one analysed frame's grid; grids without any cell set are not stored."""
        if camera_id not in self._known_ids:
            self._known_ids.add(check_camera_id(camera_id))
        if len(grid) != self.grid_bytes:
            raise MotionStoreError(
                f"grid has {len(grid)} bytes; a {self.cols}x{self.rows} grid has {self.grid_bytes}"
            )
        if not any(grid):
            return
        ts_us = int(ts_us)
        record = ts_us.to_bytes(8, "little", signed=True) + grid
        hour = ts_us // HOUR_US
        with self._lock:
            if self._closed:
                raise RuntimeError("motion store is closed")
            per_hour = self._pending.setdefault(camera_id, {})
            buf = per_hour.get(hour)
            if buf is None:
                per_hour[hour] = bytearray(record)
            else:
                buf += record

    def flush(self) -> None:
        """Write everything appended so far and make it durable (fsync files and directories)."""
        with self._io_lock:
            self._write_pending(None)
            for f in self._unsynced:
                os.fsync(f.fd)
                os.close(f.fd)
            self._unsynced.clear()
            for f in self._open.values():
                if f.dirty:
                    os.fsync(f.fd)
                    f.dirty = False
            for d in self._new_dirs:
                fsync_dir(d)
            self._new_dirs.clear()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.flush()
        finally:
            with self._io_lock:
                for f in [*self._open.values(), *self._unsynced]:
                    os.close(f.fd)
                self._open.clear()
                self._unsynced.clear()

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.flush()
            except Exception:  # the writer thread must outlive any one failure
                log.exception("writing motion grids under %s failed; will retry", self.root)

    def _write_pending(self, camera_id: str | None) -> None:
        """Move queued records to their files (no fsync); caller holds the I/O lock."""
        with self._lock:
            if camera_id is None:
                batch, self._pending = self._pending, {}
            else:
                one = self._pending.pop(camera_id, None)
                batch = {camera_id: one} if one else {}
        failure: OSError | None = None
        for cam, per_hour in batch.items():
            for hour in sorted(per_hour):
                data = per_hour.pop(hour)
                written = 0
                f = None
                try:
                    f = self._file_for(cam, hour)
                    f.dirty = True
                    view = memoryview(data)
                    while written < len(data):
                        written += os.write(f.fd, view[written:])
                except OSError as e:
                    # Keep what did not reach the file, from the last whole record on; the
                    # file is reopened (and its torn tail cut) before the next write.
                    if f is not None:
                        self._forget(cam, f)
                    per_hour[hour] = data[written - written % self.record_size :]
                    self._requeue(cam, per_hour)
                    failure = failure or e
                    break  # this camera's later hours wait too; other cameras go on
        if failure is not None:
            raise failure

    def _requeue(self, camera_id: str, per_hour: dict[int, bytearray]) -> None:
        with self._lock:
            pending = self._pending.setdefault(camera_id, {})
            for hour, data in per_hour.items():
                pending[hour] = data + pending.get(hour, b"")

    def _forget(self, camera_id: str, f: _OpenFile) -> None:
        if self._open.get(camera_id) is f:
            del self._open[camera_id]
        if f in self._unsynced:
            self._unsynced.remove(f)
        os.close(f.fd)

    def _file_for(self, camera_id: str, hour: int) -> _OpenFile:
        """The camera's file for ``hour``, opened for appending (the newest hour stays open)."""
        current = self._open.get(camera_id)
        if current is not None and current.hour == hour:
            return current
        cam_dir = self.root / camera_id
        if not cam_dir.is_dir():
            cam_dir.mkdir(parents=True, exist_ok=True)
            self._new_dirs.add(self.root)
        path = cam_dir / f"{hour_name(hour)}{SUFFIX}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            self._prepare_for_append(fd, path)
        except BaseException:
            os.close(fd)
            raise
        opened = _OpenFile(hour, fd, path)
        self._new_dirs.add(cam_dir)
        if current is None or hour > current.hour:
            if current is not None:
                self._unsynced.append(current)  # fsynced and closed by the next flush()
            self._open[camera_id] = opened
        else:  # a late record for an older hour
            self._unsynced.append(opened)
        return opened

    def _prepare_for_append(self, fd: int, path: Path) -> None:
        size = os.fstat(fd).st_size
        if size < HEADER_SIZE:
            if size:
                log.warning("%s: torn header (%d bytes), starting the file again", path, size)
                os.ftruncate(fd, 0)
            os.write(fd, self._header)
            return
        self._check_header(path, os.pread(fd, HEADER_SIZE, 0))
        torn = (size - HEADER_SIZE) % self.record_size
        if torn:
            log.warning("%s: dropping a torn last record (%d bytes)", path, torn)
            os.ftruncate(fd, size - torn)

    def _check_header(self, path: Path, header: bytes) -> None:
        if header[:8] != MAGIC:
            raise MotionStoreError(f"{path} is not a motion grid file (bad magic {header[:8]!r})")
        if header != self._header:
            cols = int.from_bytes(header[8:10], "little")
            rows = int.from_bytes(header[10:12], "little")
            raise MotionStoreError(
                f"{path} holds {cols}x{rows} grids; this store is {self.cols}x{self.rows}. "
                "Open the store with the grid size the data was written with."
            )

    # -- reading --------------------------------------------------------------------------

    def hours(self, camera_id: str) -> list[int]:
        """Hours (since the epoch) with a motion file for the camera, oldest first."""
        cam_dir = self.root / check_camera_id(camera_id)
        found: list[int] = []
        try:
            entries = list(os.scandir(cam_dir))
        except FileNotFoundError:
            return found
        for entry in entries:
            if entry.name.endswith(SUFFIX):
                hour = parse_hour_name(entry.name[: -len(SUFFIX)])
                if hour is not None:
                    found.append(hour)
        return sorted(found)

    def search(
        self,
        camera_id: str,
        start_us: int,
        end_us: int,
        region: tuple[float, float, float, float],
        merge_gap_us: int = 1_000_000,
    ) -> list[tuple[int, int]]:
        """Time ranges in [start_us, end_us) with motion in a cell the region overlaps.

        Ranges are half-open ``(first_hit_us, last_hit_us + 1)``: they hold exactly the frames
        with motion there (the slack is 1 µs), and hits at most ``merge_gap_us`` apart join
        into one range. Callers pad them for playback as they see fit.
        """
        return self.search_cells(
            camera_id, start_us, end_us, region_mask(region, self.cols, self.rows), merge_gap_us
        )

    def search_cells(
        self, camera_id: str, start_us: int, end_us: int, mask: bytes, merge_gap_us: int = 1_000_000
    ) -> list[tuple[int, int]]:
        """As ``search``, for any set of cells given as a packed grid (``region_mask`` order)."""
        check_camera_id(camera_id)
        if len(mask) != self.grid_bytes:
            raise MotionStoreError(f"cell mask has {len(mask)} bytes, expected {self.grid_bytes}")
        if end_us <= start_us or merge_gap_us < 0:
            return []
        hits = self._hits(camera_id, start_us, end_us, mask)
        if hits.size == 0:
            return []
        if hits.size > 1 and np.any(hits[1:] < hits[:-1]):
            hits.sort()
        breaks = np.flatnonzero(np.diff(hits) > merge_gap_us)
        firsts = hits[np.concatenate(([0], breaks + 1))].tolist()
        ends = (hits[np.concatenate((breaks, [hits.size - 1]))] + 1).tolist()
        return list(zip(firsts, ends, strict=True))

    def _hits(self, camera_id: str, start_us: int, end_us: int, mask: bytes) -> np.ndarray:
        """Timestamps of the records in the window whose grid meets the mask."""
        with self._io_lock:  # what was appended before the search is on disk when it reads
            self._write_pending(camera_id)
        mask_words = np.frombuffer(mask, "<u8" if self._by_words else np.uint8)
        used = [(int(k), mask_words[k]) for k in np.flatnonzero(mask_words)]
        if not used:
            return np.empty(0, np.int64)
        first_name = hour_name(start_us // HOUR_US) + SUFFIX
        last_name = hour_name((end_us - 1) // HOUR_US) + SUFFIX
        cam_dir = os.path.join(self.root, camera_id)
        try:
            names = os.listdir(cam_dir)
        except FileNotFoundError:
            return np.empty(0, np.int64)
        # YYYYMMDDHH names sort in time order: the window is a range of names.
        names = sorted(
            n for n in names if first_name <= n <= last_name and len(n) == len(first_name)
        )
        parts: list[np.ndarray] = []
        for name in names:
            records = self._map(os.path.join(cam_dir, name))
            if records is None:
                continue
            grid = records["grid"]
            k, word = used[0]
            hit = (grid[:, k] & word) != 0
            for k, word in used[1:]:
                hit |= (grid[:, k] & word) != 0
            ts = records["ts_us"]
            if name in (first_name, last_name):
                hit &= (ts >= start_us) & (ts < end_us)
            parts.append(ts[hit])  # a copy: the mapping is released with ``records``
        return np.concatenate(parts) if parts else np.empty(0, np.int64)

    def _map(self, path: str) -> np.ndarray | None:
        """The file's whole records, mapped read-only (a torn tail is not a record)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:  # removed by retention meanwhile
            return None
        try:
            size = os.fstat(fd).st_size
            count = (size - HEADER_SIZE) // self.record_size
            if count <= 0:
                return None
            self._check_header(Path(path), os.pread(fd, HEADER_SIZE, 0))
            length = HEADER_SIZE + count * self.record_size
            if _MAP_POPULATE:  # one call faults the pages in, instead of one fault per page
                mapped = mmap.mmap(
                    fd, length, flags=mmap.MAP_SHARED | _MAP_POPULATE, prot=mmap.PROT_READ
                )
            else:
                mapped = mmap.mmap(fd, length, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        return np.frombuffer(mapped, self._dtype, count=count, offset=HEADER_SIZE)

    # -- retention ------------------------------------------------------------------------

    def delete_before(self, camera_id: str, ts_us: int) -> int:
        """Remove the camera's hour files that end at or before ``ts_us``; returns how many."""
        check_camera_id(camera_id)
        cut_hour = ts_us // HOUR_US  # hours < cut_hour end at or before ts_us
        removed = 0
        with self._io_lock:
            self._write_pending(camera_id)
            current = self._open.get(camera_id)
            if current is not None and current.hour < cut_hour:
                os.close(current.fd)
                del self._open[camera_id]
            for f in [f for f in self._unsynced if f.path.parent.name == camera_id]:
                if f.hour < cut_hour:
                    os.close(f.fd)
                    self._unsynced.remove(f)
            cam_dir = self.root / camera_id
            for hour in self.hours(camera_id):
                if hour < cut_hour:
                    (cam_dir / f"{hour_name(hour)}{SUFFIX}").unlink(missing_ok=True)
                    removed += 1
            if removed:
                fsync_dir(cam_dir)
        return removed
