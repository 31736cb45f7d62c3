"""The audit log: who did what, when and from where (docs/design/auth.md).

Append-only in the catalog (a trigger refuses updates); old entries may be purged. Record one
``archive-access`` per playback request of a camera and time range, not per HTTP Range read.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from server.auth.users import User
from server.catalog import Catalog
from server.clock import Clock

log = logging.getLogger(__name__)

LOGIN = "login"
LOGIN_FAILED = "login-failed"
LOGIN_REFUSED = "login-refused"  # rate limit hit, password not even checked
LOGOUT = "logout"
CONFIG_CHANGE = "config-change"
USER_CHANGE = "user-change"
ARCHIVE_ACCESS = "archive-access"
EXPORT = "export"
BOOKMARK_CHANGE = "bookmark-change"
PTZ = "ptz"  # every PTZ command: move, stop, presets
RELAY = "relay"  # a camera's relay output switched (siren, light)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    ts_us: int
    user: str
    action: str
    target: str
    detail: dict[str, Any]
    remote: str


class Audit:
    def __init__(self, catalog: Catalog, clock: Clock) -> None:
        self.catalog = catalog
        self.clock = clock

    def record(
        self,
        user: User | str | None,
        action: str,
        target: str = "",
        detail: dict[str, Any] | None = None,
        remote: str = "",
    ) -> int:
        """Append an entry; ``user`` is the acting user, or the name typed at a failed login."""
        name = user.name if isinstance(user, User) else user or ""
        text = json.dumps(detail or {}, sort_keys=True, separators=(",", ":"), default=str)
        with self.catalog.transaction() as c:
            cur = c.execute(
                "INSERT INTO audit_log (ts_us, user, action, target, detail, remote)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (self.clock.now_us(), name, action, target, text, remote),
            )
        log.info("audit: %s %s %s from %s", name or "-", action, target or "-", remote or "local")
        return int(cur.lastrowid)

    def query(
        self,
        since_us: int | None = None,
        until_us: int | None = None,
        user: str | None = None,
        action: str | None = None,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """Entries with ``since_us <= ts_us < until_us``, newest first (user name: any case)."""
        where, params = [], []
        if since_us is not None:
            where.append("ts_us >= ?")
            params.append(since_us)
        if until_us is not None:
            where.append("ts_us < ?")
            params.append(until_us)
        if user is not None:
            where.append("user = ? COLLATE NOCASE")
            params.append(user)
        if action is not None:
            where.append("action = ?")
            params.append(action)
        sql = "SELECT id, ts_us, user, action, target, detail, remote FROM audit_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY ts_us DESC, id DESC LIMIT ?"
        params.append(max(0, limit))
        return [
            AuditEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6])
            for r in self.catalog._all(sql, params)
        ]

    def purge(self, before_us: int) -> int:
        """Delete entries older than ``before_us`` (audit retention); returns how many."""
        with self.catalog.transaction() as c:
            cur = c.execute("DELETE FROM audit_log WHERE ts_us < ?", (before_us,))
        return cur.rowcount
