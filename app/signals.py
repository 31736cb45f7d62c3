"""A tiny observer for the engine's models, so the UI can connect Qt slots without Qt here.

Callbacks run synchronously on the emitting thread (often the network loop's); a UI that needs
its own thread marshals there itself (e.g. a queued Qt signal).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class Signal(Generic[T]):
    """Synchronous observer list; callbacks run on the emitting thread (the UI marshals to Qt)."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[T], None]] = []

    def connect(self, callback: Callable[[T], None]) -> Callable[[], None]:
        """Add ``callback``; returns a function that disconnects it (safe to call twice)."""
        with self._lock:
            self._callbacks = [*self._callbacks, callback]  # copy-on-write, see disconnect

        def disconnect() -> None:
            self.disconnect(callback)

        return disconnect

    def disconnect(self, callback: Callable[[T], None]) -> None:
        with self._lock:
            # copy-on-write: an emit in progress keeps iterating its own snapshot
            self._callbacks = [cb for cb in self._callbacks if cb is not callback]

    def emit(self, value: T) -> None:
        """Call every callback; a failing callback is logged and never breaks the emitter."""
        with self._lock:
            callbacks = self._callbacks
        for callback in callbacks:
            try:
                callback(value)
            except Exception:
                log.exception("signal %s: callback %r failed", self.name or "?", callback)

    def __len__(self) -> int:
        with self._lock:
            return len(self._callbacks)
