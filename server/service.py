"""``vigia-server`` as a long-running process: wires the parts and runs until signalled.

Start-up order matters for crash safety: lock the data dir, open and migrate the catalog,
recover what a crash left (before any new segment is written), then start recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sqlite3
import sys
from dataclasses import dataclass

import nats
import nats.aio.client
from aiohttp import web

from server import __version__
from server.analytics.service import Analytics
from server.api.app import ApiContext, make_app
from server.api.auth import NatsGrants, Security
from server.archive import Archiver, ArchiveStore, StoreError, load_credentials
from server.archive.source import ArchiveSegments
from server.auth import Audit, LoginRateLimiter, Tokens, Users
from server.auth.housekeeping import AuthHousekeeping
from server.catalog import Catalog
from server.clock import Clock, SystemClock
from server.config import CameraConfig, Config, ConfigError
from server.datadir import DataDir
from server.discovery import Advertisement, Advertiser, strip_credentials
from server.export.jobs import ExportJobs
from server.ingest.worker import State
from server.live import EmbeddedNats, LivePublisher, NatsServerError
from server.live.fanout import Fanout
from server.live.nats_server import ClusterSpec
from server.live.publisher import stream_status_message
from server.live.srt import SrtOut
from server.onvif.events import CameraEvents
from server.protocol.files import write_atomic
from server.protocol.live import event_stream_name
from server.protocol.timeutil import US_PER_SECOND
from server.recording.diskspace import StorageGuard
from server.recording.recovery import recover
from server.recording.retention import Retention, VolumeLimits
from server.rules.engine import RulesEngine
from server.rules.mqtt import MqttBridge
from server.rules.switches import Switches
from server.sdnotify import notify, watchdog_interval_s
from server.site.accounts import SiteAccounts, account_streams
from server.site.member import Me, SiteMember
from server.site.secret import load_secret, route_credentials
from server.supervisor import IngestSupervisor
from server.webrtc.sessions import WebRtcSettings

log = logging.getLogger(__name__)


@dataclass
class Services:
    data: DataDir
    catalog: Catalog
    recorder: IngestSupervisor
    retention: Retention
    lock_fd: int
    clock: Clock
    live: LivePublisher | None = None
    nats: EmbeddedNats | None = None
    fanout: Fanout | None = None  # every stream's packets in process (WebRTC, analytics)
    analytics: Analytics | None = None
    exports: ExportJobs | None = None  # made with the API, expired by the service loop
    rules: RulesEngine | None = None  # rules and alarms, with the API (docs/design/rules.md)
    archiver: Archiver | None = None
    site: SiteMember | None = None  # this recorder in its site (docs/design/site.md)
    srt: SrtOut | None = None  # SRT live out, started by ``serve`` (docs/design/live.md)
    camera_events: CameraEvents | None = None  # on the loop, from serve (docs/design/cameras.md)


def cluster_spec(config: Config) -> ClusterSpec | None:
    """The embedded server's cluster, from ``[site]`` and ``[nats]``; None without one.
    ConfigError (exit 2) when a cluster is configured without the site's secret."""
    secret = load_secret(config)
    if secret is None:
        return None
    nats_cfg = config.nats
    if not nats_cfg.cluster_listen:
        raise ConfigError("[nats] routes need cluster_listen, this recorder's own route port")
    creds = route_credentials(secret)
    return ClusterSpec(config.site.name, nats_cfg.cluster_listen, nats_cfg.routes, creds.user,
                       creds.password, nats_cfg.cluster_tls_cert, nats_cfg.cluster_tls_key,
                       nats_cfg.cluster_tls_ca)  # fmt: skip


