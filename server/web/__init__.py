"""The web viewer: a static page (HTML, JS, CSS; no build step) served by the recorder at ``/``.

It logs in over the API, lists the cameras with snapshots and plays them live over WHEP. The
files ship as package data and are read once with ``importlib.resources``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import cache
from importlib import resources

from aiohttp import web

FILES = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "style.css": "text/css",
}
PREFIX = "/web/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


@cache
def _read(name: str) -> bytes:
    return resources.files(__name__).joinpath(name).read_bytes()


def is_viewer_path(path: str) -> bool:
    """The page and its files need no token: the page is how one logs in."""
    return path == "/" or path.startswith(PREFIX)  # unknown names get a plain 404


def public_viewer(auth: Middleware) -> Middleware:
    """Wrap the API's token middleware so that the viewer's own files are public."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_viewer_path(request.path):  # other methods get the router's 405
            return await handler(request)
        return await auth(request, handler)

    return middleware


def _response(name: str) -> web.Response:
    return web.Response(
        body=_read(name),
        content_type=FILES[name],
        charset="utf-8",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


async def index(request: web.Request) -> web.Response:
    return _response("index.html")


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in FILES:
        raise web.HTTPNotFound(text=f"no file {name!r}")
    return _response(name)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/", index)
    router.add_get(PREFIX + "{name}", asset)
