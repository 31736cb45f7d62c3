"""Start-up recovery and ``vigia-server check``: make the catalog and the files agree.

After a crash the catalog may hold open rows whose ``.part`` files have more (or, after a
power cut, fewer) complete fragments than the row says. The file is the truth for what was
recorded: each ``.part`` is cut back to its last complete fragment, finalised, and its row
rebuilt from the file. Nothing recorded is deleted: a file the catalog does not know is moved
to ``lost+found`` rather than removed.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from server.catalog import Catalog, SegmentRow
from server.catalog.exports import INTERRUPTED_EXPORT, ExportStore
from server.datadir import DataDir
from server.protocol.files import fsync_dir, makedirs_durable, rename_durable, unlink_durable
from server.protocol.fragindex import decode_fragment_index, encode_fragment_index
from server.recording.mp4boxes import SegmentScan, scan_segment_bytes
from server.recording.segmenter import PART_SUFFIX
from server.recording.timing import fragment_durations_us, ticks_to_us

log = logging.getLogger(__name__)


@dataclass
class Problem:
    kind: str  # stable identifier: 'open-segment', 'orphan-part', 'missing-file', ...
    path: str
    detail: str
    repaired: bool = False

    def __str__(self) -> str:
        state = " (repaired)" if self.repaired else ""
        return f"{self.kind}: {self.path}: {self.detail}{state}"


@dataclass
class CheckReport:
    problems: list[Problem] = field(default_factory=list)
    segments_checked: int = 0

    def add(self, kind: str, path: str, detail: str, repaired: bool) -> None:
        p = Problem(kind, path, detail, repaired)
        self.problems.append(p)
        (log.info if repaired else log.warning)("%s", p)


def row_from_scan(row: SegmentRow, scan: SegmentScan) -> SegmentRow:
    """The row as the file says it should be (times from the row's start, no drift fix)."""
    if not scan.fragments:
        raise ValueError("no complete fragment")
    base = scan.fragments[0].base_time
    bounds = [f.base_time - base for f in scan.fragments]
    bounds.append(bounds[-1] + scan.fragments[-1].duration)
    durations = fragment_durations_us(bounds, scan.timescale)
    return replace(
        row,
        end_us=row.start_us + sum(durations),
        media_duration_us=ticks_to_us(bounds[-1], scan.timescale),
        bytes=scan.complete_end,
        frames=sum(f.samples for f in scan.fragments),
        fragment_index=encode_fragment_index(
            scan.init_bytes, zip((f.bytes for f in scan.fragments), durations, strict=True)
        ),
        state="closed",
    )


def _finalise_part(catalog: Catalog, data: DataDir, row: SegmentRow, part: Path) -> str:
    """Cut ``part`` to its last complete fragment, rename it, close the row. Returns a summary."""
    scan = scan_segment_bytes(part.read_bytes())
    if not scan.fragments:
        part.unlink()
        fsync_dir(part.parent)
        catalog.delete_segment(row.id)
        return "no complete fragment; removed"
    cut = scan.file_bytes - scan.complete_end
    if cut:
        os.truncate(part, scan.complete_end)
    with part.open("rb+") as f:
        os.fsync(f.fileno())
    new = row_from_scan(row, scan)
    rename_durable(part, data.root / row.path)
    _update(catalog, new)
    return f"kept {len(scan.fragments)} fragments, cut {cut} bytes"


def _update(catalog: Catalog, row: SegmentRow) -> None:
    catalog.update_segment(
        row.id,
        start_us=row.start_us,
        end_us=row.end_us,
        media_duration_us=row.media_duration_us,
        bytes_=row.bytes,
        frames=row.frames,
        fragment_index=row.fragment_index,
        state=row.state,
    )


def _to_lost_found(data: DataDir, path: Path) -> Path:
    rel = path.relative_to(data.root)
    dst = data.lost_found / rel
    makedirs_durable(dst.parent)
    shutil.move(path, dst)
    fsync_dir(path.parent)
    return dst


def collect_garbage(catalog: Catalog, data: DataDir) -> int:
    """Unlink files whose rows were already removed (deletion is row first, then file)."""
    paths = catalog.garbage()
    if paths:
        unlink_durable([data.root / p for p in paths])
        catalog.drop_garbage(paths)
    return len(paths)


def check(catalog: Catalog, data: DataDir, *, repair: bool) -> CheckReport:
    """Reconcile catalog and files. Must run with the data dir locked (recorder not running)."""
    report = CheckReport()
    rows = catalog.segments()
    known = {r.path for r in rows}
    for row in rows:
        _check_row(catalog, data, row, report, repair)
    _check_files(catalog, data, data.recordings.rglob("*"), known, report, repair)
    _check_garbage(catalog, data, report, repair)
    _check_exports(catalog, data, report, repair)
    for problem in _overlaps(catalog):
        report.problems.append(problem)
    return report


def _check_row(
    catalog: Catalog, data: DataDir, row: SegmentRow, report: CheckReport, repair: bool
) -> None:
    report.segments_checked += 1
    final = data.root / row.path
    part = final.with_name(final.name + PART_SUFFIX)
    if row.state == "open":
        if part.exists():
            detail = "segment left open (recorder stopped without closing it)"
            if repair:
                detail += ": " + _finalise_part(catalog, data, row, part)
            report.add("open-segment", row.path + PART_SUFFIX, detail, repair)
            return
        if not final.exists():
            report.add("missing-file", row.path, "open row without a file", repair)
            if repair:
                catalog.delete_segment(row.id)
            return
        # crashed between rename and row update: the final file is complete
    if not final.exists():
        report.add("missing-file", row.path, "catalog row without a file", repair)
        if repair:
            catalog.delete_segment(row.id)
        return
    size = final.stat().st_size
    if row.state == "closed" and size == row.bytes and _index_consistent(row):
        return
    scan = scan_segment_bytes(final.read_bytes())
    if not scan.fragments:
        report.add("unreadable", row.path, "; ".join(scan.problems) or "no fragment", repair)
        if repair:
            catalog.delete_segment(row.id)
            _to_lost_found(data, final)
        return
    fixed = row_from_scan(row, scan)
    report.add(
        "index-mismatch",
        row.path,
        f"catalog says {row.bytes} bytes/{row.state}, file has {size} bytes "
        f"({len(scan.fragments)} fragments)",
        repair,
    )
    if repair:
        if scan.complete_end < size:
            os.truncate(final, scan.complete_end)
        _update(catalog, fixed)


def _check_files(
    catalog: Catalog,
    data: DataDir,
    paths: Iterable[Path],
    known: set[str],
    report: CheckReport,
    repair: bool,
) -> None:
    """Files the catalog does not know: ``.part`` files of no open row, stray files."""
    for path in sorted(paths):
        if not path.is_file():
            continue
        rel = str(path.relative_to(data.root))
        if path.name.endswith(PART_SUFFIX):
            if rel.removesuffix(PART_SUFFIX) in known:
                continue  # handled with its row
            report.add("orphan-part", rel, "partial file without a catalog row", repair)
        elif rel in known:
            continue
        else:
            report.add("orphan-file", rel, "file without a catalog row", repair)
        if repair:
            dst = _to_lost_found(data, path)
            log.info("moved %s to %s", rel, dst)


def _check_garbage(catalog: Catalog, data: DataDir, report: CheckReport, repair: bool) -> None:
    pending = catalog.garbage()
    if pending:
        report.add("garbage", f"{len(pending)} files", "deleted rows with files left", repair)
        if repair:
            collect_garbage(catalog, data)


def _check_exports(catalog: Catalog, data: DataDir, report: CheckReport, repair: bool) -> None:
    """Export jobs against ``exports/``: cut short (running while nothing runs), files gone,
    directories of no job, temp files left."""
    store = ExportStore(catalog)
    root = data.root / "exports"
    rows = {r.id: r for r in store.all()}
    for row in rows.values():
        rel = f"exports/{row.id}"
        if row.state in ("queued", "running"):
            report.add("interrupted-export", rel, f"export left {row.state}", repair)
            if repair and row.state == "running":
                shutil.rmtree(root / row.id, ignore_errors=True)
                store.update(row.id, "failed", error=INTERRUPTED_EXPORT, finished_us=row.created_us)
        elif row.state == "done" and not (root / row.id).is_dir():
            report.add("missing-export", rel, "finished export without its files", repair)
            if repair:
                store.update(row.id, "failed", error="files missing", finished_us=row.finished_us)
    if not root.is_dir():
        return
    for path in sorted(root.iterdir()):
        rel = str(path.relative_to(data.root))
        if path.name not in rows:
            report.add("orphan-export", rel, "export directory without a job", repair)
            if repair:
                _to_lost_found(data, path)
            continue
        for tmp in path.glob(".*.tmp"):
            report.add("export-temp", str(tmp.relative_to(data.root)), "temp file left", repair)
            if repair:
                tmp.unlink(missing_ok=True)


def _index_consistent(row: SegmentRow) -> bool:
    try:
        init, frags = decode_fragment_index(row.fragment_index, row.start_us)
    except ValueError:
        return False
    end_bytes = frags[-1].offset + frags[-1].bytes if frags else init
    end_us = frags[-1].end_us if frags else row.start_us
    return end_bytes == row.bytes and end_us == row.end_us and bool(frags)


def _overlaps(catalog: Catalog) -> list[Problem]:
    out = []
    last: dict[int, SegmentRow] = {}
    for row in catalog.segments():
        prev = last.get(row.stream_id)
        if prev is not None and row.start_us < prev.end_us:
            out.append(
                Problem(
                    "overlap",
                    row.path,
                    f"starts {prev.end_us - row.start_us} µs before {prev.path} ends",
                )
            )
        if prev is None or row.end_us > prev.end_us:
            last[row.stream_id] = row
    return out


def recover(catalog: Catalog, data: DataDir) -> CheckReport:
    """Start-up recovery: what a crash can leave, and only that, so a restart stays quick with
    millions of segments (the full reconciliation is ``vigia-server check``): open rows and
    their files, each stream's newest segment, ``.part`` files in each stream's newest day
    directory, pending garbage, and runs left open."""
    report = CheckReport()
    rows = catalog.segments(state="open")
    for stream in catalog.streams():
        newest = catalog.newest_segment(stream.id)
        if newest is not None and newest.state == "closed":
            rows.append(newest)
    for row in rows:
        _check_row(catalog, data, row, report, repair=True)
    known = {r.path for r in rows}
    _check_files(catalog, data, _recent_parts(data), known, report, repair=True)
    _check_garbage(catalog, data, report, repair=True)
    with catalog.transaction() as c:
        c.execute(
            "UPDATE runs SET ended_us = max(started_us, coalesce((SELECT max(end_us) FROM"
            " segments WHERE run_id = runs.id), started_us)), end_reason = ?"
            " WHERE ended_us IS NULL",
            ("recorder stopped unexpectedly",),
        )
    return report


def _recent_parts(data: DataDir) -> list[Path]:
    """``.part`` files in the newest ``YYYY/MM/DD`` directory of every stream: where a segment
    being created at the time of a crash can be (a few small directory listings)."""
    out: list[Path] = []
    if not data.recordings.is_dir():
        return out
    for stream_dir in (
        s for cam in data.recordings.iterdir() if cam.is_dir() for s in cam.iterdir() if s.is_dir()
    ):
        day = stream_dir
        for _ in range(3):  # year, month, day: the largest name is the newest
            subdirs = [d for d in day.iterdir() if d.is_dir() and d.name.isdigit()]
            if not subdirs:
                break
            day = max(subdirs, key=lambda d: d.name)
        else:
            out += day.glob("*" + PART_SUFFIX)
    return out