def start_live(config: Config, data: DataDir, clock: Clock) -> tuple[
    LivePublisher | None, EmbeddedNats | None
]:  # fmt: skip
    """Live distribution is best effort: without it the recorder still records."""
    nats_cfg = config.nats
    if not nats_cfg.enabled:
        return None, None
    cluster = cluster_spec(config)
    embedded = None
    try:
        if nats_cfg.url:
            url, credentials = nats_cfg.url, None
        else:
            host, _, port = nats_cfg.listen.rpartition(":")
            embedded = EmbeddedNats(
                data.root / "nats",
                host=host or "127.0.0.1",
                port=int(port),
                mqtt_listen=config.mqtt.listen,
                server_name=f"vigia-{data.server_id()}",
                cluster=cluster,
            )
            embedded.start()
            url, credentials = embedded.url, embedded.credentials
    except (NatsServerError, OSError, ValueError) as exc:
        if embedded is not None:
            embedded.stop()
        if embedded is not None and "address already in use" in str(exc):
            # a live view that silently never comes is worse than a recorder that says why
            raise ConfigError(
                f"[nats] listen = {nats_cfg.listen!r}: the port is taken by another program;"
                ' choose another port, "127.0.0.1:0" for any free one, or set enabled = false'
            ) from None
        log.error("live distribution disabled: %s", exc)
        return None, None
    live = LivePublisher(url, data.server_id(), credentials, clock=clock)
    if not live.start(wait_s=2):
        log.warning("NATS at %s not reachable yet; live video follows when it is", url)
    return live, embedded


def open_services(config: Config, data: DataDir, clock: Clock | None = None) -> Services:
    clock = clock or SystemClock()
    lock_fd = data.lock()
    data.create()
    storage = config.storage
    guard = StorageGuard(data, storage.reserve_bytes)
    if guard.is_full():
        guard.release_reserve()  # the catalog must be able to write before anything else
    catalog = Catalog(data.catalog)
    data.private_files()
    retention = Retention(
        catalog, data, VolumeLimits(storage.max_bytes, storage.min_free_bytes), clock, guard=guard
    )
    if "record" in config.roles:
        # retention first: on a full volume recovery and the camera rows need the room it frees
        retention.run_guarded()
    try:
        report = recover(catalog, data)
        if report.problems:
            log.warning("start-up recovery: %d problems handled", len(report.problems))
    except (sqlite3.Error, OSError) as exc:
        # the next start finishes it; new segments never reuse a path recovery still owns
        log.error("start-up recovery incomplete: %s", exc)
        guard.set_state("error", f"start-up recovery incomplete: {exc}")
    guard.ensure_reserve()
    for cam in config.cameras:
        try:
            apply_camera(catalog, cam, clock, source="config")
        except sqlite3.Error as exc:  # the catalog keeps the camera's previous settings
            log.error("camera %s: cannot update the catalog: %s", cam.id, exc)
    roles = config.roles
    live, nats = start_live(config, data, clock) if "live" in roles else (None, None)
    fanout = Fanout()
    rules = None
    if "api" in roles:
        rules = RulesEngine(
            catalog, Audit(catalog, clock), clock, data.server_id(), data.root, smtp=config.smtp
        )

    def on_status(st: object) -> None:
        msg = stream_status_message(st)  # type: ignore[arg-type]
        if live is not None:
            live.publish_status(msg)
        if rules is not None:
            rules.feed_status(msg)

    recorder = IngestSupervisor(
        catalog,
        data,
        clock,
        config.recording,
        on_status=on_status if live or rules else None,
        sinks_for=lambda cam, stream: [
            *([live.sink(cam, stream)] if live else []),
            fanout.sink(cam, stream),
        ],
        record="record" in roles,
    )
    if live is not None:
        # every (re)connection of the publisher starts with a snapshot of all streams
        live.on_connected = lambda: [
            live.publish_status(stream_status_message(st)) for st in recorder.status()
        ]
    recorder.collectors.append(guard.collect)
    analytics = None
    if "ai" in roles and "ingest" in roles:
        analytics = Analytics(
            config.analytics,
            catalog,
            data.root,
            data.server_id(),
            clock,
            fanout.subscribe,
            publish=(lambda subj, payload: live.offer(subj, payload, True, clock.now_us()))
            if live
            else None,
        )
    if analytics is not None and rules is not None:
        analytics.on_event = rules.feed_event
    archiver = make_archiver(config, catalog, data, clock) if "record" in roles else None
    if archiver is not None:
        retention.on_unarchived = archiver.note_unarchived_deleted
    if rules is not None:
        # MQTT switches write where the API writes (docs/design/rules.md)
        def sync_recording() -> None:
            recorder.sync()
            if analytics is not None:
                analytics.sync()

        rules.switches = Switches(
            catalog, rules.store, rules.audit, clock, analytics=analytics,
            sync_recording=sync_recording, on_arming=rules.reload,
        )  # fmt: skip
        # recorder-wide trouble reaches the rules through their owners' state
        rules.watch("disk_trouble", lambda: (guard.state != "ok", guard.detail or guard.state))
        if archiver is not None:
            rules.watch("archive_trouble",
                        lambda: (archiver.state == "error", archiver.error or ""))  # fmt: skip
    return Services(
        data,
        catalog,
        recorder,
        retention,
        lock_fd,
        clock,
        live,
        nats,
        fanout,
        analytics,
        rules=rules,
        archiver=archiver,
    )


