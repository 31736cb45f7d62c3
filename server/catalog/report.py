"""The catalog's own health for ``vigia-server check``: SQLite integrity, the schema's
conventions (every table STRICT, the triggers the code relies on), foreign keys, and the storage
totals against a full count.

Read through sqlite-utils' introspection (tables, counts, strictness, triggers) rather than
hand-written ``sqlite_master`` queries: this runs once per ``check``, never on the packet path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from server.catalog.catalog import Catalog
from server.catalog.schema import MIGRATIONS

_TRIGGER = re.compile(r"CREATE TRIGGER (\w+)")
TRIGGERS = frozenset(name for script in MIGRATIONS for name in _TRIGGER.findall(script))
"""Triggers the schema creates (none is ever dropped): append-only audit log, storage totals."""


@dataclass(frozen=True)
class Finding:
    kind: str  # stable identifier: 'catalog-integrity', 'catalog-totals', ...
    detail: str
    repaired: bool = False

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}{' (repaired)' if self.repaired else ''}"


@dataclass
class CatalogReport:
    schema_version: int
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows
    total_bytes: int = 0
    findings: list[Finding] = field(default_factory=list)

    def summary(self) -> str:
        gb = self.total_bytes / 1e9
        return (
            f"catalog schema {self.schema_version}: {len(self.rows)} tables,"
            f" {self.rows.get('cameras', 0)} cameras, {self.rows.get('segments', 0)} segments"
            f" ({gb:.2f} GB), {self.rows.get('events', 0)} events,"
            f" {self.rows.get('users', 0)} users"
        )


def inspect_catalog(catalog: Catalog, *, repair: bool = False) -> CatalogReport:
    """What is wrong with the catalog itself; with ``repair``, rebuild what can be rebuilt from
    the rows (the storage totals). The rest (corruption, a missing trigger) is reported."""
    with catalog._lock:  # the connection is shared; sqlite-utils uses it directly
        db = catalog.db
        (version,) = db.execute("PRAGMA user_version").fetchone()
        report = CatalogReport(schema_version=version)
        for (line,) in db.execute("PRAGMA quick_check").fetchall():
            if line != "ok":
                report.findings.append(Finding("catalog-integrity", line))
        for table in db.tables:
            report.rows[table.name] = table.count
            if not table.strict:
                report.findings.append(Finding("catalog-not-strict", f"table {table.name}"))
        for name in sorted(TRIGGERS - {t.name for t in db.triggers}):
            report.findings.append(Finding("catalog-trigger-missing", name))
        for table, rowid, parent, _ in db.execute("PRAGMA foreign_key_check").fetchall():
            detail = f"{table} row {rowid} refers to a missing {parent} row"
            report.findings.append(Finding("catalog-foreign-key", detail))
    for line in catalog.recount_totals(repair=repair):
        report.findings.append(Finding("catalog-totals", line, repaired=repair))
    report.total_bytes = catalog.total_bytes()
    return report
