"""One login for the whole site: accounts and sessions in the site's directory.

Two JetStream key-value buckets (docs/design/site.md):

- ``…_users``: one record per account (password hash, role, cameras, disabled, and
  ``tokens_after_us``: sessions issued before it are over, everywhere). A change through any
  recorder's API is written with compare-and-set against the revision that recorder had read:
  a stale write gets 409 and the directory's record is put back locally, so recorders never
  diverge; a directory that cannot be written (no quorum) gives 503, likewise.
- ``…_tokens``: one record per session, keyed by the token's SHA-256 (the token itself never
  travels). Logout deletes it, and every recorder forgets the token at once.

Every recorder copies the records into its own catalog (``Users.mirror``, ``Tokens.mirror``),
so checking a token stays one local query; a token seen before its record arrived is fetched
from the bucket once. Changes arrive as plain NATS messages on the buckets' subjects, and the
revision of a changed account is read back from the bucket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import msgspec
import nats
import nats.js.errors as jserr
from nats.js.api import KeyValueConfig

from server.auth import Tokens, User, Users
from server.auth.tokens import token_hash
from server.clock import Clock

log = logging.getLogger(__name__)

JS_TIMEOUT_S = 2.0
FETCH_TRIES, FETCH_RETRY_S = 40, 0.025
KV_OP = "KV-Operation"


class DirectoryError(Exception):
    """A write the directory refused: ``status`` 409 (stale) or 503 (cannot be written now)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class UserRecord(msgspec.Struct):
    name: str
    password_hash: str
    role: str
    cameras: list[str] | None  # None: every camera
    disabled: bool
    tokens_after_us: int = 0


class TokenRecord(msgspec.Struct):
    user: str
    created_us: int
    expires_us: int


def bucket(site: str, kind: str) -> str:
    return f"vigia_site_{site.replace('-', '_')}_{kind}"


def account_streams(site: str) -> list[str]:
    """The JetStream streams behind the account buckets (scaled up with the cluster)."""
    return [f"KV_{bucket(site, kind)}" for kind in ("users", "tokens")] if site else []


def _key(name: str) -> str:
    """User names may hold ``@``, which a key may not: hex keeps every name a valid key."""
    return name.lower().encode().hex()


