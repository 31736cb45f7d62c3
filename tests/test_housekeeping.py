"""The audit log and expired tokens are purged on a schedule by the running recorder (issue 19:
``Audit.purge`` and ``Tokens.purge_expired`` were never called)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from server.auth import Audit, Tokens, Users
from server.catalog import Catalog
from server.protocol.timeutil import US_PER_SECOND
from tests.conftest import ServerProcess, camera_toml, wait_until

DAY_US = 86_400 * US_PER_SECOND


class At:
    def __init__(self, now_us: int) -> None:
        self.now = now_us

    def now_us(self) -> int:
        return self.now


def _count(db: Path, sql: str) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return int(con.execute(sql).fetchone()[0])
    finally:
        con.close()


def test_old_audit_entries_and_expired_tokens_are_purged_by_the_server(
    tmp_path: Path, server_process: Callable[[str], ServerProcess]
) -> None:
    now = time.time_ns() // 1000
    data = tmp_path / "data"
    data.mkdir()
    catalog = Catalog(data / "catalog.db")
    user = Users(catalog, At(now - 100 * DAY_US)).add("viewer", "a long enough password", "viewer")
    Tokens(catalog, At(now - 100 * DAY_US), ttl_s=3600).issue(user)  # long expired
    Tokens(catalog, At(now), ttl_s=3600).issue(user)  # valid: kept
    Audit(catalog, At(now - 40 * DAY_US)).record("mallory", "login-failed")
    Audit(catalog, At(now - 10 * DAY_US)).record("viewer", "login")  # within 30 days: kept
    catalog.close()

    toml = camera_toml([]).replace(
        "min_free_bytes = 0", "min_free_bytes = 0\naudit_days = 30\npurge_interval_s = 1"
    )
    server = server_process(toml)
    server.start({"VIGIA_ADMIN_PASSWORD": "correct horse battery"})
    db = data / "catalog.db"
    wait_until(lambda: _count(db, "SELECT count(*) FROM tokens") == 1, 30, "the purge", poll=0.2)
    assert _count(db, "SELECT count(*) FROM tokens WHERE expires_us > strftime('%s') * 1e6") == 1
    wait_until(lambda: "purged 1 audit entries and 1 expired tokens" in server.log(), 10, "log")
    users = _count(db, "SELECT count(*) FROM audit_log WHERE user = 'viewer'")
    assert users == 1 and _count(db, "SELECT count(*) FROM audit_log WHERE user = 'mallory'") == 0
    assert server.stop() == 0
