"""The recorder's MQTT side, through the embedded nats-server's own MQTT listener.

Topics (``<p>`` is ``[mqtt] topic_prefix``, default ``vigia``), laid out as Home Assistant users
know them from Frigate:

- ``<p>/available``: ``online`` / ``offline``, retained; ``offline`` is the connection's will,
  so a recorder that dies says so.
- ``<p>/events`` and ``<p>/<camera>/events``: every analytics event as JSON (``phase`` start,
  update, end or instant), whether or not a rule picks it.
- ``<p>/<camera>/<label>``: how many objects of that label are in the picture, retained.
- ``<p>/<camera>/<label>/snapshot``: the latest event snapshot (JPEG), retained.
- ``<p>/alarms`` and ``<p>/<camera>/alarms``: alarms of rules with an ``mqtt`` action.

MQTT topics are NATS subjects with ``/`` for ``.``, so the per-login NATS users that
``server/api/auth.py`` makes let a client read the camera topics that user may see.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiomqtt

log = logging.getLogger(__name__)

RECONNECT_S = 1.0
CLOSE_S = 2.0


def snapshot_path(msg: dict) -> str | None:
    """The event's JPEG under the data dir; published events say only whether it has one."""
    if msg.get("snapshot_path"):  # the engine's choice (a zone event takes its track's)
        return msg["snapshot_path"]
    if not msg.get("snapshot") or msg.get("id") is None:
        return None
    return f"events/{msg.get('camera_id', '')}/{msg['id']}.jpg"


class MqttBridge:
    def __init__(
        self, host: str, port: int, user: str, password: str, prefix: str, data_root: Path
    ) -> None:
        self.host, self.port, self.user, self.password = host, port, user, password
        self.prefix, self.root = prefix, data_root
        self._queue: asyncio.Queue[tuple[str, bytes, bool]] = asyncio.Queue(maxsize=10_000)
        self._task: asyncio.Task | None = None
        self._counts: Counter[tuple[str, str]] = Counter()
        self._open: set[tuple] = set()
        self._snaps: dict[str, str] = {}  # snapshot topic -> latest JPEG not yet sent
        self.connected = asyncio.Event()
        self.nats_publish: Callable[[str, bytes], Awaitable[None]] | None = None
        self._sending: set[asyncio.Future] = set()
        self.published = 0
        self.dropped = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mqtt-bridge")

    async def close(self) -> None:
        """Stop within about ``2 * CLOSE_S``: aiomqtt waits for the broker's goodbye without a
        time-out, and a recorder's shutdown must not hang on it."""
        for t in list(self._sending):
            t.cancel()
        if self._task is None:
            return
        self._task.cancel()
        done, _ = await asyncio.wait({self._task}, timeout=CLOSE_S)
        if not done:
            log.warning("MQTT: no goodbye from the broker in %.0f s; closing anyway", CLOSE_S)
            self._task.cancel()  # a second cancel ends aiomqtt's wait for the disconnect
            await asyncio.wait({self._task}, timeout=CLOSE_S)
        if self._task.done() and not self._task.cancelled():
            with contextlib.suppress(Exception):
                self._task.result()

    def publish(
        self, topic: str, payload: bytes, retain: bool = False, *, absolute: bool = False
    ) -> None:
        """Queue a message (dropped and counted when the queue is full: MQTT is best effort).
        Messages that are not retained go as plain NATS messages when a connection is given:
        the server hands them to MQTT subscribers alike, and nats-py batches its writes where
        an MQTT client waits for each one to be written. ``absolute``: ``topic`` is not under
        the prefix (Home Assistant discovery)."""
        if not retain and self.nats_publish is not None and not absolute:
            subject = f"{self.prefix}.{topic.replace('/', '.')}"
            task = asyncio.ensure_future(self.nats_publish(subject, payload))
            self._sending.add(task)
            task.add_done_callback(self._sent)
            return
        try:
            full = topic if absolute else f"{self.prefix}/{topic}"
            self._queue.put_nowait((full, payload, retain))
        except asyncio.QueueFull:
            self.dropped += 1

    def event(self, msg: dict) -> None:
        """One published analytics event: the events topics, counts and snapshot."""
        cam, label = msg.get("camera_id", ""), msg.get("label", "")
        body = json.dumps(msg, separators=(",", ":")).encode()
        self.publish("events", body)
        self.publish(f"{cam}/events", body)
        if msg.get("kind") == "object" and label:
            key = (cam, msg.get("id"))
            before = self._counts[(cam, label)]
            if msg.get("end_us") is None:
                if key not in self._open:
                    self._open.add(key)
                    self._counts[(cam, label)] += 1
            elif key in self._open:
                self._open.discard(key)
                self._counts[(cam, label)] -= 1
            if self._counts[(cam, label)] != before:
                self.publish(f"{cam}/{label}", str(self._counts[(cam, label)]).encode(), True)
        snap = snapshot_path(msg)
        if snap and label:
            # only the latest picture matters: a busy scene does not queue one per event
            topic = f"{cam}/{label}/snapshot"
            if topic not in self._snaps:
                self.publish(topic, b"", True)  # a marker: the file is read when it is sent
            self._snaps[topic] = snap

    def _sent(self, task: asyncio.Future) -> None:
        self._sending.discard(task)
        if task.cancelled() or task.exception() is not None:
            self.dropped += 1
        else:
            self.published += 1

    async def _snapshot(self, topic: str) -> bytes:
        rel = self._snaps.pop(topic.removeprefix(self.prefix + "/"), None)
        if rel is None:
            return b""
        try:
            return await asyncio.to_thread((self.root / rel).read_bytes)
        except OSError:
            return b""

    async def _run(self) -> None:
        will = aiomqtt.Will(f"{self.prefix}/available", b"offline", qos=1, retain=True)
        pending: tuple[str, bytes, bool] | None = None
        while True:
            try:
                async with aiomqtt.Client(
                    self.host, self.port, username=self.user, password=self.password,
                    identifier="vigia-recorder", will=will, keepalive=30,
                ) as client:  # fmt: skip
                    await client.publish(f"{self.prefix}/available", b"online", qos=1, retain=True)
                    self.connected.set()
                    log.info("MQTT: publishing on %s:%d under %s/", self.host, self.port,
                             self.prefix)  # fmt: skip
                    try:
                        while True:
                            pending = pending or await self._queue.get()
                            topic, payload, retain = pending
                            if topic.endswith("/snapshot") and not payload:
                                payload = await self._snapshot(topic)
                                pending = (topic, payload, retain)
                                if not payload:  # gone meanwhile (retention): send nothing
                                    pending = None
                                    continue
                            # QoS 0: retained messages are kept by the server all the same
                            await client.publish(topic, payload, qos=0, retain=retain)
                            pending = None
                            self.published += 1
                    finally:
                        self.connected.clear()
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(
                                client.publish(f"{self.prefix}/available", b"offline", qos=1,
                                               retain=True), 1)  # fmt: skip
            except aiomqtt.MqttError as exc:
                log.warning("MQTT: %s; reconnecting in %.0f s", exc, RECONNECT_S)
                await asyncio.sleep(RECONNECT_S)