def make_archiver(config: Config, catalog: Catalog, data: DataDir, clock: Clock) -> Archiver | None:
    """Best effort like live: without keys or a store the recorder records all the same."""
    if not config.archive.enabled:
        return None
    try:
        credentials = load_credentials(config.archive)
    except StoreError as exc:
        log.error("archive disabled: %s", exc)
        return None
    store = ArchiveStore(config.archive, credentials, pool=config.archive.concurrency + 2)
    return Archiver(config.archive, store, catalog, data.root, clock)


def apply_camera(catalog: Catalog, cam: CameraConfig, clock: Clock, source: str) -> None:
    catalog.upsert_camera(
        cam.id,
        cam.name,
        cam.streams(),
        enabled=cam.enabled,
        retention_days=cam.retention_days,
        source=source,
        now_us=clock.now_us(),
        transports=cam.transports(),
    )


SUMMARY_INTERVAL_S = 60.0
FULL_CHECK_INTERVAL_S = 1.0  # statvfs: cheap
PORTS_FILE = "run/ports.json"  # under the data dir
CAMERA_EVENTS_SYNC_S = 5.0  # cameras added or changed get (or drop) their events subscription
METADATA_TRIM_INTERVAL_S = 60.0  # events, tracks and motion older than the oldest video go


def log_summary(recorder: IngestSupervisor) -> None:
    """One line on how recording goes, and one per stream that is not well."""
    statuses = recorder.status()
    online = sum(1 for s in statuses if s.state == State.ONLINE)
    log.info("%d/%d streams online", online, len(statuses))
    for st in statuses:
        rec = recorder.recorder(st.camera_id, st.stream)
        problem = st.reason if st.state != State.ONLINE else (rec.stats.error if rec else None)
        if problem:
            log.warning("%s/%s %s: %s", st.camera_id, st.stream, st.state, problem)


def make_security(
    catalog: Catalog,
    clock: Clock,
    services: Services | None = None,
    mqtt_prefix: str = "",
    discovery_prefix: str = "",
) -> Security:
    """Users, tokens, login limits and audit; creates the first admin on a new catalog."""
    users = Users(catalog, clock)
    password = users.ensure_first_admin(os.environ.get("VIGIA_ADMIN_PASSWORD"))
    if password is not None:
        # shown once, on the terminal, never logged; VIGIA_ADMIN_PASSWORD avoids it
        sys.stderr.write(f"\nvigia-server: first start: user 'admin', password {password}\n\n")
        sys.stderr.flush()
    tokens = Tokens(catalog, clock)
    grants = None
    if services is not None and services.nats is not None:
        grants = NatsGrants(services.nats, services.data.server_id(), tokens, mqtt_prefix,
                            discovery_prefix, users)  # fmt: skip
        try:
            grants.sync_accounts()  # MQTT logins with Vigia names and passwords
        except NatsServerError as exc:
            log.error("MQTT logins not set up: %s", exc)
    return Security(users, tokens, Audit(catalog, clock), LoginRateLimiter(clock), grants)


