"""How the archive to object storage is doing (docs/design/archive.md)."""

from __future__ import annotations

from typing import Annotated, Literal

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
    archive_deleted_segments: int = 0  # removed from the bucket by archive_days
    unarchived_deleted_segments: int = 0  # removed locally (space) before their upload: alarm


ArchiveMode = Literal["all", "events", "none"]


class ArchivePolicy(msgspec.Struct):
    """A camera's archive policy: its own ``mode``, or none to follow ``[archive] mode``;
    ``effective`` is the one applied. The same for ``archive_days`` (days its footage and
    events stay in the bucket; ``effective_archive_days`` null: forever)."""

    camera: str
    mode: ArchiveMode | None
    effective: ArchiveMode
    archive_days: float | None = None
    effective_archive_days: float | None = None


class ArchivePolicyInput(msgspec.Struct, forbid_unknown_fields=True):
    """``mode`` 'all', 'events' (event and bookmark ranges, padded) or 'none'; null: the
    ``[archive] mode`` default. ``archive_days``: the camera's own; absent or null: the
    ``[archive] archive_days`` default."""

    mode: ArchiveMode | None
    archive_days: Annotated[float, msgspec.Meta(gt=0, le=36_500)] | None = None
