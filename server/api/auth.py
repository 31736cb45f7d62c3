"""Authentication and authorisation of API requests: bearer tokens, permissions per route
and per camera, login with a rate limit, and the audit trail of who did what."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from server.api.errors import ApiError, int_param, json_body
from server.auth import Audit, LoginRateLimiter, Permission, Tokens, User, Users, allowed
from server.auth.audit import LOGIN, LOGIN_FAILED, LOGIN_REFUSED, LOGOUT

PUBLIC_PATHS = frozenset({"/healthz", "/metrics", "/api/v1/openapi.json", "/api/v1/auth/login"})
USER = web.RequestKey("user", User)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Security:
    users: Users
    tokens: Tokens
    audit: Audit
    limiter: LoginRateLimiter

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
        return web.json_response(
            {"token": token, "expires_us": expires_us, "user": user.name, "role": str(user.role)}
        )

    async def logout(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        await asyncio.to_thread(self.tokens.revoke, header[7:].strip())
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
