"""Route tables: each route group declares its routes once, as data (method, path, handler,
request and response types, query parameters, permission, summary). ``make_app`` registers
them and ``openapi.py`` documents them from the same rows, so the two cannot drift."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import msgspec
from aiohttp import web

from server.api.errors import ApiError

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

    def read_int(self, request: web.Request, default: int | None = None) -> int:
        """The integer query parameter, checked against the limits of ``type`` (the ones the
        document shows): 400 ``missing_parameter`` or ``bad_parameter`` otherwise."""
        raw = request.query.get(self.name)
        if raw is None:
            if default is None:
                raise ApiError(
                    400, "missing_parameter", f"query parameter {self.name!r} is required"
                )
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ApiError(400, "bad_parameter", f"{self.name} must be an integer") from None
        try:
            return msgspec.convert(value, self.type)
        except msgspec.ValidationError as exc:
            raise ApiError(400, "bad_parameter", f"{self.name} is out of range: {exc}") from None


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
