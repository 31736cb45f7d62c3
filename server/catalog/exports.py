"""Export jobs in the catalog: what ``server/export/jobs.py`` runs survives a restart, and
the bytes of finished exports count against the volume's limit (docs/design/export.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from server.catalog.catalog import Catalog


@dataclass(frozen=True, slots=True)
class ExportRow:
    id: str
    owner: str
    request: dict
    state: str
    error: str | None
    files: tuple[str, ...]
    bytes: int
    created_us: int
    finished_us: int | None


INTERRUPTED_EXPORT = "interrupted: the recorder stopped during the export"
_COLUMNS = "id, owner, request, state, error, files, bytes, created_us, finished_us"


def _row(r: tuple) -> ExportRow:
    return ExportRow(r[0], r[1], json.loads(r[2]), r[3], r[4], tuple(json.loads(r[5])), r[6],
                     r[7], r[8])  # fmt: skip


class ExportStore:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def add(self, job_id: str, owner: str, request: dict, created_us: int) -> None:
        with self.catalog.transaction() as c:
            c.execute(
                "INSERT INTO export_jobs (id, owner, request, state, created_us)"
                " VALUES (?, ?, ?, 'queued', ?)",
                (job_id, owner, json.dumps(request, sort_keys=True), created_us),
            )

    def update(
        self,
        job_id: str,
        state: str,
        *,
        error: str | None = None,
        files: tuple[str, ...] = (),
        bytes_: int = 0,
        finished_us: int | None = None,
    ) -> None:
        with self.catalog.transaction() as c:
            c.execute(
                "UPDATE export_jobs SET state = ?, error = ?, files = ?, bytes = ?,"
                " finished_us = ? WHERE id = ?",
                (state, error, json.dumps(list(files)), bytes_, finished_us, job_id),
            )

    def delete(self, job_id: str) -> None:
        with self.catalog.transaction() as c:
            c.execute("DELETE FROM export_jobs WHERE id = ?", (job_id,))

    def all(self) -> list[ExportRow]:
        return [_row(r) for r in self.catalog._all(
            f"SELECT {_COLUMNS} FROM export_jobs ORDER BY created_us, id"
        )]  # fmt: skip

    def finished_before(self, before_us: int) -> list[ExportRow]:
        rows = self.catalog._all(
            f"SELECT {_COLUMNS} FROM export_jobs WHERE finished_us < ? ORDER BY finished_us",
            (before_us,),
        )
        return [_row(r) for r in rows]

    def total_bytes(self) -> int:
        """Bytes of finished exports on the volume (retention counts them with the video)."""
        row = self.catalog._one("SELECT coalesce(sum(bytes), 0) FROM export_jobs")
        return int(row[0]) if row else 0
