"""Archive to S3-compatible object storage: replication, audit and restore
(docs/design/archive.md)."""

from server.archive.store import ArchiveStore, StoreError, load_credentials
from server.archive.uploader import Archiver, ArchiveStatus

__all__ = ["ArchiveStatus", "ArchiveStore", "Archiver", "StoreError", "load_credentials"]
