"""The web viewer: a static page (HTML, JS, CSS; no build step) served by the recorder at ``/``.

It logs in over the API, lists the cameras with snapshots and plays them live over WHEP. The
files ship as package data and are read once with ``importlib.resources``.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
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


SECURITY_HEADERS = {
    # the page loads its own script and style only, talks to its own origin only (API, WHEP)
    # and shows snapshots as blob: URLs; nobody frames it (clickjacking) and no address leaks
    # in a Referer header (docs/design/api.md)
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:;"
        " media-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none';"
        " frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def own_host_names() -> frozenset[str]:
    """This machine's names, as a browser on the LAN may type them."""
    names = {"localhost"}
    for name in (socket.gethostname(), socket.getfqdn()):
        if name:
            names |= {name.lower(), name.lower().split(".")[0] + ".local"}
    return frozenset(names)


def host_allowed(host: str | None, allowed: Iterable[str]) -> bool:
    """Whether a request's ``Host`` is an IP address, this machine or a configured name: a
    page of another site whose name was re-pointed at this recorder (DNS rebinding) is not."""
    if not host:
        return False
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]").rstrip(".").lower()
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    return name in own_host_names() or name in {a.rstrip(".").lower() for a in allowed}


def public_viewer(auth: Middleware, allowed_hosts: Iterable[str] = ()) -> Middleware:
    """Wrap the API's token middleware so that the viewer's own files are public (from a
    ``Host`` this recorder answers to, with the security headers)."""
    allowed = tuple(allowed_hosts)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_viewer_path(request.path):  # other methods get the router's 405
            if not host_allowed(request.host, allowed):
                raise web.HTTPMisdirectedRequest(
                    text="unknown Host: add it to [server] allowed_hosts"
                )
            response = await handler(request)
            response.headers.update(SECURITY_HEADERS)
            return response
        return await auth(request, handler)

    return middleware


def _response(name: str) -> web.Response:
    return web.Response(
        body=_read(name),
        content_type=FILES[name],
        charset="utf-8",
        headers={"Cache-Control": "no-cache", **SECURITY_HEADERS},
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
