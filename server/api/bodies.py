"""JSON bodies in and out through the ``server.protocol.models`` Structs: strict decoding
(a wrong type, an unknown or a missing field is a 400 naming the field) and encoding."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from aiohttp import web

from server.api.errors import ApiError

T = TypeVar("T")


async def decode_body(request: web.Request, kind: type[T], code: str = "bad_request") -> T:
    """The request's JSON object as ``kind``; ``code`` is the route's error code for a body
    that is JSON but not a valid ``kind`` (malformed JSON is always ``bad_json``)."""
    raw = await request.read()
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise ApiError(400, "bad_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "bad_json", "request body must be a JSON object")
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise ApiError(400, code, str(exc)) from None


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(value), status=status, content_type="application/json"
    )
