"""Authentication and authorisation of API requests: bearer tokens, permissions per route
and per camera, login with a rate limit, and the audit trail of who did what."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import secrets
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from server.api.errors import ApiError, int_param, json_body
from server.auth import Audit, LoginRateLimiter, Permission, Tokens, User, Users, allowed
from server.auth.audit import LOGIN, LOGIN_FAILED, LOGIN_REFUSED, LOGOUT
from server.live.nats_server import EmbeddedNats, NatsServerError
from server.protocol.live import ai_subject, events_subject, status_subject

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/healthz", "/metrics", "/api/v1/openapi.json", "/api/v1/auth/login"})
USER = web.RequestKey("user", User)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class NatsGrants:
    """NATS credentials per login: subscribe-only, to the live, status, AI and event subjects
    of the cameras the user may see (docs/design/auth.md), on the embedded nats-server."""

    def __init__(self, nats: EmbeddedNats, server_id: str, tokens: Tokens) -> None:
        self.nats, self.server_id, self.tokens = nats, server_id, tokens
        self._sessions: dict[str, str] = {}  # NATS user -> API token it belongs to
        self._lock = threading.Lock()

    def subjects(self, user: User) -> list[str]:
        sid = self.server_id
        if user.all_cameras:
            return [
                f"vigia.{sid}.live.>",
                f"vigia.{sid}.ai.>",
                f"vigia.{sid}.events.>",
                status_subject(sid),
            ]
        out = [status_subject(sid)]
        for cam in sorted(user.cameras):
            out += [f"vigia.{sid}.live.{cam}.>", ai_subject(sid, cam), events_subject(sid, cam)]
        return out

    def grant(self, user: User, token: str) -> dict:
        name = "ws-" + hashlib.sha256(token.encode()).hexdigest()[:16]
        password = secrets.token_urlsafe(24)
        with self._lock:
            # sessions whose token expired or was revoked (logout, password change) lose their
            # NATS access too, in the same reload
            stale = [n for n, tok in self._sessions.items() if self.tokens.resolve(tok) is None]
            for n in stale:
                del self._sessions[n]
            self.nats.set_client(name, password, self.subjects(user), drop=stale)
            self._sessions[name] = token
        return {"url": self.nats.url, "port": self.nats.port, "user": name, "password": password}

    def revoke(self, token: str) -> None:
        name = "ws-" + hashlib.sha256(token.encode()).hexdigest()[:16]
        with self._lock:
            if self._sessions.pop(name, None) is not None:
                self.nats.remove_client(name)


@dataclass
class Security:
    users: Users
    tokens: Tokens
    audit: Audit
    limiter: LoginRateLimiter
    nats: NatsGrants | None = None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PUBLIC_PATHS or request.method == "OPTIONS":
            return await handler(request)
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        user = await asyncio.to_thread(self.tokens.resolve, token) if token else None
        if user is None:
            raise ApiError(401, "unauthorized", "log in first: missing, unknown or expired token")
        request[USER] = user
        return await handler(request)

    def record(
        self, request: web.Request, action: str, target: str = "", detail: dict | None = None
    ) -> None:
        user = request.get(USER)
        self.audit.record(user, action, target, detail or {}, request.remote or "")

    async def login(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        name, password = body.get("name"), body.get("password")
        if not isinstance(name, str) or not isinstance(password, str):
            raise ApiError(400, "bad_request", "name and password (strings) are required")
        if len(name) > 64 or len(password) > 1024:
            raise ApiError(401, "bad_credentials", "wrong name or password")
        remote = request.remote or ""
        wait = self.limiter.retry_after_s(remote, name)
        if wait > 0:
            await asyncio.to_thread(self.audit.record, name, LOGIN_REFUSED, "", {}, remote)
            raise ApiError(
                429, "rate_limited", f"too many failed logins; retry in {math.ceil(wait)} s"
            )
        user = await asyncio.to_thread(self.users.verify, name, password)  # scrypt: ~50 ms
        if user is None:
            self.limiter.failure(remote, name)
            await asyncio.to_thread(self.audit.record, name, LOGIN_FAILED, "", {}, remote)
            raise ApiError(401, "bad_credentials", "wrong name or password")
        self.limiter.success(remote, name)
        token, expires_us = await asyncio.to_thread(self.tokens.issue, user)
        await asyncio.to_thread(self.audit.record, user, LOGIN, "", {}, remote)
        session = {
            "token": token,
            "expires_us": expires_us,
            "user": user.name,
            "role": str(user.role),
        }
        if self.nats is not None:
            try:
                session["nats"] = await asyncio.to_thread(self.nats.grant, user, token)
            except NatsServerError as exc:
                log.error("no NATS credentials for %s: %s", user.name, exc)
        return web.json_response(session)

    async def logout(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip()
        await asyncio.to_thread(self.tokens.revoke, token)
        if self.nats is not None:
            await asyncio.to_thread(self.nats.revoke, token)
        await asyncio.to_thread(self.record, request, LOGOUT)
        return web.Response(status=204)

    async def audit_log(self, request: web.Request) -> web.Response:
        require(request, Permission.AUDIT)
        since = int_param(request, "since_us", default=0)
        until = int_param(request, "until_us", default=2**62)
        limit = int_param(request, "limit", default=1000, minimum=1, maximum=10_000)
        entries = await asyncio.to_thread(
            self.audit.query,
            since,
            until,
            request.query.get("user"),
            request.query.get("action"),
            limit,
        )
        return web.json_response(
            [
                {
                    "id": e.id,
                    "ts_us": e.ts_us,
                    "user": e.user,
                    "action": e.action,
                    "target": e.target,
                    "detail": e.detail,
                    "remote": e.remote,
                }
                for e in entries
            ]
        )


def require(request: web.Request, permission: Permission, camera_id: str | None = None) -> User:
    """403 unless the request's user has ``permission`` (on ``camera_id`` when given)."""
    user = request[USER]
    if not allowed(user, permission, camera_id):
        what = f" on camera {camera_id!r}" if camera_id else ""
        raise ApiError(403, "forbidden", f"{user.name} may not {permission}{what}")
    return user
