"""Retention: per-camera age limits and per-volume size and free-space limits.

Oldest whole segments go first, across all cameras of the volume; segments that a locked
bookmark touches are kept. Deletion is crash-safe in Moonfire's order: the rows are moved to
``garbage`` in one transaction, then the files are unlinked and the directories fsynced, then
the garbage rows are dropped. A crash in between leaves garbage rows that the next pass (or
start-up) finishes, never a row pointing at a missing file.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field

from server.catalog import Catalog, SegmentRow
from server.catalog.exports import ExportStore
from server.clock import Clock
from server.datadir import DataDir
from server.protocol.timeutil import US_PER_SECOND
from server.recording.diskspace import StorageGuard
from server.recording.recovery import collect_garbage

log = logging.getLogger(__name__)

DAY_US = 86_400 * US_PER_SECOND


@dataclass(frozen=True)
class VolumeLimits:
    max_bytes: int | None = None
    min_free_bytes: int | None = None


@dataclass
class RetentionReport:
    deleted: list[SegmentRow] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def freed_bytes(self) -> int:
        return sum(s.bytes for s in self.deleted)


def _free_bytes(data: DataDir) -> int:
    return shutil.disk_usage(data.root).free


class Retention:
    def __init__(
        self,
        catalog: Catalog,
        data: DataDir,
        limits: VolumeLimits,
        clock: Clock,
        free_bytes: Callable[[DataDir], int] = _free_bytes,
        guard: StorageGuard | None = None,
    ) -> None:
        self.catalog = catalog
        self.data = data
        self.limits = limits
        self.clock = clock
        self.free_bytes = free_bytes
        self.guard = guard  # the catalog reserve and the volume state (docs/design/recording.md)
        # with an archive, segments without a copy go last, and each one that goes is reported
        # (docs/design/archive.md); set by the service
        self.on_unarchived: Callable[[int], None] | None = None

    def run_guarded(self) -> RetentionReport | None:
        """``run_once`` for the service loop: a failure (disk full, I/O error) is reported in
        the log and the storage state, never raised: the recorder keeps running and the next
        pass retries."""
        try:
            return self.run_once()
        except Exception as exc:
            log.exception("retention pass failed")
            if self.guard is not None:
                self.guard.set_state("error", f"retention failed: {exc}")
            return None

    def run_once(self) -> RetentionReport:
        report = RetentionReport()
        guard = self.guard
        full = guard is not None and guard.is_full()
        if guard is not None and full:
            guard.set_state("full", f"less than {guard.floor_bytes} bytes free")
            guard.release_reserve()  # room for the catalog writes that free the space
        collect_garbage(self.catalog, self.data)
        now = self.clock.now_us()
        for cam in self.catalog.cameras():
            if cam.retention_days is None:
                continue
            cutoff = now - int(cam.retention_days * DAY_US)
            while batch := self.catalog.deletable_segments(before_us=cutoff, camera_id=cam.id):
                self._delete(batch, "retention-days", report)
        if self.limits.max_bytes is not None:
            # finished exports share the volume: their bytes count, video makes room for them
            exports = ExportStore(self.catalog).total_bytes()
            excess = self.catalog.total_bytes() + exports - self.limits.max_bytes
            self._delete_oldest(excess, "volume-bytes", report)
        if self.limits.min_free_bytes is not None:
            need = self.limits.min_free_bytes - self.free_bytes(self.data)
            self._delete_oldest(need, "min-free", report)
        if guard is not None:
            self._keep_floor(guard, report)
        if report.deleted:
            log.info(
                "retention deleted %d segments (%d bytes): %s",
                len(report.deleted), report.freed_bytes, report.reasons,
            )  # fmt: skip
        return report

    def _keep_floor(self, guard: StorageGuard, report: RetentionReport) -> None:
        """Free the floor and room for the reserve besides, then take the reserve back."""
        missing = guard.reserve_bytes - guard.reserve_held()
        need = guard.floor_bytes + max(0, missing) - self.free_bytes(self.data)
        if need > 0 and (missing > 0 or guard.is_full()):
            left = self._delete_oldest(need, "volume-full", report)
            if left > 0 and guard.is_full():
                guard.set_state(
                    "unfreeable",
                    f"{left} bytes short of the {guard.floor_bytes}-byte floor; every"
                    " remaining segment is open or under a locked bookmark",
                )
                return
        guard.ensure_reserve()
        guard.set_state("ok")

    def _delete_oldest(self, need: int, reason: str, report: RetentionReport) -> int:
        """Delete the fewest oldest segments whose bytes add up to ``need``; returns what is
        still missing (0 when done)."""
        while need > 0:
            batch = self.catalog.deletable_segments(
                limit=64, archived_first=self.on_unarchived is not None
            )
            if not batch:
                log.warning("retention (%s): %d bytes over, nothing left to delete", reason, need)
                return need
            chosen = []
            for seg in batch:
                chosen.append(seg)
                need -= seg.bytes
                if need <= 0:
                    break
            self._delete(chosen, reason, report)
        return 0

    def _delete(self, segments: list[SegmentRow], reason: str, report: RetentionReport) -> None:
        if self.on_unarchived is not None:
            waiting = self.catalog.read(
                "SELECT count(*) FROM archive_backlog WHERE segment_id IN"
                f" ({','.join(str(s.id) for s in segments)})"
            )[0][0]
            if waiting:
                log.warning("retention (%s): %d segments deleted before their archive copy",
                            reason, waiting)  # fmt: skip
                self.on_unarchived(waiting)
        self.catalog.move_to_garbage(segments, reason, self.clock.now_us())
        collect_garbage(self.catalog, self.data)
        report.deleted.extend(segments)
        report.reasons[reason] = report.reasons.get(reason, 0) + len(segments)