async def start_api(config: Config, services: Services) -> tuple[web.AppRunner | None, int | None]:
    """Serve the HTTP API on ``config.listen``; a recorder whose port is taken still records."""
    host, _, port = config.listen.rpartition(":")
    remote = None
    if (archiver := services.archiver) is not None:  # exports read archive-only footage too
        remote = ArchiveSegments(archiver.ledger, archiver.store)
    exports = ExportJobs(services.catalog, services.data, clock=services.clock, remote=remote)
    services.exports = exports
    ctx = ApiContext(
        services.catalog,
        services.recorder,
        services.data,
        services.clock,
        services.data.server_id(),
        config.name or socket.gethostname(),
        make_security(
            services.catalog,
            services.clock,
            services,
            _mqtt_prefix(config, services),
            config.mqtt.discovery_prefix,
        ),
        exports,
        fanout=services.fanout,
        analytics=services.analytics,
        metrics_token=config.metrics_token,
        allowed_hosts=config.allowed_hosts,
        live_connected=(lambda: live.connected) if (live := services.live) else None,
        storage_state=(lambda: guard.state) if (guard := services.retention.guard) else None,
        webrtc=WebRtcSettings(
            ice_servers=config.webrtc.ice_servers,
            turn_username=config.webrtc.turn_username,
            turn_password=config.webrtc.turn_password,
            max_sessions=config.webrtc.max_sessions,
        ),
        onvif=config.onvif,
        rules=services.rules,
        archiver=services.archiver,
        site=services.site.health if services.site is not None else None,
        srt=services.srt,
        camera_events=services.camera_events,
    )
    if services.site is not None and config.site.name and config.nats.enabled:
        sec = ctx.security
        sec.accounts = SiteAccounts(config.site.name, sec.users, sec.tokens, services.clock,
                                    sec.rights_changed)  # fmt: skip
        services.site.accounts = sec.accounts
    runner = web.AppRunner(make_app(ctx), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host or "127.0.0.1", int(port))
        await site.start()
    except (OSError, ValueError) as exc:
        log.error("HTTP API disabled: cannot listen on %s: %s", config.listen, exc)
        await runner.cleanup()
        return None, None
    bound = int(runner.addresses[0][1])
    log.info("HTTP API on http://%s:%d/api/v1", host or "127.0.0.1", bound)
    return runner, bound


def link_base(listen: str, port: int) -> str:
    """The API's address for signed links in webhooks and e-mail: the listen host, or this
    machine's name when it listens on every interface."""
    host = listen.rsplit(":", 1)[0].strip("[]") if ":" in listen else listen
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def _mqtt_prefix(config: Config, services: Services) -> str:
    nats = services.nats
    return config.mqtt.topic_prefix if nats is not None and nats.mqtt_port else ""


async def start_rules(config: Config, services: Services) -> nats.aio.client.Client | None:
    """The rules engine on this loop: alarms on NATS, MQTT through the embedded server's
    listener. Best effort, like live: without NATS alarms are still stored and served."""
    rules = services.rules
    if rules is None:
        return None
    nc = None
    embedded = services.nats
    url = embedded.url if embedded is not None else config.nats.url
    if url and config.nats.enabled:
        kwargs = embedded.credentials.connect_kwargs() if embedded is not None else {}
        try:
            nc = await nats.connect(
                url, name="vigia-rules", max_reconnect_attempts=-1, connect_timeout=5, **kwargs
            )
            rules.publish_nats = nc.publish
        except Exception as exc:  # nats-py raises several kinds
            log.warning("alarms not published on NATS: %s", exc)
    if embedded is not None and embedded.mqtt_port:
        creds = embedded.credentials
        host = embedded.url.removeprefix("nats://").rsplit(":", 1)[0].strip("[]")
        rules.mqtt = MqttBridge(host, embedded.mqtt_port, creds.user, creds.password,
                                config.mqtt.topic_prefix, services.data.root)  # fmt: skip
        rules.discovery_prefix = config.mqtt.discovery_prefix
        if nc is not None:
            rules.mqtt.nats_publish = nc.publish
            prefix = config.mqtt.topic_prefix

            async def on_set(msg: nats.aio.msg.Msg) -> None:
                await rules.switch_command(msg.subject, msg.data)

            # <p>/<camera>/<switch>/set and <p>/_arming/<group>/set
            await nc.subscribe(f"{prefix}.*.*.set", cb=on_set)
    await rules.start()
    return nc


def api_url(listen: str, port: int | None) -> str:
    """Where the site's other recorders and workstations reach this API ("" without one)."""
    if port is None:
        return ""
    host = listen.rpartition(":")[0].strip("[]") or "0.0.0.0"
    if host in ("0.0.0.0", "::"):
        host = socket.gethostname()
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def make_site_member(config: Config, services: Services) -> SiteMember:
    """The site's view from here; without ``[site]`` a site of one (no NATS traffic)."""
    embedded = services.nats
    url = embedded.url if embedded is not None else config.nats.url
    kwargs = embedded.credentials.connect_kwargs() if embedded is not None else {}
    sid = services.data.server_id()
    me = Me(sid, config.name or socket.gethostname(), "", __version__)

    def cameras() -> int:  # the supervisor's memory: no catalog query on the loop
        return len({s.camera_id for s in services.recorder.status()})

    return SiteMember(
        config.site.name, me, services.clock, cameras,
        nats_url=url if config.site.name and config.nats.enabled else None,
        nats_kwargs=kwargs,
        monitor_port=lambda: embedded.monitor_port if embedded is not None else None,
        # the recorder's events and the site's account buckets follow the cluster's size up
        streams=lambda: [event_stream_name(sid), *account_streams(config.site.name)],
    )  # fmt: skip


