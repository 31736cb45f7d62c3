"""Finding ONVIF cameras: a WS-Discovery probe on the configured interfaces, plus unicast
probes to hosts typed in for networks that multicast does not reach (docs/design/cameras.md).
Adding one is ``POST /cameras`` with its ``onvif`` address; its profiles are
``POST /cameras/probe``."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Annotated
from urllib.parse import urlsplit

from aiohttp import web
from msgspec import Meta

from server.api.auth import require
from server.api.bodies import json_response
from server.api.errors import ApiError
from server.api.routing import API, Param, Route, RouteGroup
from server.auth import Permission
from server.catalog import Catalog
from server.catalog.onvif import CameraOnvif
from server.config import OnvifConfig
from server.onvif.discovery import interface_addresses, probe
from server.protocol.models import DiscoveredDevice

TIMEOUT = Param(
    "timeout_ms", Annotated[int, Meta(ge=100, le=10_000)], description="default from [onvif]"
)
HOST = Param("host", str, description="also probe this IPv4 host directly (unicast)")


def _host_port(address: str) -> tuple[str, int]:
    parts = urlsplit(address)
    try:
        return (parts.hostname or "", parts.port or 80)
    except ValueError:
        return (parts.hostname or "", 80)


class DiscoveryRoutes(RouteGroup):
    def __init__(self, catalog: Catalog, config: OnvifConfig) -> None:
        self.onvif, self.config = CameraOnvif(catalog), config

    async def discover(self, request: web.Request) -> web.Response:
        require(request, Permission.CONFIG)
        timeout_s = TIMEOUT.read_int(request, int(self.config.discovery_timeout_s * 1000)) / 1000
        host = request.query.get("host")
        unicast = []
        if host:
            try:
                unicast.append(str(ipaddress.IPv4Address(host)))
            except ValueError:
                raise ApiError(400, "bad_parameter", "host must be an IPv4 address") from None
        interfaces = list(self.config.discovery_interfaces) or await asyncio.to_thread(
            interface_addresses
        )
        found = await probe(interfaces, timeout_s, unicast)
        known = await asyncio.to_thread(self.onvif.addresses)
        added = {_host_port(a): cid for cid, a in known.items()}
        return json_response(
            [
                DiscoveredDevice(
                    address=d.address,
                    endpoint=d.endpoint,
                    name=d.name,
                    manufacturer=d.manufacturer,
                    model=d.model,
                    mac=d.mac,
                    seen_from=d.seen_from,
                    scopes=d.scopes,
                    camera_id=added.get(_host_port(d.address)),
                )
                for d in found
            ]
        )

    ROUTES = (
        Route("GET", f"{API}/discovery/onvif", discover,
              "ONVIF devices answering a WS-Discovery probe, and whether each is added",
              params=(TIMEOUT, HOST), returns=list[DiscoveredDevice],
              permission=Permission.CONFIG),
    )  # fmt: skip
