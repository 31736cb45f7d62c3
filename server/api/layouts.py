"""``/layouts``: the workstation's named wall layouts, kept per user (shared ones by admins)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

from aiohttp import web
from msgspec import Meta

from server.api.auth import USER, Security, require
from server.api.bodies import decode_body, json_response
from server.api.errors import ApiError
from server.api.routing import API, Param, Route, RouteGroup
from server.auth import Permission
from server.auth.audit import CONFIG_CHANGE
from server.catalog.layouts import LayoutRow, Layouts
from server.clock import Clock
from server.protocol.models import Layout, LayoutInput

LayoutName = Annotated[str, Meta(min_length=1, max_length=100)]

MAX_LAYOUT_BYTES = 60_000


def _layout(row: LayoutRow) -> Layout:
    return Layout(row.owner, row.name, row.shared, row.layout, row.updated_us)


class LayoutRoutes(RouteGroup):
    def __init__(self, layouts: Layouts, security: Security, clock: Clock) -> None:
        self.layouts, self.sec, self.clock = layouts, security, clock

    @staticmethod
    def _name(request: web.Request) -> str:
        name = request.match_info["name"].strip()
        if not 1 <= len(name) <= 100:
            raise ApiError(400, "bad_parameter", "a layout name has 1 to 100 characters")
        return name

    async def list_layouts(self, request: web.Request) -> web.Response:
        user = require(request, Permission.LIVE)
        rows = await asyncio.to_thread(self.layouts.visible, user.name)
        return json_response([_layout(r) for r in rows])

    async def put(self, request: web.Request) -> web.Response:
        user = require(request, Permission.LIVE)
        name = self._name(request)
        body = await decode_body(request, LayoutInput, "bad_parameter")
        layout, shared = body.layout, body.shared
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
        return json_response(_layout(row))

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

    LAYOUT = f"{API}/layouts/{{name}}"
    NAME = Param("name", LayoutName, where="path")
    ROUTES = (
        Route("GET", f"{API}/layouts", list_layouts,
              "The user's wall layouts and the shared ones", returns=list[Layout],
              permission=Permission.LIVE),
        Route("PUT", LAYOUT, put, "Save a wall layout (shared ones need the config right)",
              params=(NAME,), body=LayoutInput, returns=Layout, permission=Permission.LIVE),
        Route("DELETE", LAYOUT, delete, "Delete a wall layout", status=204, errors=(404,),
              params=(NAME, Param("owner", str, description="another user's (admins)")),
              permission=Permission.LIVE),
    )  # fmt: skip
