"""Authentication and authorisation of API requests: bearer tokens, permissions per route
and per camera, login with a rate limit, and the audit trail of who did what."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
import secrets
import threading
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

from aiohttp import web
from msgspec import Meta

from server.api.bodies import decode_body, json_response
from server.api.errors import ApiError
from server.api.routing import API, Param, Route, RouteGroup
from server.auth import Audit, LoginRateLimiter, Permission, Role, Tokens, User, Users, allowed
from server.auth.audit import LOGIN, LOGIN_FAILED, LOGIN_REFUSED, LOGOUT
from server.live.nats_server import EmbeddedNats, NatsServerError
from server.protocol.live import (
    ai_subject,
    alarms_subject,
    camera_status_subject,
    events_subject,
    status_subject,
    status_wildcard,
)
from server.protocol.models import AuditEntry, Login, NatsGrant, Session
from server.protocol.models.common import MicrosParam
from server.site.accounts import DirectoryError, SiteAccounts

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/healthz", "/metrics", "/api/v1/openapi.json", "/api/v1/auth/login"})
# signed, short-lived links (server/rules/links.py): the signature is checked by the route
PUBLIC_PREFIXES = ("/api/v1/links/",)
USER = web.RequestKey("user", User)
SINCE = Param("since_us", MicrosParam)
UNTIL = Param("until_us", MicrosParam)
AUDIT_LIMIT = Param("limit", Annotated[int, Meta(ge=1, le=10_000)])

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class NatsGrants:
    """NATS credentials per login: subscribe-only, to the live, status, AI and event subjects
    of the cameras the user may see (docs/design/auth.md), on the embedded nats-server.

    A rights change (``sync_user``, from the users API) re-grants the user's NATS users with
    the subjects of their new rights, or drops them where their token is gone (disabled,
    password changed), in one reload: nats-server closes dropped users' connections and the
    subscriptions the new rights no longer allow, so the change holds on live connections.
    """

    def __init__(
        self,
        nats: EmbeddedNats,
        server_id: str,
        tokens: Tokens,
        mqtt_prefix: str = "",
        discovery_prefix: str = "",
        users: Users | None = None,
    ) -> None:
        self.nats, self.server_id, self.tokens = nats, server_id, tokens
        # with MQTT on, every account is also a NATS user of its own name and password (bcrypt,
        # checked by nats-server) with the same rights as its sessions: MQTT clients log in
        # with a Vigia name and password (docs/design/rules.md)
        self.users = users if mqtt_prefix else None
        self.mqtt_prefix = mqtt_prefix  # MQTT topics <prefix>/... are subjects <prefix>.…
        self.discovery_prefix = discovery_prefix if mqtt_prefix else ""  # Home Assistant
        self._sessions: dict[str, tuple[str, str]] = {}  # NATS user -> (API token, password)
        self._lock = threading.Lock()

    def subjects(self, user: User) -> list[str]:
        sid = self.server_id
        mqtt = self.mqtt_prefix
        if user.disabled:
            return []
        ha = self.discovery_prefix
        if user.all_cameras or user.role == Role.ADMIN:
            return [
                f"vigia.{sid}.live.>",
                f"vigia.{sid}.ai.>",
                f"vigia.{sid}.events.>",
                f"vigia.{sid}.alarms.>",
                status_subject(sid),
                status_wildcard(sid),
                *([mqtt, f"{mqtt}.>"] if mqtt else []),
                *([ha, f"{ha}.>"] if ha else []),
            ]
        out = [f"{mqtt}.available"] if mqtt else []
        if ha and allowed(user, Permission.BOOKMARKS):
            out.append(f"{ha}.switch.{sid}_arming.>")  # the arming switches
        for cam in sorted(user.cameras):
            out += [
                f"vigia.{sid}.live.{cam}.>",
                ai_subject(sid, cam),
                events_subject(sid, cam),
                alarms_subject(sid, cam),
                camera_status_subject(sid, cam),
            ]
            if mqtt:  # "<p>/<cam>/#" is both <p>.<cam> and <p>.<cam>.>
                out += [f"{mqtt}.{cam}", f"{mqtt}.{cam}.>"]
            if ha:  # <d>/<component>/<sid>_<cam>/<object>/config
                out.append(f"{ha}.*.{sid}_{cam}.>")
        return out

    def publish_subjects(self, user: User) -> list[str]:
        """What a login may publish: the MQTT switches its rights allow (``/set``)."""
        mqtt = self.mqtt_prefix
        if not mqtt or user.disabled:
            return []
        out = []
        if allowed(user, Permission.CONFIG):  # what PATCH /cameras/... needs
            out += [f"{mqtt}.*.detection.set", f"{mqtt}.*.recording.set"]
        if allowed(user, Permission.BOOKMARKS):  # what PUT /arming/{group} needs
            out.append(f"{mqtt}._arming.*.set")
        return out

    def _accounts(self, user_id: int | None) -> tuple[dict, list[str]]:
        """NATS users for MQTT logins (all accounts, or one) and the names to drop."""
        if self.users is None:
            return {}, []
        found = self.users.mqtt_logins(user_id)
        keep = {}
        for user, hashed in found:
            if user.name == self.nats.credentials.user or _SESSION_NAME.fullmatch(user.name):
                log.warning("account %s cannot log in to MQTT: the name is taken", user.name)
                continue
            keep[user.name] = (hashed, self.subjects(user), self.publish_subjects(user))
        drop = []
        if user_id is not None and not keep:  # disabled, or no hash yet: no MQTT login
            gone = self.users.get_by_id(user_id)
            drop = [gone.name] if gone is not None else []
        return keep, drop

    def sync_accounts(self) -> None:
        """Every account's MQTT login, in one reload (at start)."""
        keep, _ = self._accounts(None)
        if keep:
            with self._lock:
                self.nats.update_clients(keep)

    def grant(self, user: User, token: str) -> NatsGrant:
        name = _nats_name(token)
        password = secrets.token_urlsafe(24)
        with self._lock:
            # sessions whose token expired or was revoked (logout, password change) lose their
            # NATS access too, in the same reload
            stale = [
                n for n, (tok, _) in self._sessions.items() if self.tokens.resolve(tok) is None
            ]
            for n in stale:
                del self._sessions[n]
            clients, _ = self._accounts(user.id)  # a hash made at this login counts at once
            clients[name] = (password, self.subjects(user), self.publish_subjects(user))
            self.nats.update_clients(clients, drop=stale)
            self._sessions[name] = (token, password)
        return NatsGrant(self.nats.url, self.nats.port, name, password)

    def sync_user(self, user_id: int) -> int:
        """Bring the NATS users of ``user_id``'s sessions in line with their rights now, and
        drop every session whose token no longer resolves; returns how many were dropped."""
        with self._lock:
            keep: dict[str, tuple[str, list[str], list[str]]] = {}
            drop: list[str] = []
            for name, (token, password) in self._sessions.items():
                user = self.tokens.resolve(token)
                if user is None:
                    drop.append(name)
                elif user.id == user_id:
                    keep[name] = (password, self.subjects(user), self.publish_subjects(user))
            for name in drop:
                del self._sessions[name]
            accounts, gone = self._accounts(user_id)
            keep.update(accounts)
            if keep or drop or gone:
                self.nats.update_clients(keep, drop=[*drop, *gone])
        return len(drop)

    def revoke(self, token: str) -> None:
        name = _nats_name(token)
        with self._lock:
            if self._sessions.pop(name, None) is not None:
                self.nats.remove_client(name)


