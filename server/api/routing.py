"""Route tables: each route group declares its routes once, as data (method, path, handler,
request and response types, query parameters, permission, summary). ``make_app`` registers
them and ``openapi.py`` documents them from the same rows, so the two cannot drift."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from aiohttp import web

API = "/api/v1"

Handler = Callable[..., Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Param:
    """A query (or path) parameter; ``type`` is a Python type whose JSON Schema documents it
    (constrained types from ``server.protocol.models.common`` keep the limits in one place)."""

    name: str
    type: Any = str
    required: bool = False
    description: str = ""
    where: Literal["query", "path"] = "query"


@dataclass(frozen=True)
class Media:
    """A body that is not JSON only, or not JSON at all: media type -> a JSON Schema, or a type
    whose schema is generated."""

    content: Mapping[str, Any]
    description: str = "OK"
    headers: Mapping[str, str] = field(default_factory=dict)  # name -> description

    def with_headers(self, **headers: str) -> Media:
        return Media(self.content, self.description, headers)

    @classmethod
    def binary(cls, *types: str, description: str = "OK") -> Media:
        return cls({t: {"type": "string", "format": "binary"} for t in types}, description)

    @classmethod
    def text(cls, *types: str, description: str = "OK") -> Media:
        return cls({t: {"type": "string"} for t in types}, description)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    body: Any = None  # request: a Struct type (JSON), a Media, or None
    returns: Any = None  # response: a type (JSON), a Media, or None (an empty body)
    status: int = 200
    errors: tuple[int, ...] = ()  # statuses answered with an Error body (401/403 implied)
    params: tuple[Param, ...] = ()
    permission: str = ""  # the right it needs ("public": no token at all)
    more: Mapping[int, Any] = field(default_factory=dict)  # other successes (206)

    @property
    def public(self) -> bool:
        return self.permission == "public"

    def path_names(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


class RouteGroup:
    """A group of routes over the dependencies its constructor takes."""

    ROUTES: ClassVar[tuple[Route, ...]] = ()

    def add_to(self, router: web.UrlDispatcher) -> None:
        for route in self.ROUTES:
            router.add_route(route.method, route.path, route.handler.__get__(self, type(self)))
