"""This recorder as a member of its site: heartbeats in a JetStream key-value bucket, the
cluster's state from the embedded nats-server's monitor, and ``GET /api/v1/site``.

Heartbeats are written to the bucket (so a recorder that went down is still listed, as down)
and read back from the bucket's subjects as plain NATS messages: the list stays current while
JetStream has no quorum, which is exactly when an operator looks at it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import msgspec
import nats
from nats.js.api import KeyValueConfig, StreamConfig

from server.clock import Clock
from server.protocol.models.site import ClusterState, Site, SiteRecorder
from server.protocol.timeutil import US_PER_SECOND
from server.site.accounts import SiteAccounts

log = logging.getLogger(__name__)

HEARTBEAT_S = 2.0
DOWN_AFTER_S = 10.0  # five heartbeats missed
JS_TIMEOUT_S = 2.0


def bucket_name(site: str) -> str:
    return f"vigia_site_{site.replace('-', '_')}_recorders"


def replicas_for(nodes: int) -> int:
    """3 replicas survive one node lost; fewer nodes cannot hold 3 (docs/design/site.md)."""
    return 3 if nodes >= 3 else 1


@dataclass(frozen=True)
class Me:
    id: str
    name: str
    api: str
    version: str


class SiteMember:
    def __init__(
        self,
        site: str,
        me: Me,
        clock: Clock,
        cameras: Callable[[], int],
        *,
        nats_url: str | None,
        nats_kwargs: dict[str, str] | None = None,
        monitor_port: Callable[[], int | None] = lambda: None,
        streams: Callable[[], list[str]] = list,
    ) -> None:
        self.site, self.me, self.clock, self.cameras = site, me, clock, cameras
        self.nats_url, self.nats_kwargs = nats_url, nats_kwargs or {}
        self.monitor_port, self.streams = monitor_port, streams
        self._peers: dict[str, SiteRecorder] = {}
        self._jetstream = "off"
        self._nodes, self._routes = 1, []
        self._replicas = 1
        self._nc: nats.aio.client.Client | None = None
        self._http: aiohttp.ClientSession | None = None
        self._task: asyncio.Task | None = None
        self.beats = asyncio.Event()  # set at every heartbeat written (tests wait on it)
        self.accounts: SiteAccounts | None = None  # one login (set before start)

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=JS_TIMEOUT_S))
        self._task = asyncio.create_task(self._run(), name="site-member")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
        if self._http is not None:
            await self._http.close()

    # --- what the API shows ----------------------------------------------------------------

    def _own(self) -> SiteRecorder:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
        return SiteRecorder(self.me.id, self.me.name, self.me.api, "up", self.cameras(),
                            round(load, 3), self.me.version, self.clock.now_us())  # fmt: skip

    def health(self) -> Site:
        now = self.clock.now_us()
        down_before = now - int(DOWN_AFTER_S * US_PER_SECOND)
        recorders = [self._own()]
        for rid, r in sorted(self._peers.items()):
            if rid == self.me.id:
                continue
            state = "up" if r.seen_us >= down_before else "down"
            recorders.append(msgspec.structs.replace(r, state=state))
        cluster = ClusterState(self._nodes, list(self._routes), self._jetstream, self._replicas)  # type: ignore[arg-type]
        conflicts = list(self.accounts.conflicts) if self.accounts is not None else []
        return Site(self.site, self.me.id, recorders, cluster, conflicts)

    # --- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        if not self.nats_url:
            return
        subject = f"$KV.{bucket_name(self.site)}.>"
        while self._nc is None:
            try:
                self._nc = await nats.connect(
                    self.nats_url, name="vigia-site", max_reconnect_attempts=-1,
                    connect_timeout=5, **self.nats_kwargs,
                )  # fmt: skip
            except Exception as exc:  # nats-py raises several kinds
                log.warning("site %s: NATS not reachable yet: %s", self.site, exc)
                await asyncio.sleep(HEARTBEAT_S)
        await self._nc.subscribe(subject, cb=self._on_beat)
        kv = None
        while True:
            await self._read_routes()
            want = replicas_for(self._nodes)
            try:
                if kv is None or want > self._replicas:
                    kv = await self._bucket(want)
                    await self._load(kv)
                    await self._scale_streams(want)
                    self._replicas = want
                if self.accounts is not None and not self.accounts.ready:
                    await self.accounts.open(self._nc, want)
                elif self.accounts is not None:
                    await self.accounts.reconcile()
                await kv.put(self.me.id, msgspec.json.encode(self._own()))
                self._jetstream = "ok"
                self.beats.set()
            except Exception as exc:  # no quorum, a timeout, a node going away
                if self._jetstream != "no quorum":
                    log.warning("site %s: directory not writable: %s", self.site, exc or type(exc))
                self._jetstream = "no quorum"
                kv = None
            await asyncio.sleep(HEARTBEAT_S)

    async def _bucket(self, replicas: int):
        assert self._nc is not None
        js = self._nc.jetstream(timeout=JS_TIMEOUT_S)
        name = bucket_name(self.site)
        try:
            kv = await js.key_value(name)
        except nats.js.errors.BucketNotFoundError:
            return await js.create_key_value(
                KeyValueConfig(bucket=name, history=1, replicas=replicas)
            )
        await self._scale(js, f"KV_{name}", replicas)
        return kv

    async def _scale_streams(self, replicas: int) -> None:
        """The recorder's own streams (events) follow the cluster's size up."""
        assert self._nc is not None
        js = self._nc.jetstream(timeout=JS_TIMEOUT_S)
        for name in self.streams():
            try:
                await self._scale(js, name, replicas)
            except nats.js.errors.NotFoundError:
                continue

    @staticmethod
    async def _scale(js, stream: str, replicas: int) -> None:
        info = await js.stream_info(stream)
        config: StreamConfig = info.config
        if (config.num_replicas or 1) < replicas:
            config.num_replicas = replicas
            await js.update_stream(config)
            log.info("%s now kept on %d nodes", stream, replicas)

    async def _load(self, kv) -> None:
        """The last heartbeat of every recorder, the ones that are down included."""
        try:
            keys = await kv.keys()
        except nats.js.errors.NoKeysError:
            return
        for key in keys:
            with contextlib.suppress(Exception):
                self._remember((await kv.get(key)).value)

    async def _on_beat(self, msg) -> None:
        self._remember(msg.data)

    def _remember(self, data: bytes | None) -> None:
        if not data:
            return
        try:
            r = msgspec.json.decode(data, type=SiteRecorder)
        except msgspec.DecodeError:
            log.warning("site %s: unreadable heartbeat ignored", self.site)
            return
        old = self._peers.get(r.id)
        if old is None or r.seen_us >= old.seen_us:
            self._peers[r.id] = r

    async def _read_routes(self) -> None:
        """Nodes and routes from the embedded server's ``/routez`` (a route pool has several
        connections per remote: count names)."""
        port = self.monitor_port()
        if port is None or self._http is None:
            return
        try:
            async with self._http.get(f"http://127.0.0.1:{port}/routez") as resp:
                body = await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.debug("site %s: no route list: %s", self.site, exc)
            return
        names = sorted({r.get("remote_name", "") for r in body.get("routes") or []} - {""})
        self._nodes, self._routes = len(names) + 1, names
