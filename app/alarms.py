"""Alarms on the workstation (docs/design/rules.md): the alarm list of every logged-in recorder,
live over NATS, most urgent first, and acknowledge/close with a comment.

``AlarmList`` is the state (pure, any thread under its lock): an alarm is in it while it is
``new``; acknowledged or closed anywhere, it leaves, so every workstation shows the same list.
``AlarmFeed`` fills it: ``refresh`` reads ``GET /alarms`` of every recorder, and the
``vigia.<sid>.alarms.<camera>`` subjects of the cameras each recorder lists bring every change
(the subscriptions follow the recorders the way ``EventFeed`` does). ``changed`` fires on the
network loop with the new list; the alarm console marshals it to its thread. It also fires
manual rules (``GET /manual-triggers``, ``POST /rules/{id}/trigger``) and reads the
notifications given up (``GET /deliveries/failed``, admins).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from dataclasses import dataclass
from typing import Any

import msgspec

from app.events import EventFeed
from app.loop import AsyncRunner
from app.session import Session, Sessions
from app.signals import Signal
from server.protocol.live import alarms_subject
from server.protocol.models.rules import Alarm, Delivery, ManualRule

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AlarmItem:
    server_id: str
    alarm: Alarm

    @property
    def key(self) -> tuple[str, int]:
        return (self.server_id, self.alarm.id)

    @property
    def order(self) -> tuple[int, int]:
        """Most urgent first, then newest."""
        return (self.alarm.priority, -self.alarm.ts_us)


class AlarmList:
    """The open (``new``) alarms of every recorder, by priority and time."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, int], AlarmItem] = {}
        self._lock = threading.Lock()

    def apply(self, item: AlarmItem) -> bool:
        """Take one alarm as it is now; True when the list changed."""
        with self._lock:
            old = self._items.get(item.key)
            if item.alarm.state == "new":
                if old is not None and old.alarm.updated_us > item.alarm.updated_us:
                    return False  # an older message arriving late
                self._items[item.key] = item
                return old != item
            return self._items.pop(item.key, None) is not None

    def replace(self, server_id: str, alarms: list[Alarm]) -> None:
        """A recorder's full list (after ``GET /alarms``)."""
        with self._lock:
            for key in [k for k in self._items if k[0] == server_id]:
                del self._items[key]
            for a in alarms:
                if a.state == "new":
                    self._items[(server_id, a.id)] = AlarmItem(server_id, a)

    def items(self) -> list[AlarmItem]:
        with self._lock:
            return sorted(self._items.values(), key=lambda i: i.order)

    def cameras(self) -> set[tuple[str, str]]:
        """(server id, camera) of the open alarms: the tiles that flash."""
        with self._lock:
            return {(i.server_id, i.alarm.camera) for i in self._items.values()}


@dataclass(frozen=True, slots=True)
class Trigger:
    """A manual rule of one recorder."""

    server_id: str
    rule: ManualRule

    def fits(self, server_id: str, camera: str) -> bool:
        return server_id == self.server_id and (
            not self.rule.cameras or camera in self.rule.cameras
        )


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    server_id: str
    delivery: Delivery


