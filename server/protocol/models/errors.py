"""The error body every 4xx/5xx carries."""

from __future__ import annotations

import msgspec


class ErrorDetail(msgspec.Struct):
    code: str
    message: str


class Error(msgspec.Struct):
    """``{"error": {"code", "message"}}``: ``code`` is stable for programs, ``message`` is for
    people (for a bad body it names the field)."""

    error: ErrorDetail
