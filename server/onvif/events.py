"""Camera events: one ONVIF pull-point subscription per camera added from a device.

Each enabled camera with an ONVIF device (``camera_onvif``) gets a :class:`CameraSubscriber`
task on the recorder's event loop: it subscribes (CreatePullPointSubscription), pulls
(PullMessages waits on the device until it has messages, so an event arrives within a round
trip), renews the subscription before the device drops it, and on any failure closes the
session, ends the events it had open and tries again after a backoff with jitter (much later
for a device that has no events service at all). Nothing here runs on an ingest thread, and
the catalog writes go to a worker thread, so a slow or silent camera never holds up recording.

What the camera says becomes events of kind ``camera`` in the catalog's ``events`` table, like
our own analytics events (``server.onvif.notifications`` reads the topics): on the timeline, in
``GET /events?kind=camera``, on the ``events`` NATS subject and into the rules engine, whose
trigger ``camera`` matches them (docs/design/cameras.md, docs/design/rules.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from server.catalog import Catalog
from server.catalog.analytics import AnalyticsCatalog, EventRow
from server.catalog.onvif import CameraOnvif, OnvifRow
from server.clock import Clock
from server.onvif.device import Notification, OnvifDevice, OnvifError
from server.onvif.notifications import CameraNotification, read_notification
from server.protocol.backoff import Backoff
from server.protocol.live import events_subject
from server.protocol.timeutil import US_PER_SECOND

log = logging.getLogger(__name__)

LIFETIME_S = 60.0  # subscription lifetime asked for; renewed at RENEW_AT of what is granted
RENEW_AT = 0.8
PULL_WAIT_S = 5.0  # PullMessages waits this long on the device when nothing happens
PULL_LIMIT = 100
RETRY_INITIAL_S, RETRY_MAX_S = 2.0, 120.0
UNSUPPORTED_RETRY_S = 600.0  # a device without events (or auth refused) is asked this rarely
CLOCK_SKEW_US = 10 * US_PER_SECOND  # a device time further off than this: ours is used

Publish = Callable[[str, bytes], None]  # subject, payload (LivePublisher.offer)
OnEvent = Callable[[dict], None]  # a stored event phase, as published (RulesEngine.feed_event)


class CameraEventLog:
    """One camera's notifications as stored event phases. Blocking (SQLite): call it in a
    worker thread. Lasting events (a property true, then false) are paired by topic and
    source; an instant event is stored ended."""

    def __init__(self, camera_id: str, db: AnalyticsCatalog, clock: Clock) -> None:
        self.camera_id, self.db, self.clock = camera_id, db, clock
        self.open: dict[tuple[str, str | None], EventRow] = {}

    def _when(self, n: CameraNotification, now_us: int) -> int:
        """The device's time of it where its clock agrees with ours (events line up with
        video recorded on our clock); ours otherwise, and for the state a subscription
        starts with (it began at some unknown time before)."""
        if n.utc_us is None or n.operation == "Initialized":
            return now_us
        return n.utc_us if abs(n.utc_us - now_us) <= CLOCK_SKEW_US else now_us

    def take(self, notes: list[CameraNotification]) -> list[tuple[str, EventRow]]:
        out: list[tuple[str, EventRow]] = []
        for n in notes:
            now = self.clock.now_us()
            ts = self._when(n, now)
            row = self.open.get(n.key)
            if n.state is None and n.operation != "Deleted":
                ev = self._row(n, ts)
                ev.end_us = ts
                self.db.insert_event(ev)
                out.append(("instant", ev))
            elif n.state and n.operation != "Deleted" and row is None:
                ev = self._row(n, ts)
                self.db.insert_event(ev)
                self.open[n.key] = ev
                out.append(("start", ev))
            elif row is not None and (not n.state or n.operation == "Deleted"):
                out.append(("end", self._end(n.key, ts)))
        return out

    def end_all(self) -> list[tuple[str, EventRow]]:
        """The subscription is gone: what was going on ends now (a new one says again)."""
        now = self.clock.now_us()
        return [("end", self._end(key, now)) for key in list(self.open)]

    def _end(self, key: tuple[str, str | None], ts_us: int) -> EventRow:
        row = self.open.pop(key)
        row.end_us = max(row.start_us, ts_us)
        self.db.update_event(row)
        return row

    def _row(self, n: CameraNotification, ts_us: int) -> EventRow:
        return EventRow(
            camera_id=self.camera_id,
            kind="camera",
            start_us=ts_us,
            label=n.label,
            score=1.0,
            topic=n.topic,
            source=n.source,
        )


@dataclass
class SubscriberStatus:
    state: str = "starting"  # 'starting', 'subscribed', 'retrying', 'unsupported'
    reason: str = ""
    events: int = 0  # event phases stored since start
    renewals: int = 0
    subscriptions: int = 0  # subscriptions made (1 + the ones after failures)


class CameraSubscriber:
    """The pull-point loop of one camera; ``run`` until cancelled."""

    def __init__(
        self,
        row: OnvifRow,
        log_: CameraEventLog,
        deliver: Callable[[list[tuple[str, EventRow]]], None],
    ) -> None:
        self.row, self.log, self.deliver = row, log_, deliver
        self.status = SubscriberStatus()
        self.changed = asyncio.Event()  # set at each status change and stored batch (tests)
        self._backoff = Backoff(RETRY_INITIAL_S, RETRY_MAX_S)
        self._closing: asyncio.Task | None = None

    def _set(self, state: str, reason: str = "") -> None:
        if (state, reason) != (self.status.state, self.status.reason):
            level = logging.INFO if state == "subscribed" else logging.WARNING
            log.log(level, "%s: camera events %s %s", self.row.camera_id, state, reason)
        self.status.state, self.status.reason = state, reason
        self.changed.set()

    async def run(self) -> None:
        while True:
            delay = await self._session()
            await asyncio.sleep(delay)

    async def _session(self) -> float:
        """One subscription, from subscribing until it fails; returns the wait before the
        next. Cancellation (the recorder stops, the camera goes) unsubscribes on the way."""
        row = self.row
        dev = OnvifDevice(row.address, row.username, row.password)
        loop = asyncio.get_running_loop()
        try:
            await dev.open()
            granted = await dev.subscribe_events(LIFETIME_S)
            self.status.subscriptions += 1
            self._backoff.reset()
            self._set("subscribed")
            renew_at = loop.time() + granted * RENEW_AT
            while True:
                if loop.time() >= renew_at:
                    granted = await dev.renew_events(LIFETIME_S)
                    self.status.renewals += 1
                    renew_at = loop.time() + granted * RENEW_AT
                wait = max(1.0, min(PULL_WAIT_S, renew_at - loop.time()))
                notes = await dev.pull_events(wait, PULL_LIMIT)
                if notes:
                    await self._store(notes)
        except OnvifError as exc:
            if exc.kind in ("unsupported", "auth", "bad_address"):
                self._set("unsupported", exc.message)
                return UNSUPPORTED_RETRY_S
            self._set("retrying", exc.message)
            return self._backoff.next()
        except Exception as exc:  # never let one camera's oddity end its events for good
            log.exception("%s: camera events failed", row.camera_id)
            self._set("retrying", f"{type(exc).__name__}: {exc}")
            return self._backoff.next()
        finally:
            # a task of its own: a cancel arriving meanwhile (the recorder stopping) does not
            # cut it short, and ``closed`` lets the owner wait for it
            self._closing = asyncio.create_task(self._close(dev))
            await asyncio.shield(self._closing)

    async def closed(self) -> None:
        """After cancelling ``run``: wait until its last session has let go of the device."""
        if self._closing is not None:
            with contextlib.suppress(Exception):
                await self._closing

    async def _close(self, dev: OnvifDevice) -> None:
        ended = await asyncio.to_thread(self.log.end_all)
        self._deliver(ended)
        with contextlib.suppress(OnvifError, Exception):
            await dev.unsubscribe_events()
        with contextlib.suppress(Exception):
            await dev.close()

    async def _store(self, notes: list[Notification]) -> None:
        read = [read_notification(n) for n in notes]
        mine = [n for n in read if n is not None]
        if mine:
            self._deliver(await asyncio.to_thread(self.log.take, mine))

    def _deliver(self, phases: list[tuple[str, EventRow]]) -> None:
        if phases:
            self.status.events += len(phases)
            self.deliver(phases)
            self.changed.set()


class CameraEvents:
    """Every camera's subscriber, kept in step with the catalog by ``sync``."""

    def __init__(
        self,
        catalog: Catalog,
        clock: Clock,
        server_id: str,
        *,
        publish: Publish | None = None,
        on_event: OnEvent | None = None,
    ) -> None:
        self.catalog = catalog
        self.onvif = CameraOnvif(catalog)
        self.db = AnalyticsCatalog(catalog)
        self.clock, self.server_id = clock, server_id
        self.publish, self.on_event = publish, on_event
        self.subscribers: dict[str, CameraSubscriber] = {}
        self._tasks: dict[str, asyncio.Task] = {}

    async def start(self) -> None:
        """Events a stopped recorder left open end now (the cameras say again what is on)."""
        now = self.clock.now_us()
        closed = await asyncio.to_thread(self.db.close_open_events, now, "camera")
        if closed:
            log.info("camera events: %d left open by the last run were closed", closed)
        await self.sync()

    def trim_all(self) -> None:
        """Retention where analytics does not run (``Analytics.trim_all`` does it otherwise,
        for every kind): events go with their camera's video. Blocking: run in a thread."""
        for cam in self.catalog.cameras():
            oldest = self.db.oldest_video_us(cam.id)
            if oldest is not None:
                self.db.delete_events_before(cam.id, oldest)  # camera events have no snapshot

    def status(self) -> dict[str, SubscriberStatus]:
        return {cam: sub.status for cam, sub in self.subscribers.items()}

    async def sync(self) -> None:
        """Start a subscriber for each enabled camera with a device, stop the others (and
        restart one whose device address or credentials changed)."""
        rows = {r.camera_id: r for r in await asyncio.to_thread(self.onvif.enabled_rows)}
        for cam in list(self._tasks):
            row = rows.get(cam)
            if row is None or row != self.subscribers[cam].row:
                await self._stop(cam)
        for cam, row in rows.items():
            if cam not in self._tasks:
                sub = CameraSubscriber(
                    row, CameraEventLog(cam, self.db, self.clock), self._deliverer(cam)
                )
                self.subscribers[cam] = sub
                self._tasks[cam] = asyncio.create_task(sub.run(), name=f"camera-events-{cam}")

    async def _stop(self, camera_id: str) -> None:
        task = self._tasks.pop(camera_id)
        sub = self.subscribers.pop(camera_id)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await sub.closed()

    async def close(self) -> None:
        for cam in list(self._tasks):
            await self._stop(cam)

    def _deliverer(self, camera_id: str) -> Callable[[list[tuple[str, EventRow]]], None]:
        subject = events_subject(self.server_id, camera_id)

        def deliver(phases: list[tuple[str, EventRow]]) -> None:
            for phase, row in phases:
                msg = {"phase": phase, **msgspec.to_builtins(row.to_event())}
                if self.publish is not None:
                    try:
                        self.publish(subject, json.dumps(msg, separators=(",", ":")).encode())
                    except Exception:
                        log.exception("%s: camera event not published", camera_id)
                if self.on_event is not None:
                    try:
                        self.on_event(msg)
                    except Exception:  # rules never stop camera events
                        log.exception("%s: rules could not take a camera event", camera_id)

        return deliver
