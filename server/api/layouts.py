"""``/layouts``: the workstation's named wall layouts, kept per user (shared ones by admins)."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from server.api.auth import USER, Security, require
from server.api.errors import ApiError, json_body
from server.auth import Permission
from server.auth.audit import CONFIG_CHANGE
from server.catalog.layouts import LayoutRow, Layouts
from server.clock import Clock

MAX_LAYOUT_BYTES = 60_000


class LayoutRoutes:
    def __init__(self, layouts: Layouts, security: Security, clock: Clock) -> None:
        self.layouts, self.sec, self.clock = layouts, security, clock

    def add_to(self, r: web.UrlDispatcher, api: str) -> None:
        r.add_get(f"{api}/layouts", self.list)
        r.add_put(f"{api}/layouts/{{name}}", self.put)
        r.add_delete(f"{api}/layouts/{{name}}", self.delete)

    @staticmethod
    def _name(request: web.Request) -> str:
        name = request.match_info["name"].strip()
        if not 1 <= len(name) <= 100:
            raise ApiError(400, "bad_parameter", "a layout name has 1 to 100 characters")
        return name

    async def list(self, request: web.Request) -> web.Response:
        user = require(request, Permission.LIVE)
        rows = await asyncio.to_thread(self.layouts.visible, user.name)
        return web.json_response([r.to_json() for r in rows])

    async def put(self, request: web.Request) -> web.Response:
        user = require(request, Permission.LIVE)
        name = self._name(request)
        body = await json_body(request)
        unknown = set(body) - {"layout", "shared"}
        if unknown:
            raise ApiError(400, "bad_parameter", f"unknown field(s) {', '.join(sorted(unknown))}")
        layout, shared = body.get("layout"), body.get("shared", False)
        if not isinstance(layout, dict):
            raise ApiError(400, "bad_parameter", "layout must be a JSON object")
        if not isinstance(shared, bool):
            raise ApiError(400, "bad_parameter", "shared must be true or false")
        if len(json.dumps(layout)) > MAX_LAYOUT_BYTES:
            raise ApiError(400, "bad_parameter", "layout too large")
        if shared:
            require(request, Permission.CONFIG)  # a layout every user sees is a setting
        row = LayoutRow(user.name, name, shared, layout, self.clock.now_us())

        def work() -> None:
            before = self.layouts.get(user.name, name)
            self.layouts.put(row)
            if shared or (before is not None and before.shared):  # what every user sees changed
                self.sec.record(request, CONFIG_CHANGE, name, {"layout_shared": shared})

        await asyncio.to_thread(work)
        return web.json_response(row.to_json())

    async def delete(self, request: web.Request) -> web.Response:
        user = request[USER]
        require(request, Permission.LIVE)
        name = self._name(request)
        owner = request.query.get("owner", user.name)
        if owner.lower() != user.name.lower():
            require(request, Permission.CONFIG)  # admins tidy up others' shared layouts

        def work() -> bool:
            before = self.layouts.get(owner, name)
            if not self.layouts.delete(owner, name):
                return False
            if before is not None and before.shared:
                self.sec.record(request, CONFIG_CHANGE, name, {"layout_deleted": owner})
            return True

        if not await asyncio.to_thread(work):
            raise ApiError(404, "not_found", f"no layout {name!r} of {owner}")
        return web.Response(status=204)
