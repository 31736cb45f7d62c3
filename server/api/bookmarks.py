"""Bookmarks: named, optionally locked time ranges of a camera (retention keeps locked ones)."""

from __future__ import annotations

import asyncio

import msgspec
from aiohttp import web

from server.api.auth import Security, require
from server.api.bodies import decode_body, json_response
from server.api.errors import ApiError
from server.api.lookups import WINDOW, find_camera, id_param, window
from server.api.routing import API, Param, Route, RouteGroup
from server.auth import Permission, Role, can_see
from server.auth.audit import BOOKMARK_CHANGE
from server.catalog import Catalog
from server.clock import Clock
from server.protocol.models import UNSET, Bookmark, BookmarkInput, BookmarkPatch
from server.protocol.models.recordings import MAX_LOCK_US

LOCK_MARGIN_US = 3600 * 1_000_000
"""A locked window may end at most this far past now (clock skew between camera and server)."""


class BookmarkRoutes(RouteGroup):
    def __init__(self, catalog: Catalog, clock: Clock, security: Security) -> None:
        self.catalog, self.clock, self.sec = catalog, clock, security

    async def list_bookmarks(self, request: web.Request) -> web.Response:
        start, end = window(request)
        camera_id = request.query.get("camera")
        user = require(request, Permission.ARCHIVE, camera_id)
        rows = await asyncio.to_thread(self.catalog.bookmarks, camera_id, start, end)
        seen = [b for b in rows if can_see(user, b["camera_id"])]
        return json_response(msgspec.convert(seen, list[Bookmark]))

    async def create_bookmark(self, request: web.Request) -> web.Response:
        body = await decode_body(request, BookmarkInput)
        user = require(request, Permission.BOOKMARKS, body.camera)
        if body.locked and body.end_us > self.clock.now_us() + LOCK_MARGIN_US:
            raise ApiError(400, "bad_request", "a locked bookmark cannot end in the future")

        def work() -> Bookmark:
            find_camera(self.catalog, body.camera)
            bid = self.catalog.add_bookmark(
                body.camera,
                body.start_us,
                body.end_us,
                name=body.name,
                locked=body.locked,
                description=body.description,
                now_us=self.clock.now_us(),
                created_by=user.name,
            )
            detail = {
                "op": "create",
                "id": bid,
                "locked": body.locked,
                "start_us": body.start_us,
                "end_us": body.end_us,
            }
            self.sec.record(request, BOOKMARK_CHANGE, body.camera, detail)
            return msgspec.convert(self.catalog.bookmark(bid), Bookmark)

        return json_response(await asyncio.to_thread(work), status=201)

    async def update_bookmark(self, request: web.Request) -> web.Response:
        bid = id_param(request, "bookmark_id", "bookmark")
        body = await decode_body(request, BookmarkPatch)
        mark = await asyncio.to_thread(self.catalog.bookmark, bid)
        if mark is None:
            raise ApiError(404, "not_found", f"no bookmark {bid}")
        user = require(request, Permission.BOOKMARKS, mark["camera_id"])
        admin = user.role == Role.ADMIN
        edits = body.name is not UNSET or body.description is not UNSET
        if not admin:
            if mark["locked"] and (body.locked is False or edits):
                raise ApiError(
                    403, "forbidden", f"bookmark {bid} is locked: only an admin changes it"
                )
            if edits and mark["created_by"] != user.name:
                raise ApiError(403, "forbidden", f"bookmark {bid} is {mark['created_by']}'s")
        if body.locked is True and not mark["locked"]:
            span = mark["end_us"] - mark["start_us"]
            if span > MAX_LOCK_US or mark["end_us"] > self.clock.now_us() + LOCK_MARGIN_US:
                raise ApiError(
                    400, "bad_request", "a locked bookmark spans at most 7 days, not the future"
                )
        changes = {
            k: getattr(body, k)
            for k in ("name", "description", "locked")
            if getattr(body, k) is not UNSET
        }

        def work() -> Bookmark:
            self.catalog.update_bookmark(bid, **changes)
            detail = {
                "op": "update",
                "id": bid,
                "fields": sorted(changes),
                "locked": changes.get("locked", mark["locked"]),
                "was_locked": mark["locked"],
            }
            self.sec.record(request, BOOKMARK_CHANGE, mark["camera_id"], detail)
            return msgspec.convert(self.catalog.bookmark(bid), Bookmark)

        return json_response(await asyncio.to_thread(work))

    async def delete_bookmark(self, request: web.Request) -> web.Response:
        bid = id_param(request, "bookmark_id", "bookmark")
        mark = await asyncio.to_thread(self.catalog.bookmark, bid)
        if mark is None:
            raise ApiError(404, "not_found", f"no bookmark {bid}")
        user = require(request, Permission.BOOKMARKS, mark["camera_id"])
        if mark["locked"] and user.role != Role.ADMIN:
            # evidence: a locked bookmark is removed by an admin only, its owner included
            # (docs/design/auth.md)
            raise ApiError(403, "forbidden", f"bookmark {bid} is locked: only an admin deletes it")
        await asyncio.to_thread(self.catalog.delete_bookmark, bid)
        detail = {
            "op": "delete",
            "id": bid,
            "locked": mark["locked"],
            "created_by": mark["created_by"],
            "start_us": mark["start_us"],
            "end_us": mark["end_us"],
        }
        await asyncio.to_thread(
            self.sec.record, request, BOOKMARK_CHANGE, mark["camera_id"], detail
        )
        return web.Response(status=204)

    ROUTES = (
        Route("GET", f"{API}/bookmarks", list_bookmarks, "Bookmarks overlapping a window",
              params=(*WINDOW, Param("camera", str, description="one camera's only")),
              returns=list[Bookmark], permission=Permission.ARCHIVE),
        Route("POST", f"{API}/bookmarks", create_bookmark, "Bookmark a time range",
              body=BookmarkInput, returns=Bookmark, status=201, errors=(404,),
              permission=Permission.BOOKMARKS),
        Route("PATCH", f"{API}/bookmarks/{{bookmark_id}}", update_bookmark,
              "Lock a bookmark, or rename it (unlocking and changing a locked one: admins)",
              params=(Param("bookmark_id", int, where="path"),), body=BookmarkPatch,
              returns=Bookmark, errors=(400, 404), permission=Permission.BOOKMARKS),
        Route("DELETE", f"{API}/bookmarks/{{bookmark_id}}", delete_bookmark,
              "Delete a bookmark (a locked one: admins only)",
              params=(Param("bookmark_id", int, where="path"),),
              status=204, errors=(400, 403, 404), permission=Permission.BOOKMARKS),
    )  # fmt: skip
