"""A full volume: the catalog's reserve and the storage state shown in status and metrics.

Video and catalog share one volume. When cameras fill it, SQLite cannot grow its WAL, so the
very transaction retention needs to free space ("database or disk is full") would fail. The
guard keeps a **reserve file** (``catalog.reserve`` in the data dir, allocated with
``posix_fallocate`` so its blocks really are taken, also on tmpfs) and gives it back to the
file system when free space falls below the floor: the catalog's next writes (retention moving
rows to garbage) find room, retention then unlinks segment files, and the reserve is taken
again once there is room for it. See docs/design/recording.md.

States: ``ok``; ``full`` (free space below the floor: retention is freeing it); ``unfreeable``
(below the floor and nothing left that retention may delete, e.g. everything is under locked
bookmarks); ``error`` (a storage pass failed, e.g. an I/O error; the next pass retries).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from server.datadir import DataDir

log = logging.getLogger(__name__)

RESERVE_NAME = "catalog.reserve"
STATES = ("ok", "full", "unfreeable", "error")


def volume_free_bytes(data: DataDir) -> int:
    return shutil.disk_usage(data.root).free


class StorageGuard:
    """Owns the reserve file and the volume's state; used by retention and the service loop."""

    def __init__(
        self,
        data: DataDir,
        reserve_bytes: int,
        free_bytes: Callable[[DataDir], int] = volume_free_bytes,
    ) -> None:
        self.data = data
        self.reserve_bytes = max(0, reserve_bytes)
        self.free_bytes = free_bytes
        self.state = "ok"
        self.detail = ""
        self.full_events = 0  # times the volume was found below the floor (a counter)
        self._lock = threading.Lock()

    @property
    def reserve_path(self) -> os.PathLike[str]:
        return self.data.root / RESERVE_NAME

    @property
    def floor_bytes(self) -> int:
        """Below this much free space the volume counts as full: half the reserve, so a
        reserve just taken again leaves room before the next alarm."""
        return self.reserve_bytes // 2

    def reserve_held(self) -> int:
        try:
            return os.stat(self.reserve_path).st_blocks * 512
        except FileNotFoundError:
            return 0

    def release_reserve(self) -> int:
        """Give the reserve back to the file system; returns the bytes released."""
        held = self.reserve_held()
        if held:
            try:
                os.unlink(self.reserve_path)
            except FileNotFoundError:
                return 0
            log.warning("volume full: released the catalog reserve (%d bytes)", held)
        return held

    def ensure_reserve(self) -> bool:
        """Take the reserve again when the volume has room for it and the floor besides."""
        if not self.reserve_bytes or self.reserve_held() >= self.reserve_bytes:
            return True
        if self.free_bytes(self.data) < self.reserve_bytes + self.floor_bytes:
            return False
        try:
            fd = os.open(self.reserve_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.reserve_bytes)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                log.warning("cannot allocate the catalog reserve: %s", exc)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.reserve_path)
            return False
        return True

    def is_full(self) -> bool:
        return self.free_bytes(self.data) < self.floor_bytes

    def set_state(self, state: str, detail: str = "") -> None:
        with self._lock:
            if state == self.state and detail == self.detail:
                return
            if state in ("full", "unfreeable") and self.state not in ("full", "unfreeable"):
                self.full_events += 1
            previous, self.state, self.detail = self.state, state, detail
        if state == "ok":
            log.info("storage ok again (was %s)", previous)
        elif state == "unfreeable":
            log.error("volume full and nothing left to delete: %s", detail)
        else:
            log.warning("storage %s: %s", state, detail)

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """Prometheus metric families, for a collector (``IngestSupervisor.extra_metrics``)."""
        state = GaugeMetricFamily(
            "vigia_storage_state", "1 for the volume's current state", labels=["state"]
        )
        for name in STATES:
            state.add_metric([name], 1.0 if name == self.state else 0.0)
        yield state
        yield CounterMetricFamily(
            "vigia_storage_full", "Times the volume was found full", value=self.full_events
        )
        yield GaugeMetricFamily(
            "vigia_storage_reserve_bytes", "Bytes the catalog reserve holds",
            value=self.reserve_held(),
        )  # fmt: skip