class AlarmFeed(EventFeed):
    """Alarms of every logged-in recorder, live; acknowledge and close through the API."""

    subject = staticmethod(alarms_subject)

    def __init__(self, runner: AsyncRunner, sessions: Sessions) -> None:
        self.alarms = AlarmList()
        self.changed: Signal[list[AlarmItem]] = Signal("alarms.changed")
        super().__init__(runner, sessions)

    def refresh(self) -> concurrent.futures.Future[list[AlarmItem]]:
        """Read the open alarms of every recorder again (at start and after a reconnect)."""

        async def read() -> list[AlarmItem]:
            sessions = [s for s in self.sessions.sessions() if s.server_id]
            rows = await asyncio.gather(
                *(s.call(lambda api: api.get_json("/alarms", {"state": "new"})) for s in sessions),
                return_exceptions=True,
            )
            for session, answer in zip(sessions, rows, strict=True):
                if isinstance(answer, BaseException):
                    log.warning("alarms of %s: %r", session.server_id, answer)
                    continue
                alarms = msgspec.convert(answer, list[Alarm])
                self.alarms.replace(session.server_id, alarms)
            items = self.alarms.items()
            self.changed.emit(items)
            return items

        return self.runner.submit(read())

    def _each(self, path: str) -> concurrent.futures.Future[list[tuple[str, Any]]]:
        """``GET path`` of every recorder: (server id, answer) of those that answered."""

        async def read() -> list[tuple[str, Any]]:
            sessions = [s for s in self.sessions.sessions() if s.server_id]
            rows = await asyncio.gather(
                *(s.call(lambda api: api.get_json(path)) for s in sessions),
                return_exceptions=True,
            )
            out = []
            for session, answer in zip(sessions, rows, strict=True):
                if isinstance(answer, BaseException):
                    log.info("%s of %s: %r", path, session.server_id, answer)
                else:
                    out.append((session.server_id, answer))
            return out

        return self.runner.submit(read())

    def triggers(self) -> concurrent.futures.Future[list[Trigger]]:
        """The manual rules of every recorder, for the cameras the user sees."""
        out: concurrent.futures.Future[list[Trigger]] = concurrent.futures.Future()

        def done(f: concurrent.futures.Future) -> None:
            try:
                out.set_result([
                    Trigger(sid, r)
                    for sid, rows in f.result()
                    for r in msgspec.convert(rows, list[ManualRule])
                ])  # fmt: skip
            except Exception as exc:
                out.set_exception(exc)

        self._each("/manual-triggers").add_done_callback(done)
        return out

    def fire(
        self, trigger: Trigger, camera: str, comment: str = ""
    ) -> concurrent.futures.Future[bool]:
        """Fire a manual rule on a camera; True when it fired (False: disarmed, off schedule
        or cooling down)."""
        session: Session | None = self.sessions.get(trigger.server_id)
        if session is None:
            future: concurrent.futures.Future[bool] = concurrent.futures.Future()
            future.set_exception(RuntimeError(f"recorder {trigger.server_id} is gone"))
            return future

        async def post() -> bool:
            body = {"camera": camera, "comment": comment}
            path = f"/rules/{trigger.rule.id}/trigger"
            status, _, _ = await session.call(lambda api: api.request("POST", path, json=body))
            return status == 202

        return self.runner.submit(post())

    def failed_deliveries(self) -> concurrent.futures.Future[list[FailedDelivery]]:
        """Notifications given up, newest first, of the recorders where the user is an admin."""
        out: concurrent.futures.Future[list[FailedDelivery]] = concurrent.futures.Future()

        def done(f: concurrent.futures.Future) -> None:
            try:
                rows = [
                    FailedDelivery(sid, d)
                    for sid, got in f.result()
                    for d in msgspec.convert(got, list[Delivery])
                ]
                out.set_result(sorted(rows, key=lambda r: -r.delivery.ts_us))
            except Exception as exc:
                out.set_exception(exc)

        self._each("/deliveries/failed").add_done_callback(done)
        return out

    def acknowledge(self, item: AlarmItem, comment: str = "") -> concurrent.futures.Future[Alarm]:
        return self._set(item, "acknowledged", comment)

    def close_alarm(self, item: AlarmItem, comment: str = "") -> concurrent.futures.Future[Alarm]:
        return self._set(item, "closed", comment)

    def _set(self, item: AlarmItem, state: str, comment: str) -> concurrent.futures.Future[Alarm]:
        session: Session | None = self.sessions.get(item.server_id)
        if session is None:
            future: concurrent.futures.Future[Alarm] = concurrent.futures.Future()
            future.set_exception(RuntimeError(f"recorder {item.server_id} is gone"))
            return future

        async def patch() -> Alarm:
            body = {"state": state, "comment": comment}
            data = await session.call(lambda api: api.patch_json(f"/alarms/{item.alarm.id}", body))
            alarm = msgspec.convert(data, Alarm)
            self._take(item.server_id, alarm)  # at once here; NATS tells the others
            return alarm

        return self.runner.submit(patch())

    def _on_message(self, server_id: str, data: bytes) -> None:
        try:
            alarm = msgspec.json.decode(data, type=Alarm)
        except msgspec.DecodeError as exc:
            log.debug("alarms of %s: %s", server_id, exc)
            return
        self._take(server_id, alarm)

    def _take(self, server_id: str, alarm: Alarm) -> None:
        if self.alarms.apply(AlarmItem(server_id, alarm)):
            self.changed.emit(self.alarms.items())


__all__ = ["Alarm", "AlarmFeed", "AlarmItem", "AlarmList", "FailedDelivery", "Trigger"]
