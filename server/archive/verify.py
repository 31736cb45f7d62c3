"""``vigia-server archive verify``: audit the bucket against the catalog. Each archived segment
(all, or a random sample) is read back whole and hashed; its SHA-256 must be the one the store
confirmed at upload, which is the one computed when the segment closed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from server.archive.ledger import Ledger
from server.archive.store import ArchiveStore, StoreError


@dataclass
class VerifyReport:
    checked: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_archive(ledger: Ledger, store: ArchiveStore, sample: int | None = None) -> VerifyReport:
    report = VerifyReport()
    rows = ledger.all_archived(sample, random=sample is not None)
    for a in rows:
        try:
            body = store.open(a.key)["Body"]
            digest, size = hashlib.sha256(), 0
            try:
                while chunk := body.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
            finally:
                body.close()
        except StoreError as exc:
            report.problems.append(f"{a.key}: {exc}")
            continue
        report.checked += 1
        report.bytes += size
        if size != a.bytes:
            report.problems.append(f"{a.key}: {size} bytes in the bucket, catalog says {a.bytes}")
        elif digest.hexdigest() != a.sha256:
            report.problems.append(f"{a.key}: SHA-256 {digest.hexdigest()} != catalog {a.sha256}")
    return report
