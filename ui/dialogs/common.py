"""Shared parts of the settings and export dialogs: recorder calls off the Qt thread, a status
line for busy/ok/error, texts that follow a language switch, and a recorder picker.

Dialogs never wait on the network: a call goes to a model of ``app/`` (its Future runs on the
workstation's loop) or to a small worker pool (blocking engine calls such as
``Workstation.connect``), and its result comes back to the Qt thread through ``ui.bridge``.
A result for a widget deleted meanwhile is dropped.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import shiboken6
from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import QComboBox, QLabel, QWidget

from app.remote import ApiError
from app.session import Session
from app.workstation import Workstation
from ui.bridge import bridge
from ui.theme import DARK

log = logging.getLogger(__name__)
T = TypeVar("T")

_pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="vigia-dialogs")


def describe(exc: BaseException) -> str:
    """An error in words for an inline message."""
    if isinstance(exc, ApiError):
        return exc.message if exc.status in (0, 400, 409, 422) else f"{exc.message} ({exc.status})"
    if isinstance(exc, TimeoutError | concurrent.futures.TimeoutError):
        return QCoreApplication.translate("Dialogs", "No answer in time")
    return str(exc) or type(exc).__name__


class Tasks(QObject):
    """Runs work off the Qt thread and calls back on it; ``busy_changed`` while any runs."""

    busy_changed = Signal(bool)

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self.pending = 0

    def future(
        self,
        future: concurrent.futures.Future[T],
        ok: Callable[[T], None],
        error: Callable[[BaseException], None],
    ) -> concurrent.futures.Future[T]:
        """Follow a model's call (``app.remote``): ``ok`` or ``error`` on the Qt thread."""
        return self._track(future, ok, error)

    def blocking(
        self, fn: Callable[[], T], ok: Callable[[T], None], error: Callable[[BaseException], None]
    ) -> concurrent.futures.Future[T]:
        """A blocking engine call (it may wait on the loop itself) on a worker thread."""
        return self._track(_pool.submit(fn), ok, error)

    def _track(
        self,
        future: concurrent.futures.Future[T],
        ok: Callable[[T], None],
        error: Callable[[BaseException], None],
    ) -> concurrent.futures.Future[T]:
        self.pending += 1
        if self.pending == 1:
            self.busy_changed.emit(True)
        post = bridge().post

        def done(f: concurrent.futures.Future[T]) -> None:
            post(lambda: self._finish(f, ok, error))

        future.add_done_callback(done)
        return future

    def _finish(
        self,
        f: concurrent.futures.Future[T],
        ok: Callable[[T], None],
        error: Callable[[BaseException], None],
    ) -> None:
        if not shiboken6.isValid(self):
            return  # the dialog went away meanwhile
        self.pending -= 1
        if self.pending == 0:
            self.busy_changed.emit(False)
        if f.cancelled():
            return
        exc = f.exception()
        if exc is not None:
            log.info("dialog call failed: %s", exc)
            error(exc)
        else:
            ok(f.result())


class StatusLine(QLabel):
    """One line under a form: what is happening, what worked, or what went wrong."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setObjectName("statusLine")
        self.kind = ""

    def _show(self, kind: str, text: str, color: str) -> None:
        self.kind = kind
        self.setStyleSheet(f"color: {color};")
        self.setText(text)

    def busy(self, text: str) -> None:
        self._show("busy", text, DARK.text_dim)

    def ok(self, text: str) -> None:
        self._show("ok", text, "#5cb85c")

    def error(self, text: str) -> None:
        self._show("error", text, DARK.alarm)

    def clear_status(self) -> None:
        self._show("", "", DARK.text)


class Texts:
    """Widget texts bound to their English source, set again when the language changes."""

    def __init__(self, context: str) -> None:
        self.context = context
        self._bound: list[tuple[Callable[[str], None], str]] = []

    def tr(self, source: str) -> str:
        return QCoreApplication.translate(self.context, source)

    def bind(self, setter: Callable[[str], None], source: str) -> None:
        setter(self.tr(source))
        self._bound.append((setter, source))

    def label(self, source: str) -> QLabel:
        label = QLabel()
        self.bind(label.setText, source)
        return label

    def retranslate(self) -> None:
        for setter, source in self._bound:
            setter(self.tr(source))


class Page(QWidget):
    """A settings page. ``title`` is the English source of its name in the page list."""

    title = ""
    context = "SettingsDialog"

    def __init__(self, workstation: Workstation, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = workstation
        self.texts = Texts(self.context)
        self.tasks = Tasks(self)
        self.status = StatusLine(self)
        self.tasks.busy_changed.connect(self._on_busy)
        self._unhook: list[Callable[[], None]] = []

    def tr_(self, source: str) -> str:
        return self.texts.tr(source)

    def activate(self) -> None:
        """The page was shown: read what it displays again."""

    def retranslate(self) -> None:
        self.texts.retranslate()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def hook(self, signal: Any, slot: Callable[[Any], None]) -> None:
        """Follow an app Signal on the Qt thread until the page closes."""
        self._unhook.append(bridge().connect(signal, slot))

    def release(self) -> None:
        for undo in self._unhook:
            undo()
        self._unhook.clear()

    def _on_busy(self, busy: bool) -> None:
        shape = Qt.CursorShape.BusyCursor if busy else Qt.CursorShape.ArrowCursor
        self.setCursor(shape)

    def fail(self, exc: BaseException) -> None:
        self.status.error(describe(exc))


class RecorderPicker(QComboBox):
    """The logged-in recorders; pages about one recorder's configuration start here."""

    def __init__(self, workstation: Workstation, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = workstation
        self.reload()

    def reload(self) -> None:
        current = self.currentData()
        self.blockSignals(True)
        self.clear()
        for s in sorted(self.ws.sessions.sessions(), key=lambda s: s.name.lower()):
            self.addItem(f"{s.name} ({s.base_url})", s.server_id)
        index = self.findData(current) if current else 0
        self.setCurrentIndex(max(0, index))
        self.blockSignals(False)
        if self.currentData() != current:
            self.currentIndexChanged.emit(self.currentIndex())

    def session(self) -> Session | None:
        sid = self.currentData()
        return self.ws.session(sid) if sid else None

    def select(self, server_id: str) -> None:
        index = self.findData(server_id)
        if index >= 0:
            self.setCurrentIndex(index)
