"""The one way engine events reach widgets: run callables on the Qt (GUI) thread.

The engine's ``app.signals.Signal`` callbacks fire on the network loop or decoder threads, and
Qt widgets may only be touched on the GUI thread. ``Bridge`` queues callables to the thread that
owns it through a queued Qt signal, so the call order of ``post`` is kept.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal

from app.signals import Signal as AppSignal

log = logging.getLogger(__name__)
T = TypeVar("T")


class Bridge(QObject):
    """Runs callables on the Qt thread; the one way app events reach widgets."""

    _posted = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._posted.connect(self._run, Qt.ConnectionType.QueuedConnection)

    def post(self, fn: Callable[[], None]) -> None:
        """Queue ``fn`` to run on the GUI thread (thread-safe; runs later even from the GUI)."""
        self._posted.emit(fn)

    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` now when already on the GUI thread, else queue it."""
        if QThread.currentThread() is self.thread():
            self._run(fn)
        else:
            self.post(fn)

    def connect(self, signal: AppSignal[T], slot: Callable[[T], None]) -> Callable[[], None]:
        """Subscribe ``slot`` to an app Signal; it runs on the Qt thread. Returns disconnect.

        After disconnect no queued call reaches ``slot`` (a widget being deleted is safe).
        """
        alive = [True]

        def deliver(value: T) -> None:
            if alive[0]:
                slot(value)

        def forward(value: T) -> None:
            self.post(lambda: deliver(value))

        disconnect_signal = signal.connect(forward)

        def disconnect() -> None:
            alive[0] = False
            disconnect_signal()

        return disconnect

    def run(
        self,
        work: Callable[[], T],
        done: Callable[[concurrent.futures.Future[T]], None] | None = None,
    ) -> concurrent.futures.Future[T]:
        """Run blocking ``work`` (a login, a REST call) off the Qt thread; ``done(future)``
        then runs on the Qt thread (read ``future.result()`` there; it raises what work did)."""
        future = _workers().submit(work)
        if done is not None:
            future.add_done_callback(lambda f: self.post(lambda: done(f)))
        return future

    def _run(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:
            log.exception("bridge: posted callable %r failed", fn)


_lock = threading.Lock()
_instance: Bridge | None = None
_pool: concurrent.futures.ThreadPoolExecutor | None = None


def _workers() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="vigia-ui-work")
        return _pool


def bridge() -> Bridge:
    """The process-wide Bridge, living on the QApplication's thread (create the app first)."""
    global _instance
    with _lock:
        if _instance is None:
            app = QCoreApplication.instance()
            if app is None:
                raise RuntimeError("bridge() needs a QApplication first")
            instance = Bridge()
            if instance.thread() is not app.thread():
                instance.moveToThread(app.thread())
            _instance = instance
        return _instance
