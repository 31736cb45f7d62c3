"""Exports: a time range of some cameras cut into standard MP4/MKV files, with a signed manifest.

``cutter`` remuxes recorded segments (no transcoding, except the first GOP of an exact export),
``manifest`` hashes and signs the result so that a copy can be checked later, and ``jobs`` runs
exports in worker threads for the API to poll.
"""

from server.export.cutter import (
    ExportCancelled,
    ExportedFile,
    ExportError,
    RemoteSegments,
    check_request,
    cut_range,
    export_range,
)
from server.export.jobs import ExportJobs, JobStatus
from server.export.manifest import (
    Manifest,
    ManifestFile,
    VerifyReport,
    load_or_create_signing_key,
    verify_export,
    write_manifest,
)

__all__ = [
    "ExportCancelled",
    "ExportError",
    "ExportJobs",
    "ExportedFile",
    "JobStatus",
    "Manifest",
    "ManifestFile",
    "RemoteSegments",
    "VerifyReport",
    "check_request",
    "cut_range",
    "export_range",
    "load_or_create_signing_key",
    "verify_export",
    "write_manifest",
]
