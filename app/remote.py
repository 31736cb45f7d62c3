"""What the workstation's recorder models share: one call on the network loop, as a Future.

Widgets never hold the HTTP client (``tests/test_ui_no_http.py`` checks it): they ask a model
in ``app/`` (cameras, users, analytics, events, layouts, ...) and get a
``concurrent.futures.Future`` back, which ``ui.bridge`` turns into a call on the Qt thread. Every
call goes through ``Session.call``, so an expired token is renewed once and the call retried.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from app.api import ApiClient, ApiError
from app.session import Session

__all__ = ["ApiError", "RemoteModel"]

T = TypeVar("T")


class RemoteModel:
    """Base of the models of one recorder: ``_call`` runs ``fn(api)`` on the session's loop."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _call(self, fn: Callable[[ApiClient], Awaitable[T]]) -> concurrent.futures.Future[T]:
        return self.session.runner.submit(self.session.call(fn))

    def _run(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return self.session.runner.submit(coro)
