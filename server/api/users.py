"""User administration over the API (admins): list, create, change role, rights or password,
disable. Every change is audited; the last admin cannot be removed (``Users`` refuses)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from server.api.auth import Security, require
from server.api.errors import ApiError, json_body
from server.auth import Permission, User, UserError
from server.auth.audit import USER_CHANGE


def user_json(u: User) -> dict:
    return {
        "name": u.name,
        "role": str(u.role),
        "cameras": None if u.all_cameras else sorted(u.cameras),
        "disabled": u.disabled,
    }


def _cameras(value: object) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise ApiError(400, "bad_request", "cameras must be null (all) or a list of camera ids")
    return value


class UserRoutes:
    def __init__(self, security: Security) -> None:
        self.sec = security

    def add_to(self, router: web.UrlDispatcher, api: str) -> None:
        router.add_get(f"{api}/users", self.list)
        router.add_post(f"{api}/users", self.create)
        router.add_patch(f"{api}/users/{{name}}", self.update)

    async def list(self, request: web.Request) -> web.Response:
        require(request, Permission.USERS)
        users = await asyncio.to_thread(self.sec.users.list)
        return web.json_response([user_json(u) for u in users])

    async def create(self, request: web.Request) -> web.Response:
        require(request, Permission.USERS)
        body = await json_body(request)
        if set(body) - {"name", "password", "role", "cameras"}:
            raise ApiError(400, "bad_request", "fields: name, password, role, cameras")
        name, password, role = body.get("name"), body.get("password"), body.get("role", "viewer")
        if not all(isinstance(v, str) for v in (name, password, role)):
            raise ApiError(400, "bad_request", "name, password and role are strings")
        cameras = _cameras(body.get("cameras"))

        def work() -> User:
            if self.sec.users.get(name) is not None:
                raise ApiError(409, "exists", f"user {name!r} exists")
            try:
                user = self.sec.users.add(name, password, role, cameras)
            except UserError as exc:
                raise ApiError(400, "bad_request", str(exc)) from None
            self.sec.record(request, USER_CHANGE, name, {"op": "create", "role": role})
            return user

        return web.json_response(user_json(await asyncio.to_thread(work)), status=201)

    async def update(self, request: web.Request) -> web.Response:
        require(request, Permission.USERS)
        body = await json_body(request)
        if set(body) - {"password", "role", "cameras", "disabled"}:
            raise ApiError(400, "bad_request", "fields: password, role, cameras, disabled")
        name = request.match_info["name"]

        def work() -> User:
            users = self.sec.users
            if users.get(name) is None:
                raise ApiError(404, "not_found", f"no user {name!r}")
            try:
                if "password" in body:
                    if not isinstance(body["password"], str):
                        raise ApiError(400, "bad_request", "password is a string")
                    users.set_password(name, body["password"])
                if "role" in body:
                    if not isinstance(body["role"], str):
                        raise ApiError(400, "bad_request", "role is a string")
                    users.set_role(name, body["role"])
                if "cameras" in body:
                    users.set_cameras(name, _cameras(body["cameras"]))
                if "disabled" in body:
                    if not isinstance(body["disabled"], bool):
                        raise ApiError(400, "bad_request", "disabled is a boolean")
                    (users.disable if body["disabled"] else users.enable)(name)
            except UserError as exc:
                raise ApiError(400, "bad_request", str(exc)) from None
            fields = sorted(k for k in body if k != "password")
            self.sec.record(
                request,
                USER_CHANGE,
                name,
                {"op": "update", "fields": fields, "password": "password" in body},
            )
            user = users.get(name)
            assert user is not None
            return user

        return web.json_response(user_json(await asyncio.to_thread(work)))