_SESSION_NAME = re.compile(r"ws-[0-9a-f]{16}")


def _nats_name(token: str) -> str:
    return "ws-" + hashlib.sha256(token.encode()).hexdigest()[:16]


@dataclass
class Security:
    users: Users
    tokens: Tokens
    audit: Audit
    limiter: LoginRateLimiter
    nats: NatsGrants | None = None
    rights_watchers: list[Callable[[str], Awaitable[object]]] = field(default_factory=list)
    """Called with a user name after that user's rights, password or account changed (the
    WHEP sessions re-check theirs)."""
    accounts: SiteAccounts | None = None  # one login for the site (docs/design/site.md)

    async def rights_changed(self, user: User) -> None:
        """Make a change of ``user``'s rights hold now on NATS and WebRTC (docs/design/auth.md)."""
        if self.nats is not None:
            try:
                await asyncio.to_thread(self.nats.sync_user, user.id)
            except NatsServerError as exc:
                log.error("NATS rights of %s not updated: %s", user.name, exc)
        for watcher in self.rights_watchers:
            await watcher(user.name)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if (
            request.path in PUBLIC_PATHS
            or request.path.startswith(PUBLIC_PREFIXES)
            or request.method == "OPTIONS"
        ):
            return await handler(request)
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        user = await asyncio.to_thread(self.tokens.resolve, token) if token else None
        accounts = self.accounts
        if user is None and token and accounts is not None and await accounts.fetch_token(token):
            user = await asyncio.to_thread(self.tokens.resolve, token)  # issued elsewhere just now
        if user is None:
            raise ApiError(401, "unauthorized", "log in first: missing, unknown or expired token")
        request[USER] = user
        return await handler(request)

    def record(
        self, request: web.Request, action: str, target: str = "", detail: dict | None = None
    ) -> None:
        user = request.get(USER)
        self.audit.record(user, action, target, detail or {}, request.remote or "")


