"""The OpenAPI 3.1 document of the recorder, generated: paths from the route groups' tables
(``routing.Route``), ``components.schemas`` from the ``server.protocol.models`` Structs by
``msgspec.json.schema_components``. Nothing here is written by hand twice."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

import msgspec

from server import __version__
from server.api.analytics import AnalyticsRoutes
from server.api.archive import ArchiveRoutes
from server.api.auth import AuthRoutes
from server.api.bookmarks import BookmarkRoutes
from server.api.cameras import CameraRoutes
from server.api.discovery import DiscoveryRoutes
from server.api.exports import ExportRoutes
from server.api.layouts import LayoutRoutes
from server.api.ptz import PtzRoutes
from server.api.recordings import RecordingRoutes
from server.api.routing import Media, Param, Route, RouteGroup
from server.api.rules import RuleRoutes
from server.api.server import ServerRoutes, ViewerRoutes
from server.api.users import UserRoutes
from server.api.whep import WhepRoutes
from server.protocol.models import Error

REF = "#/components/schemas/{name}"

# every group of the API, in the order make_app registers them
GROUPS: tuple[type[RouteGroup], ...] = (
    ServerRoutes,
    ViewerRoutes,
    AuthRoutes,
    UserRoutes,
    CameraRoutes,
    PtzRoutes,
    DiscoveryRoutes,
    RecordingRoutes,
    BookmarkRoutes,
    ExportRoutes,
    LayoutRoutes,
    AnalyticsRoutes,
    WhepRoutes,
    RuleRoutes,
    ArchiveRoutes,
)

ERRORS = {
    400: "Bad request (the message names the parameter or field)",
    401: "Not logged in (missing, unknown or expired token)",
    403: "The user lacks the right (role or camera)",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Body too large",
    415: "Unsupported media type",
    416: "Range not satisfiable",
    422: "Refused (the message says why)",
    429: "Too many failed logins",
    502: "The camera or the archive's object store did not answer, or refused (see message)",
    503: "The service behind the route is not running on this recorder",
}


def all_routes() -> list[Route]:
    return [route for group in GROUPS for route in group.ROUTES]


@cache
def openapi_document() -> dict:
    return build_document(all_routes())


def build_document(routes: Iterable[Route]) -> dict:
    routes = list(routes)
    types: list[Any] = [Error]
    for r in routes:
        for t in (r.body, r.returns, *r.more.values()):
            if isinstance(t, Media):
                types.extend(v for v in t.content.values() if not isinstance(v, Mapping))
            elif t is not None:
                types.append(t)
        types.extend(p.type for p in r.params)
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)

    def schema_of(t: Any) -> dict:
        return schemas[types.index(t)]

    def content(t: Any, description: str) -> dict:
        if t is None:
            return {"description": description}
        if isinstance(t, Media):
            out: dict = {"description": t.description, "content": _media(t, schema_of)}
            if t.headers:
                out["headers"] = {
                    k: {"description": v, "schema": {"type": "string"}}
                    for k, v in t.headers.items()
                }
            return out
        return {
            "description": description,
            "content": {"application/json": {"schema": schema_of(t)}},
        }

    error = {"application/json": {"schema": {"$ref": REF.format(name="Error")}}}
    paths: dict[str, dict] = {}
    for r in routes:
        given = {p.name: p for p in r.params}
        params = [
            _param(given.get(name, Param(name, where="path")), schema_of, "path")
            for name in r.path_names()
        ]
        params += [_param(p, schema_of, "query") for p in r.params if p.where == "query"]
        op: dict[str, Any] = {"summary": r.summary}
        if r.permission and not r.public:
            op["description"] = f"Needs the `{r.permission}` right."
            op["x-permission"] = r.permission
        if params:
            op["parameters"] = params
        if r.body is not None:
            body = (
                _media(r.body, schema_of)
                if isinstance(r.body, Media)
                else {"application/json": {"schema": schema_of(r.body)}}
            )
            op["requestBody"] = {"required": True, "content": body}
        responses = {str(r.status): content(r.returns, "OK")}
        responses.update({str(s): content(t, "OK") for s, t in r.more.items()})
        codes = set(r.errors) | ({400} if r.body is not None or params else set())
        if not r.public:
            codes |= {401, 403}
        for code in sorted(codes):
            responses[str(code)] = {"description": ERRORS[code], "content": error}
        op["responses"] = responses
        if r.public:
            op["security"] = []
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Vigia recorder API", "version": __version__},
        "paths": paths,
        "security": [{"bearer": []}],
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _media(m: Media, schema_of) -> dict:
    return {
        t: {"schema": dict(s) if isinstance(s, Mapping) else schema_of(s)}
        for t, s in m.content.items()
    }


def _param(p: Param, schema_of, where: str) -> dict:
    out = {"name": p.name, "in": where, "required": where == "path" or p.required}
    out["schema"] = schema_of(p.type)
    if p.description:
        out["description"] = p.description
    return out