async def start_camera_events(config: Config, services: Services) -> CameraEvents | None:
    """One ONVIF events subscription per camera added from a device, on this loop
    (docs/design/cameras.md); its events go where analytics events go."""
    if "ingest" not in config.roles or not config.onvif.events:
        return None
    live, clock, rules = services.live, services.clock, services.rules
    events = CameraEvents(
        services.catalog,
        clock,
        services.data.server_id(),
        publish=(lambda subj, payload: live.offer(subj, payload, True, clock.now_us()))
        if live
        else None,
        on_event=rules.feed_event if rules is not None else None,
    )
    try:
        await events.start()
    except Exception:  # camera events never stop the recorder
        log.exception("camera events not started")
    services.camera_events = events
    return events


async def start_discovery(config: Config, services: Services, port: int) -> Advertiser | None:
    """Best effort: a recorder without working mDNS still records and serves its API."""
    nats = ""
    if services.nats is not None:
        nats = str(services.nats.port)
    elif config.nats.url:
        nats = strip_credentials(config.nats.url)
    adv = Advertisement(
        server_id=services.data.server_id(),
        name=config.name or socket.gethostname(),
        port=port,
        version=__version__,
        nats=nats,
        site=config.site.name,
    )
    advertiser = Advertiser(adv, listen=config.listen)
    try:
        await advertiser.start()
    except Exception as exc:
        log.warning("zeroconf discovery disabled: %s", exc)
        await advertiser.close()
        return None
    return advertiser


async def watchdog(interval_s: float) -> None:
    """Tell systemd the event loop still runs (``WatchdogSec=``): a hung loop gets restarted."""
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval_s)


def start_srt(config: Config, services: Services) -> int | None:
    """SRT live out from the fan-out; best effort, like live: the recorder records without it."""
    if not config.srt.listen or "live" not in config.roles or services.fanout is None:
        return None
    srt = SrtOut(
        config.srt.listen,
        services.fanout,
        Tokens(services.catalog, services.clock),
        services.catalog,
        passphrase=config.srt.passphrase,
        latency_ms=config.srt.latency_ms,
        max_viewers=config.srt.max_viewers,
    )
    port = srt.start()
    if port is not None:
        services.srt = srt
    return port


def write_ports(data: DataDir, ports: dict[str, int | None]) -> bool:
    """Say which ports this run bound (``listen`` may ask for port 0, "any free one"), for
    whoever started it: written whole, with our pid so that a file an earlier run left is
    told apart. ``null``: that listener is off. False when it could not be written (a full
    volume): the service loop tries again once retention has made room, and never stops for
    it."""
    body = {"pid": os.getpid(), **ports}
    try:
        write_atomic(data.root / PORTS_FILE, (json.dumps(body) + "\n").encode())
    except OSError as exc:
        log.warning("cannot write %s yet: %s", PORTS_FILE, exc)
        return False
    return True


