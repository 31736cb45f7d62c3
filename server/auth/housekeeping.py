"""Scheduled purge of the audit log and expired tokens: without it both tables only grow (a
thousand refused logins are a thousand audit rows). See docs/design/auth.md."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from server.auth.audit import Audit
from server.auth.tokens import Tokens
from server.catalog import Catalog
from server.clock import Clock
from server.protocol.timeutil import US_PER_SECOND

log = logging.getLogger(__name__)

DAY_US = 86_400 * US_PER_SECOND


@dataclass
class AuthHousekeeping:
    """``audit_days``: audit entries older than this go; ``None`` keeps them all."""

    catalog: Catalog
    clock: Clock
    audit_days: float | None

    def run_once(self) -> tuple[int, int]:
        """Returns (audit entries, tokens) deleted."""
        audit = 0
        if self.audit_days is not None:
            before = self.clock.now_us() - int(self.audit_days * DAY_US)
            audit = Audit(self.catalog, self.clock).purge(before)
        tokens = Tokens(self.catalog, self.clock).purge_expired()
        if audit or tokens:
            log.info("purged %d audit entries and %d expired tokens", audit, tokens)
        return audit, tokens
