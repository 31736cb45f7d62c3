"""Footage whose local copy is gone, read from the bucket: what exports need
(``server.export.RemoteSegments``; docs/design/archive.md, "Playback from the archive")."""

from __future__ import annotations

from server.archive.ledger import Ledger
from server.archive.store import ArchiveStore, StoreError
from server.catalog import SegmentRow
from server.export import ExportError


class ArchiveSegments:
    """Archive-only segments from the ``archived`` table, their bytes by ranged GET."""

    def __init__(self, ledger: Ledger, store: ArchiveStore) -> None:
        self.ledger, self.store = ledger, store

    def remote_segments(
        self, camera_id: str, stream: str, start_us: int, end_us: int, stream_id: int
    ) -> list[SegmentRow]:
        return self.ledger.archive_only(camera_id, stream, start_us, end_us, stream_id)

    def read_remote(self, key: str, offset: int, length: int) -> bytes:
        try:
            return self.store.get(key, f"bytes={offset}-{offset + length - 1}")
        except StoreError as exc:
            raise ExportError(f"archived recording {key}: {exc}") from None