async def publish_user(
    sec: Security, name: str, base: int | None, new_sessions: bool, new_account: bool = False
) -> None:
    """Write an account change to the site's directory (docs/design/site.md): 409 when it was
    changed elsewhere meanwhile, 503 when the directory cannot be written; either way the
    local account is the directory's again."""
    if sec.accounts is None:
        return
    try:
        await sec.accounts.publish_user(
            name, base, new_sessions=new_sessions, new_account=new_account
        )
    except DirectoryError as exc:
        code = "conflict" if exc.status == 409 else "directory_unavailable"
        raise ApiError(exc.status, code, str(exc)) from None


def require(request: web.Request, permission: Permission, camera_id: str | None = None) -> User:
    """403 unless the request's user has ``permission`` (on ``camera_id`` when given)."""
    user = request[USER]
    if not allowed(user, permission, camera_id):
        what = f" on camera {camera_id!r}" if camera_id else ""
        raise ApiError(403, "forbidden", f"{user.name} may not {permission}{what}")
    return user


class AuthRoutes(RouteGroup):
    """Login (public, rate limited), logout and the audit log."""

    def __init__(self, security: Security) -> None:
        self.sec = security

    async def login(self, request: web.Request) -> web.Response:
        body = await decode_body(request, Login, json_only=True)
        name, password = body.name, body.password
        if any(unicodedata.category(ch)[0] == "C" for ch in name):
            # no user name has one; refused before it reaches a log line or the audit log
            raise ApiError(400, "bad_request", "a user name has no control characters")
        if len(name) > 64 or len(password) > 1024:
            raise ApiError(401, "bad_credentials", "wrong name or password")
        remote = request.remote or ""
        wait = self.sec.limiter.retry_after_s(remote, name)
        if wait > 0:
            await asyncio.to_thread(self.sec.audit.record, name, LOGIN_REFUSED, "", {}, remote)
            raise ApiError(
                429, "rate_limited", f"too many failed logins; retry in {math.ceil(wait)} s"
            )
        user = await asyncio.to_thread(self.sec.users.verify, name, password)  # scrypt: ~50 ms
        if user is None:
            self.sec.limiter.failure(remote, name)
            await asyncio.to_thread(self.sec.audit.record, name, LOGIN_FAILED, "", {}, remote)
            raise ApiError(401, "bad_credentials", "wrong name or password")
        self.sec.limiter.success(remote, name)
        token, expires_us = await asyncio.to_thread(self.sec.tokens.issue, user)
        if self.sec.accounts is not None:
            await self.sec.accounts.publish_token(token, user.name)
        await asyncio.to_thread(self.sec.audit.record, user, LOGIN, "", {}, remote)
        session = Session(token, expires_us, user.name, str(user.role))  # type: ignore[arg-type]
        if self.sec.nats is not None:
            try:
                session.nats = await asyncio.to_thread(self.sec.nats.grant, user, token)
            except NatsServerError as exc:
                log.error("no NATS credentials for %s: %s", user.name, exc)
        return json_response(session)

    async def logout(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip()
        await asyncio.to_thread(self.sec.tokens.revoke, token)
        if self.sec.accounts is not None:
            await self.sec.accounts.revoke_token(token)
        if self.sec.nats is not None:
            await asyncio.to_thread(self.sec.nats.revoke, token)
        await asyncio.to_thread(self.sec.record, request, LOGOUT)
        return web.Response(status=204)

    async def audit_log(self, request: web.Request) -> web.Response:
        require(request, Permission.AUDIT)
        since = SINCE.read_int(request, default=0)
        until = UNTIL.read_int(request, default=2**62)
        limit = AUDIT_LIMIT.read_int(request, default=1000)
        entries = await asyncio.to_thread(
            self.sec.audit.query,
            since,
            until,
            request.query.get("user"),
            request.query.get("action"),
            limit,
        )
        return json_response(
            [AuditEntry(e.id, e.ts_us, e.user, e.action, e.target, e.detail, e.remote)
             for e in entries]
        )  # fmt: skip

    ROUTES = (
        Route("POST", f"{API}/auth/login", login, "Log in: a bearer token for the other calls",
              body=Login, returns=Session, errors=(400, 401, 415, 429), permission="public"),
        Route("POST", f"{API}/auth/logout", logout, "Revoke this token", status=204),
        Route("GET", f"{API}/audit", audit_log,
              "Audit log (admins): logins, changes, archive access, exports",
              returns=list[AuditEntry], permission=Permission.AUDIT, params=(
                  SINCE, UNTIL, Param("user", str), Param("action", str), AUDIT_LIMIT)),
    )  # fmt: skip
