"""Bearer tokens for the API: random, stored only as their SHA-256, with a fixed lifetime.

A stolen catalog therefore holds no usable token (the tokens are 256 random bits, so an unsalted
fast hash is enough: there is nothing to guess). Disabling a user or changing its password
deletes its tokens (see :mod:`server.auth.users`); resolution also checks ``disabled``.
"""

from __future__ import annotations

import hashlib
import logging
import secrets

from server.auth.users import User, load_user
from server.catalog import Catalog
from server.clock import Clock

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 12 * 3600
LAST_USED_EVERY_US = 60 * 1_000_000
"""``last_used_us`` is rewritten at most this often, not on every request."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    def __init__(self, catalog: Catalog, clock: Clock, ttl_s: float = DEFAULT_TTL_S) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.catalog = catalog
        self.clock = clock
        self.ttl_us = int(ttl_s * 1_000_000)

    def issue(self, user: User) -> tuple[str, int]:
        """A new token for ``user`` and its expiry (µs since epoch). Shown to the client once."""
        if user.disabled:
            raise ValueError(f"user {user.name!r} is disabled")
        token = secrets.token_urlsafe(32)
        now = self.clock.now_us()
        expires_us = now + self.ttl_us
        with self.catalog.transaction() as c:
            c.execute(
                "INSERT INTO tokens (user_id, token_hash, created_us, expires_us)"
                " VALUES (?, ?, ?, ?)",
                (user.id, token_hash(token), now, expires_us),
            )
        return token, expires_us

    def resolve(self, token: str) -> User | None:
        """The user a token stands for, or ``None`` if unknown, expired or the user disabled."""
        if not token or len(token) > 256:
            return None
        row = self.catalog._one(
            "SELECT t.id, t.user_id, t.expires_us, t.last_used_us FROM tokens t"
            " JOIN users u ON u.id = t.user_id WHERE t.token_hash = ? AND u.disabled = 0",
            (token_hash(token),),
        )
        if row is None:
            return None
        token_id, user_id, expires_us, last_used_us = row
        now = self.clock.now_us()
        if now >= expires_us:
            return None
        if last_used_us is None or now - last_used_us >= LAST_USED_EVERY_US:
            with self.catalog.transaction() as c:
                c.execute(
                    "UPDATE tokens SET last_used_us = max(?, created_us) WHERE id = ?",
                    (now, token_id),
                )
        user = load_user(self.catalog, user_id)
        return None if user is None or user.disabled else user

    def issued(self, token: str) -> tuple[int, int] | None:
        """(created_us, expires_us) of a live token: what the site's directory shares."""
        row = self.catalog._one(
            "SELECT created_us, expires_us FROM tokens WHERE token_hash = ?", (token_hash(token),)
        )
        return None if row is None else (row[0], row[1])

    def live(self) -> list[tuple[str, str, int, int]]:
        """(hash, user name, created_us, expires_us) of every unexpired session."""
        rows = self.catalog._all(
            "SELECT t.token_hash, u.name, t.created_us, t.expires_us FROM tokens t"
            " JOIN users u ON u.id = t.user_id WHERE t.expires_us > ? AND u.disabled = 0",
            (self.clock.now_us(),),
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def mirror(self, digest: str, user: str, created_us: int, expires_us: int) -> bool:
        """Accept a token another recorder of the site issued (by its hash: the token itself
        never travels); False if its user is unknown or disabled here, or it expired."""
        if expires_us <= self.clock.now_us():
            return False
        with self.catalog.transaction() as c:
            cur = c.execute(
                "INSERT OR IGNORE INTO tokens (user_id, token_hash, created_us, expires_us)"
                " SELECT id, ?, ?, ? FROM users WHERE name = ? AND disabled = 0",
                (digest, created_us, expires_us, user),
            )
        return cur.rowcount > 0

    def forget(self, digest: str) -> bool:
        """A token revoked on another recorder of the site."""
        with self.catalog.transaction() as c:
            cur = c.execute("DELETE FROM tokens WHERE token_hash = ?", (digest,))
        return cur.rowcount > 0

    def revoke(self, token: str) -> bool:
        """End one session (logout). True if the token existed."""
        with self.catalog.transaction() as c:
            cur = c.execute("DELETE FROM tokens WHERE token_hash = ?", (token_hash(token),))
        return cur.rowcount > 0

    def revoke_user(self, user_id: int) -> int:
        """End every session of a user; returns how many there were."""
        with self.catalog.transaction() as c:
            cur = c.execute("DELETE FROM tokens WHERE user_id = ?", (user_id,))
        return cur.rowcount

    def purge_expired(self) -> int:
        """Delete expired tokens (run it now and then, e.g. with retention)."""
        with self.catalog.transaction() as c:
            cur = c.execute("DELETE FROM tokens WHERE expires_us <= ?", (self.clock.now_us(),))
        if cur.rowcount:
            log.debug("purged %d expired tokens", cur.rowcount)
        return cur.rowcount