async def serve(config: Config, services: Services) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    roles = config.roles
    log.info("roles: %s", ", ".join(sorted(roles)))
    if "ingest" in roles:
        services.recorder.sync()
    if services.analytics is not None:
        await asyncio.to_thread(services.analytics.start)
    if services.archiver is not None:
        services.archiver.start()
    log.info(
        "recording %d streams into %s",
        len(services.recorder.status()),
        services.data.root,
    )
    rules_nc = await start_rules(config, services)
    services.site = make_site_member(config, services)
    srt_port = await asyncio.to_thread(start_srt, config, services)
    camera_events = await start_camera_events(config, services)
    runner, port = await start_api(config, services) if "api" in roles else (None, None)
    services.site.me = Me(services.site.me.id, services.site.me.name,
                          api_url(config.listen, port), __version__)  # fmt: skip
    await services.site.start()
    if services.rules is not None and port is not None:
        services.rules.base_url = link_base(config.listen, port)
    nats_srv = services.nats
    ports = {
        "api": port,
        "nats": nats_srv.port if nats_srv else None,
        "mqtt": nats_srv.mqtt_port if nats_srv else None,
        "cluster": nats_srv.cluster_port if nats_srv else None,
        "srt": srt_port,
    }
    ports_written = write_ports(services.data, ports)
    advertiser = None
    if port is not None and config.discovery:
        advertiser = await start_discovery(config, services, port)
    interval = config.storage.retention_interval_s
    next_summary = next_trim = next_retention = next_purge = next_events_sync = loop.time()
    housekeeping = AuthHousekeeping(services.catalog, services.clock, config.storage.audit_days)
    guard = services.retention.guard
    notify("READY=1", f"STATUS=recording {len(services.recorder.status())} streams")
    watchdog_s = watchdog_interval_s()
    pinger = asyncio.create_task(watchdog(watchdog_s)) if watchdog_s else None
    try:
        while not stop.is_set():
            # retention and garbage collection touch disk and SQLite: keep them off the loop
            if "record" in roles:
                # a volume found full is freed at once, not at the next interval
                if loop.time() >= next_retention or (guard is not None and guard.is_full()):
                    next_retention = loop.time() + interval
                    await asyncio.to_thread(services.retention.run_guarded)
                if services.analytics is not None and loop.time() >= next_trim:
                    next_trim = loop.time() + METADATA_TRIM_INTERVAL_S
                    try:
                        await asyncio.to_thread(services.analytics.trim_all)
                    except Exception:  # metadata retention never stops the recorder
                        log.exception("metadata retention failed")
                elif camera_events is not None and loop.time() >= next_trim:
                    next_trim = loop.time() + METADATA_TRIM_INTERVAL_S
                    try:
                        await asyncio.to_thread(camera_events.trim_all)
                    except Exception:
                        log.exception("camera events retention failed")
            if "api" in roles and loop.time() >= next_purge:
                next_purge = loop.time() + config.storage.purge_interval_s
                try:
                    await asyncio.to_thread(housekeeping.run_once)
                    if services.exports is not None and config.storage.export_days is not None:
                        age_us = int(config.storage.export_days * 86_400 * US_PER_SECOND)
                        before = services.clock.now_us() - age_us
                        await asyncio.to_thread(services.exports.expire, before)
                except Exception:  # a full catalog must not stop the recorder
                    log.exception("purging the audit log and tokens failed")
            if not ports_written:
                ports_written = await asyncio.to_thread(write_ports, services.data, ports)
            if camera_events is not None and loop.time() >= next_events_sync:
                next_events_sync = loop.time() + CAMERA_EVENTS_SYNC_S
                try:
                    await camera_events.sync()
                except Exception:  # camera events never stop the recorder
                    log.exception("camera events: cannot follow the cameras")
            if loop.time() >= next_summary:
                log_summary(services.recorder)
                next_summary = loop.time() + SUMMARY_INTERVAL_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(interval, FULL_CHECK_INTERVAL_S))
    finally:
        log.info("stopping")
        notify("STOPPING=1", "STATUS=closing segments")
        if pinger is not None:
            pinger.cancel()  # the stop time-out (TimeoutStopSec=) bounds the rest
        if advertiser is not None:
            await advertiser.close()  # clients stop coming first
        if runner is not None:
            await runner.cleanup()
        if services.srt is not None:
            await asyncio.to_thread(services.srt.stop)
        await asyncio.to_thread(services.recorder.stop)
        if services.site is not None:
            await services.site.close()
        if camera_events is not None:
            await camera_events.close()
        if services.rules is not None:
            await services.rules.close()
        if rules_nc is not None:
            with contextlib.suppress(Exception):
                await rules_nc.close()
        if services.archiver is not None:
            await asyncio.to_thread(services.archiver.stop)
        if services.analytics is not None:
            try:
                await asyncio.to_thread(services.analytics.stop)
            except Exception:  # the rest of the shutdown still runs
                log.exception("stopping analytics failed")
        if services.live is not None:
            await asyncio.to_thread(services.live.close)
        if services.nats is not None:
            await asyncio.to_thread(services.nats.stop)
        services.catalog.close()
        (services.data.root / PORTS_FILE).unlink(missing_ok=True)
        log.info("stopped cleanly")
