"""User administration over the API (admins): list, create, change role, rights or password,
disable. Every change is audited; the last admin cannot be removed (``Users`` refuses)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from server.api.auth import Security, publish_user, require
from server.api.bodies import decode_body, json_response
from server.api.errors import ApiError
from server.api.routing import API, Route, RouteGroup
from server.auth import Permission, User, UserError
from server.auth.audit import USER_CHANGE
from server.protocol.models import UNSET, UserInput, UserPatch
from server.protocol.models import User as UserBody


def user_body(u: User) -> UserBody:
    cameras = None if u.all_cameras else sorted(u.cameras)
    return UserBody(u.name, str(u.role), cameras, u.disabled)  # type: ignore[arg-type]


class UserRoutes(RouteGroup):
    def __init__(self, security: Security) -> None:
        self.sec = security

    async def list_users(self, request: web.Request) -> web.Response:
        require(request, Permission.USERS)
        users = await asyncio.to_thread(self.sec.users.list)
        return json_response([user_body(u) for u in users])

    async def create(self, request: web.Request) -> web.Response:
        require(request, Permission.USERS)
        body = await decode_body(request, UserInput)
        name, role = body.name, body.role
        accounts = self.sec.accounts
        if accounts is not None and accounts.revision(name) is not None:
            raise ApiError(409, "exists", f"user {name!r} exists")

        def work() -> User:
            if self.sec.users.get(name) is not None:
                raise ApiError(409, "exists", f"user {name!r} exists")
            try:
                user = self.sec.users.add(name, body.password, role, body.cameras)
            except UserError as exc:
                raise ApiError(400, "bad_request", str(exc)) from None
            self.sec.record(request, USER_CHANGE, name, {"op": "create", "role": role})
            return user

        user = await asyncio.to_thread(work)
        await publish_user(self.sec, name, None, new_sessions=False, new_account=True)
        await self.sec.rights_changed(user)  # its MQTT login
        return json_response(user_body(user), status=201)

    async def update(self, request: web.Request) -> web.Response:
        require(request, Permission.USERS)
        body = await decode_body(request, UserPatch)
        name = request.match_info["name"]
        given = [f for f in body.__struct_fields__ if getattr(body, f) is not UNSET]
        # the directory's revision before the change: a write from elsewhere since is a 409
        base = self.sec.accounts.revision(name) if self.sec.accounts is not None else None

        def work() -> User:
            users = self.sec.users
            if users.get(name) is None:
                raise ApiError(404, "not_found", f"no user {name!r}")
            try:
                if body.password is not UNSET:
                    users.set_password(name, body.password)
                if body.role is not UNSET:
                    users.set_role(name, body.role)
                if body.cameras is not UNSET:
                    users.set_cameras(name, body.cameras)
                if body.disabled is not UNSET:
                    (users.disable if body.disabled else users.enable)(name)
            except UserError as exc:
                raise ApiError(400, "bad_request", str(exc)) from None
            fields = sorted(k for k in given if k != "password")
            self.sec.record(
                request,
                USER_CHANGE,
                name,
                {"op": "update", "fields": fields, "password": "password" in given},
            )
            user = users.get(name)
            assert user is not None
            return user

        user = await asyncio.to_thread(work)
        ends = body.password is not UNSET or body.disabled is True
        await publish_user(self.sec, name, base, new_sessions=ends)
        await self.sec.rights_changed(user)
        return json_response(user_body(user))

    ROUTES = (
        Route("GET", f"{API}/users", list_users, "Accounts (admins)", returns=list[UserBody],
              permission=Permission.USERS),
        Route("POST", f"{API}/users", create, "Create an account (admins)", body=UserInput,
              returns=UserBody, status=201, errors=(409, 503), permission=Permission.USERS),
        Route("PATCH", f"{API}/users/{{name}}", update,
              "Change password, role, cameras or disable (admins)", body=UserPatch,
              returns=UserBody, errors=(404, 409, 503), permission=Permission.USERS),
    )  # fmt: skip