class SiteAccounts:
    def __init__(
        self,
        site: str,
        users: Users,
        tokens: Tokens,
        clock: Clock,
        on_user_changed: Callable[[User], Awaitable[None]] | None = None,
    ) -> None:
        self.site, self.users, self.tokens, self.clock = site, users, tokens, clock
        self.on_user_changed = on_user_changed
        self.conflicts: list[str] = []
        self._rev: dict[str, int] = {}  # key -> revision of the record copied here
        self._records: dict[str, UserRecord] = {}
        self._users_kv = None
        self._tokens_kv = None
        self._js = None
        self._seen = {"users": 0, "tokens": 0}  # the buckets' last sequence, reconciled to
        self._subs: list = []

    @property
    def ready(self) -> bool:
        return self._users_kv is not None

    # --- joining ------------------------------------------------------------------------

    async def open(self, nc: nats.aio.client.Client, replicas: int) -> None:
        """Open (or make) the buckets, bring this recorder's accounts into an empty directory
        or report where they differ from a populated one, and follow changes."""
        js = self._js = nc.jetstream(timeout=JS_TIMEOUT_S)
        self._users_kv = await _bucket(js, bucket(self.site, "users"), replicas)
        self._tokens_kv = await _bucket(js, bucket(self.site, "tokens"), replicas)
        self._seen = {kind: await self._last_seq(kind) for kind in self._seen}
        if not self._subs:
            self._subs = [
                await nc.subscribe(f"$KV.{bucket(self.site, 'users')}.>", cb=self._on_user),
                await nc.subscribe(f"$KV.{bucket(self.site, 'tokens')}.>", cb=self._on_token),
            ]
        locals_ = [
            await self._local_record(u.name) for u in await asyncio.to_thread(self.users.list)
        ]
        try:
            keys = await self._users_kv.keys()
        except jserr.NoKeysError:
            keys = []
        for key in keys:
            await self._fetch_user(key)
        for local in locals_:
            if local is None:
                continue
            key = _key(local.name)
            if key not in self._records:
                try:
                    self._rev[key] = await self._users_kv.create(key, msgspec.json.encode(local))
                    self._records[key] = local
                    log.info("site %s: account %s brought into the directory", self.site,
                             local.name)  # fmt: skip
                    continue
                except jserr.KeyWrongLastSequenceError:  # another recorder brought it first
                    await self._fetch_user(key)
            if key in self._records and _differs(local, self._records[key]):
                note = f"account {local.name}: this recorder's differed; the site's kept"
                self.conflicts.append(note)
                log.warning("site %s: %s", self.site, note)
                await self._apply(self._records[key])
        # sessions opened here before the directory was: shared now
        for digest, user, created_us, expires_us in await asyncio.to_thread(self.tokens.live):
            record = TokenRecord(user, created_us, expires_us)
            await self._tokens_kv.put(digest, msgspec.json.encode(record))

    # --- catching up ----------------------------------------------------------------------

    async def _last_seq(self, kind: str) -> int:
        info = await self._js.stream_info(f"KV_{bucket(self.site, kind)}")
        return int(info.state.last_seq)

    async def reconcile(self) -> None:
        """What this recorder missed while it was cut off (a change notice is a plain message:
        gone if it came while the routes were down), found by the buckets' last sequence at
        every heartbeat and read back from the buckets."""
        if self._js is None or self._users_kv is None or self._tokens_kv is None:
            return
        last = await self._last_seq("users")
        if last > self._seen["users"]:
            try:
                keys = await self._users_kv.keys()
            except jserr.NoKeysError:
                keys = []
            for key in keys:
                await self._fetch_user(key)
            self._seen["users"] = last
        last = await self._last_seq("tokens")
        if last > self._seen["tokens"]:
            for digest, user, created_us, expires_us in await asyncio.to_thread(self.tokens.live):
                try:
                    await self._tokens_kv.get(digest)
                except jserr.KeyDeletedError:  # logged out elsewhere meanwhile
                    await asyncio.to_thread(self.tokens.forget, digest)
                except jserr.KeyNotFoundError:  # opened here while cut off: shared now
                    record = TokenRecord(user, created_us, expires_us)
                    await self._tokens_kv.put(digest, msgspec.json.encode(record))
            self._seen["tokens"] = last

    # --- accounts -------------------------------------------------------------------------

    def revision(self, name: str) -> int | None:
        """The revision a change is based on: read it before changing the local account."""
        return self._rev.get(_key(name))

    async def publish_user(
        self, name: str, base: int | None, *, new_sessions: bool, new_account: bool = False
    ) -> None:
        """Write the local account to the directory if nobody changed it since ``base``;
        otherwise put the directory's back here and raise DirectoryError (409 or 503).
        ``new_sessions``: sessions issued before now end everywhere (password, disable);
        ``new_account``: made here just now, so a failed write takes it back."""
        key = _key(name)
        local = await self._local_record(name)
        if local is None or self._users_kv is None:
            await self._restore(key, name, new_account)
            raise DirectoryError(503, "the site's directory is not open yet; try again")
        old = self._records.get(key)
        local.tokens_after_us = (
            self.clock.now_us() if new_sessions else (old.tokens_after_us if old else 0)
        )
        data = msgspec.json.encode(local)
        try:
            if base is None:
                rev = await self._users_kv.create(key, data)
            else:
                rev = await self._users_kv.update(key, data, last=base)
        except jserr.KeyWrongLastSequenceError:  # someone else wrote first
            await self._fetch_user(key)
            raise DirectoryError(
                409, f"account {name} was changed elsewhere meanwhile; read it again and retry"
            ) from None
        except Exception as exc:  # no quorum, a timeout, the connection gone
            await self._restore(key, name, new_account)
            raise DirectoryError(
                503,
                "the site's directory cannot be written now (this recorder is cut off from the "
                f"cluster or the cluster has no quorum): {exc or type(exc).__name__}",
            ) from None
        if rev >= self._rev.get(key, 0):
            self._rev[key], self._records[key] = rev, local
        log.debug("site %s: account %s written (revision %d)", self.site, name, rev)

    async def _local_record(self, name: str) -> UserRecord | None:
        found = await asyncio.to_thread(self.users.record, name)
        if found is None:
            return None
        user, password_hash = found
        cameras = None if user.all_cameras else sorted(user.cameras)
        return UserRecord(user.name, password_hash, str(user.role), cameras, user.disabled)

    async def _restore(self, key: str, name: str, new_account: bool) -> None:
        """The directory's account back here; one made here just now that the directory could
        not take goes again."""
        record = self._records.get(key)
        if record is not None:
            await self._apply(record)
        elif new_account:
            await asyncio.to_thread(self.users.remove, name)

    async def _fetch_user(self, key: str, expect: bytes | None = None) -> None:
        """Copy the account's record with its revision. ``expect``: the record a change notice
        carried; a notice can come before the stream's leader has stored it, so the read is
        repeated (briefly) until the bucket shows it."""
        assert self._users_kv is not None
        for _ in range(FETCH_TRIES):
            try:
                entry = await self._users_kv.get(key)
            except (jserr.KeyNotFoundError, jserr.KeyDeletedError):
                entry = None
            if expect is None or (
                entry is not None
                and (entry.value == expect or (entry.revision or 0) > self._rev.get(key, 0))
            ):
                break  # the change noticed, or a newer one than what is here
            await asyncio.sleep(FETCH_RETRY_S)
        else:
            log.warning("site %s: account %s not readable after its change notice", self.site, key)
        if entry is None or entry.value is None or entry.revision is None:
            return
        known = self._rev.get(key, 0)
        if entry.revision < known or (expect is None and entry.revision == known):
            return  # an older one than what is here already, or the same
        try:
            record = msgspec.json.decode(entry.value, type=UserRecord)
        except msgspec.DecodeError:
            log.warning("site %s: unreadable account record %s ignored", self.site, key)
            return
        self._rev[key], self._records[key] = entry.revision, record
        log.debug("site %s: account %s copied (revision %d)", self.site, record.name,
                  entry.revision)  # fmt: skip
        await self._apply(record)

    async def _apply(self, r: UserRecord) -> None:
        user = await asyncio.to_thread(self.users.mirror, r.name, r.password_hash, r.role,
                                       r.cameras, r.disabled, r.tokens_after_us)  # fmt: skip
        if self.on_user_changed is not None:
            await self.on_user_changed(user)

    async def _on_user(self, msg) -> None:
        key = msg.subject.rsplit(".", 1)[-1]
        if msg.headers and msg.headers.get(KV_OP) in ("DEL", "PURGE"):
            return  # accounts are disabled, never deleted
        try:
            await self._fetch_user(key, expect=msg.data)
        except Exception as exc:  # the next change or the next start brings it
            log.warning("site %s: account change not read: %s", self.site, exc)

    # --- sessions -------------------------------------------------------------------------

    async def publish_token(self, token: str, user: str) -> None:
        """Share a session this recorder issued; best effort (a recorder that is cut off
        still lets its own users in)."""
        issued = await asyncio.to_thread(self.tokens.issued, token)
        if issued is None or self._tokens_kv is None:
            return
        record = TokenRecord(user, *issued)
        try:
            await self._tokens_kv.put(token_hash(token), msgspec.json.encode(record))
        except Exception as exc:
            log.warning("site %s: session of %s not shared: %s", self.site, user, exc)

    async def revoke_token(self, token: str) -> None:
        if self._tokens_kv is None:
            return
        try:
            await self._tokens_kv.delete(token_hash(token))
        except Exception as exc:
            log.warning("site %s: logout not shared: %s", self.site, exc)

    async def fetch_token(self, token: str) -> bool:
        """A token not known here yet: look for it in the directory (it may have been issued a
        moment ago on another recorder)."""
        if self._tokens_kv is None or not token or len(token) > 256:
            return False
        digest = token_hash(token)
        try:
            entry = await self._tokens_kv.get(digest)
        except Exception:
            return False
        return await self._accept(digest, entry.value)

    async def _accept(self, digest: str, data: bytes | None) -> bool:
        if not data:
            return False
        try:
            r = msgspec.json.decode(data, type=TokenRecord)
        except msgspec.DecodeError:
            return False
        account = self._records.get(_key(r.user))
        if account is None or account.disabled or r.created_us < account.tokens_after_us:
            return False
        return await asyncio.to_thread(self.tokens.mirror, digest, r.user, r.created_us,
                                       r.expires_us)  # fmt: skip

    async def _on_token(self, msg) -> None:
        digest = msg.subject.rsplit(".", 1)[-1]
        if msg.headers and msg.headers.get(KV_OP) in ("DEL", "PURGE"):
            await asyncio.to_thread(self.tokens.forget, digest)
            return
        await self._accept(digest, msg.data)


async def _bucket(js, name: str, replicas: int):
    try:
        return await js.key_value(name)
    except jserr.BucketNotFoundError:
        # reads from the stream's leader (no "direct" reads from any replica): a record read
        # right after its change must be that change, not a lagging replica's older one
        return await js.create_key_value(
            KeyValueConfig(bucket=name, history=1, replicas=replicas, direct=False)
        )


def _differs(a: UserRecord, b: UserRecord) -> bool:
    return (a.password_hash, a.role, a.cameras, a.disabled) != (
        b.password_hash, b.role, b.cameras, b.disabled,
    )  # fmt: skip
