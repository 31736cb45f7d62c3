"""Analytics events on the workstation: the one parser of the event wire format, the filter
that becomes ``GET /events`` query parameters, queries over several recorders, live events from
NATS, and event snapshots.

The event JSON (``GET /api/v1/events`` rows and the messages of ``vigia.<sid>.events.<camera>``)
is read here and nowhere else (``parse_event``), so that the workstation follows the recorder's
one schema of it. The events panel binds to ``EventFeed``: it asks for a query or a snapshot
(Futures on the network loop) and follows ``received`` for live events.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from app.api import ApiError
from app.loop import AsyncRunner
from app.overlays import events_subject
from app.session import LiveSubscription, Session, Sessions
from app.signals import Signal
from server.protocol.models.analytics import KINDS as ANALYTICS_KINDS
from server.protocol.models.analytics import Event
from server.protocol.timeutil import MINUTE_US

log = logging.getLogger(__name__)

KINDS = ANALYTICS_KINDS  # ours and 'camera' (raised by the camera itself)
QUERY_LIMIT = 500  # per recorder and query
SNAPSHOT_FETCHES = 4  # snapshot downloads at once


@dataclass(slots=True)
class EventItem:
    """One event of one recorder: the wire type (``server.protocol.models.Event``, the one
    description of an event) and the recorder it came from. Its fields read through:
    ``item.label``, ``item.start_us``..."""

    server_id: str
    event: Event

    def __getattr__(self, name: str) -> Any:
        return getattr(self.event, name)

    @property
    def key(self) -> tuple[str, int]:
        return (self.server_id, self.event.id)

    @classmethod
    def from_json(cls, server_id: str, data: Any) -> EventItem:
        """Raises ValueError for anything that is not an event row (see ``parse_event``)."""
        return parse_event(server_id, data)


def parse_event(server_id: str, data: Any) -> EventItem:
    """An event row (a decoded JSON object) of recorder ``server_id``; ValueError otherwise."""
    try:
        return EventItem(server_id, msgspec.convert(data, Event))
    except msgspec.ValidationError as exc:
        raise ValueError(f"not an event: {exc}") from None


def parse_event_message(server_id: str, data: bytes | str) -> EventItem:
    """A message of the events subject (an event plus its ``phase``); ValueError otherwise."""
    try:
        return EventItem(server_id, msgspec.json.decode(data, type=Event))
    except msgspec.DecodeError as exc:  # ValidationError is one too
        raise ValueError(f"not an event: {exc}") from None


def event_mark(data: Any) -> tuple[int, int, str] | None:
    """``(start_us, end_us, label)`` of an event row for a timeline (an ongoing event ends
    where it starts; a row without a label reads 'event'); None for a row without a start."""
    if not isinstance(data, dict) or "start_us" not in data:
        return None
    start = int(data["start_us"])
    return start, int(data.get("end_us") or start), str(data.get("label") or "event")


@dataclass(frozen=True, slots=True)
class EventFilter:
    """What the list shows. ``window_us`` set: the last ``window_us`` up to now (follows live);
    else the fixed ``[start_us, end_us)``."""

    camera: tuple[str, str] | None = None  # (server_id, camera_id); None: every camera
    window_us: int | None = 60 * MINUTE_US
    start_us: int = 0
    end_us: int = 0
    labels: tuple[str, ...] = ()
    zone: str = ""
    kinds: tuple[str, ...] = ()
    min_score: float = 0.0

    def span(self, now: int) -> tuple[int, int]:
        if self.window_us is not None:
            # a little ahead of now: the recorder's clock may run slightly ahead of ours
            return now - self.window_us, now + MINUTE_US
        return self.start_us, self.end_us

    def params(self, now: int) -> dict[str, Any]:
        """The query parameters of ``GET /events`` for this filter at time ``now``."""
        start, end = self.span(now)
        params: dict[str, Any] = {
            "start_us": start,
            "end_us": end,
            "order": "desc",
            "limit": QUERY_LIMIT,
        }
        if self.camera is not None:
            params["camera"] = self.camera[1]
        if self.labels:
            params["label"] = ",".join(self.labels)
        if self.kinds:
            params["kind"] = ",".join(self.kinds)
        if self.zone:
            params["zone"] = self.zone
        if self.min_score > 0:
            params["min_score"] = f"{self.min_score:.3f}"
        return params

    def matches(self, item: EventItem, now: int) -> bool:
        """Whether a live event belongs to what this filter shows (the same rules as the
        recorder's query)."""
        start, end = self.span(now)
        return (
            (self.camera is None or self.camera == (item.server_id, item.camera_id))
            and start <= item.start_us < end
            and (not self.labels or item.label in self.labels)
            and (not self.kinds or item.kind in self.kinds)
            and (not self.zone or item.zone_id == self.zone)
            and item.score >= self.min_score
        )


@dataclass(frozen=True)
class EventResults:
    """A query's answer: the events of every recorder that answered, and what went wrong
    with the others (``(server_id, message)``)."""

    items: list[EventItem]
    failures: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Subscriptions:
    """Live event subscriptions of one recorder, by camera id (state of the network loop)."""

    session: Session
    by_camera: dict[str, LiveSubscription | None] = field(default_factory=dict)
    closed: bool = False  # its session went away: a subscription completing now is dropped
    undo: list[Callable[[], None]] = field(default_factory=list)


class EventFeed:
    """Events of every logged-in recorder: queries, live events, snapshots.

    ``received`` fires on the network loop with every live event (parsed; not filtered): a
    widget marshals it to its thread and applies its own filter. Subscriptions follow the
    recorders (``Sessions.added``/``removed``) and their camera lists; ``close`` drops them.
    """

    subject = staticmethod(events_subject)  # the subject followed per camera

    def __init__(self, runner: AsyncRunner, sessions: Sessions) -> None:
        self.runner = runner
        self.sessions = sessions
        self.received: Signal[EventItem] = Signal("events.received")
        self._subs: dict[str, _Subscriptions] = {}  # touched on the loop only
        self._gate: asyncio.Semaphore | None = None
        self._closed = False
        self._unhook = [
            sessions.added.connect(lambda s: runner.call_soon(self._on_session_added, s)),
            sessions.removed.connect(lambda s: runner.call_soon(self._on_session_removed, s)),
        ]
        for session in sessions.sessions():
            runner.call_soon(self._on_session_added, session)

    # --- queries ------------------------------------------------------------------------------

    def target_sessions(self, f: EventFilter) -> list[Session]:
        """The recorders a query with ``f`` asks: the camera's, else every logged-in one."""
        if f.camera is not None:
            session = self.sessions.get(f.camera[0])
            return [session] if session is not None else []
        return [s for s in self.sessions.sessions() if s.server_id]

    def query(
        self, f: EventFilter, now: int, sessions: Iterable[Session] | None = None
    ) -> concurrent.futures.Future[EventResults]:
        """``GET /events`` on every target recorder at once; one failing recorder is a
        failure in the results, not an exception."""
        targets = list(self.target_sessions(f) if sessions is None else sessions)
        params = f.params(now)
        return self.runner.submit(self._query(targets, params))

    async def _query(self, sessions: list[Session], params: dict[str, Any]) -> EventResults:
        async def one(session: Session) -> list[EventItem]:
            rows = await session.call(lambda api: api.get_json("/events", params))
            out = []
            for data in rows or []:
                try:
                    out.append(parse_event(session.server_id, data))
                except ValueError as exc:
                    log.warning("events of %s: %s", session.server_id, exc)
            return out

        answers = await asyncio.gather(*(one(s) for s in sessions), return_exceptions=True)
        items: list[EventItem] = []
        failures: list[tuple[str, str]] = []
        for session, answer in zip(sessions, answers, strict=True):
            if isinstance(answer, ApiError):
                failures.append((session.server_id, answer.message))
            elif isinstance(answer, BaseException):  # a timeout: say so, keep the others
                if isinstance(answer, asyncio.CancelledError):
                    raise answer
                failures.append((session.server_id, repr(answer)))
            else:
                items.extend(answer)
        return EventResults(items, failures)

    # --- snapshots ----------------------------------------------------------------------------

    def snapshot(self, item: EventItem) -> concurrent.futures.Future[bytes]:
        """The event's snapshot JPEG (at most ``SNAPSHOT_FETCHES`` downloads at once)."""
        session = self.sessions.get(item.server_id)
        if session is None:
            future: concurrent.futures.Future[bytes] = concurrent.futures.Future()
            future.set_exception(ApiError(0, "offline", f"recorder {item.server_id} is gone"))
            return future
        return self.runner.submit(self._snapshot(session, item.id))

    async def _snapshot(self, session: Session, event_id: int) -> bytes:
        if self._gate is None:
            self._gate = asyncio.Semaphore(SNAPSHOT_FETCHES)
        async with self._gate:
            return await session.call(lambda api: api.get_bytes(f"/events/{event_id}/snapshot"))

    # --- live (on the network loop) -----------------------------------------------------------

    def _on_session_added(self, session: Session) -> None:
        if self._closed or session.server_id in self._subs:
            return
        subs = _Subscriptions(session)
        self._subs[session.server_id] = subs
        subs.undo.append(
            session.cameras_changed.connect(lambda s: self.runner.call_soon(self._sync, s))
        )
        self._sync(session)

    def _on_session_removed(self, session: Session) -> None:
        subs = self._subs.pop(session.server_id, None)
        if subs is not None:
            self._drop(subs)

    def _drop(self, subs: _Subscriptions) -> None:
        subs.closed = True
        for undo in subs.undo:
            undo()
        gone = [s for s in subs.by_camera.values() if s is not None]
        subs.by_camera.clear()
        for sub in gone:
            self.runner.loop.create_task(sub.unsubscribe())

    def _sync(self, session: Session) -> None:
        """Subscribe to the events subject of every camera the recorder lists (only those)."""
        subs = self._subs.get(session.server_id)
        if subs is None or subs.session is not session or self._closed:
            return
        sid = session.server_id
        wanted = {str(c.get("id")) for c in session.cameras if c.get("id")}
        for cam in [cam for cam in subs.by_camera if cam not in wanted]:
            sub = subs.by_camera.pop(cam)
            if sub is not None:
                self.runner.loop.create_task(sub.unsubscribe())
        for cam in sorted(wanted - set(subs.by_camera)):
            try:
                subject = self.subject(sid, cam)
            except ValueError:
                log.warning("camera id %r cannot be a NATS subject token", cam)
                continue
            subs.by_camera[cam] = None  # reserved until the subscription exists
            self.runner.loop.create_task(self._subscribe(subs, cam, subject))

    async def _subscribe(self, subs: _Subscriptions, cam: str, subject: str) -> None:
        sid = subs.session.server_id

        async def on_msg(msg: Any) -> None:
            self._on_message(sid, msg.data)

        try:
            sub = await subs.session.subscribe(subject, on_msg)
        except Exception as exc:
            log.warning("cannot subscribe to the events of %s: %r", cam, exc)
            subs.by_camera.pop(cam, None)
            return
        if self._closed or subs.closed or subs.by_camera.get(cam, 0) is not None:
            await sub.unsubscribe()  # removed (or the feed or session closed) meanwhile
            return
        subs.by_camera[cam] = sub

    def followed(self) -> concurrent.futures.Future[dict[str, list[str]]]:
        """The cameras whose live events arrive now, by server id (asked on the loop)."""

        async def read() -> dict[str, list[str]]:
            return {
                sid: sorted(cam for cam, sub in subs.by_camera.items() if sub is not None)
                for sid, subs in self._subs.items()
            }

        return self.runner.submit(read())

    def _on_message(self, server_id: str, data: bytes) -> None:
        try:
            item = parse_event_message(server_id, data)
        except ValueError as exc:
            log.debug("events of %s: %s", server_id, exc)
            return
        self.received.emit(item)

    def close(self) -> None:
        """Stop following the recorders and drop every subscription (any thread)."""
        if self._closed:
            return
        self._closed = True
        for undo in self._unhook:
            undo()
        if self.runner.in_loop():
            self._close_subs()
            return
        try:
            self.runner.call_soon(self._close_subs)
        except RuntimeError:  # the runner stopped first: its subscriptions went with it
            log.debug("events feed closed after its runner")

    def _close_subs(self) -> None:
        for subs in self._subs.values():
            self._drop(subs)
        self._subs.clear()
