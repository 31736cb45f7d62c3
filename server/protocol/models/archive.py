"""How the archive to object storage is doing (docs/design/archive.md)."""

from __future__ import annotations

from typing import Literal

import msgspec

from server.protocol.models.common import Micros


class ArchiveStatus(msgspec.Struct):
    """Replication health: ``state`` 'ok' (the store answers), 'error' (see ``error``; uploads
    back off and recording goes on) or 'starting' (not yet heard from the store)."""

    state: Literal["ok", "error", "starting"]
    endpoint: str
    bucket: str
    error: str | None = None
    error_us: Micros | None = None
    backlog_segments: int = 0
    backlog_bytes: int = 0
    backlog_oldest_age_s: float = 0.0
    uploaded_objects: int = 0
    uploaded_bytes: int = 0
    upload_errors: int = 0
    archived_segments: int = 0
    archived_bytes: int = 0
    archive_deleted_segments: int = 0
