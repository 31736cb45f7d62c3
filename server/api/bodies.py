"""JSON bodies in and out through the ``server.protocol.models`` Structs: strict decoding
(a wrong type, an unknown or a missing field is a 400 naming the field) and encoding."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from server.api.errors import ApiError

T = TypeVar("T")


MAX_DEPTH = 32
"""Deepest nesting of arrays and objects in a request body: no body needs more, and deeper
ones would exhaust the decoder's recursion (a 500 before issue 19)."""

_STRUCTURE = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in ``raw`` (strings skipped), found without
    decoding; only a body with more brackets than ``MAX_DEPTH`` is scanned at all."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return 0
    depth = deepest = 0
    for m in _STRUCTURE.finditer(raw):
        token = m.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


async def decode_body(
    request: web.Request, kind: type[T], code: str = "bad_request", *, json_only: bool = False
) -> T:
    """The request's JSON object as ``kind``; ``code`` is the route's error code for a body
    that is JSON but not a valid ``kind`` (malformed JSON is always ``bad_json``).

    ``json_only``: refuse any other content type with 415 (login: a cross-site HTML form can
    post ``text/plain`` or form data, never ``application/json``, without a CORS preflight)."""
    if json_only and request.content_type != "application/json":
        raise ApiError(
            415, "unsupported_media_type", "send the body as Content-Type: application/json"
        )
    raw = await request.read()
    if json_depth(raw) > MAX_DEPTH:
        raise ApiError(400, "bad_json", f"request body nests deeper than {MAX_DEPTH} levels")
    try:
        value = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
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
