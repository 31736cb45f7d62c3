"""A logged-in recorder: API token, NATS connection, cameras; kept alive without the user's help.

Everything runs on the ``AsyncRunner`` loop; the blocking methods (``open``, ``refresh``,
``close``) are for other threads. The recorder has no refresh route, so the session logs in again
at 80 % of the token's lifetime and whenever a call through ``Session.call`` meets a 401. Each
login hands out new NATS credentials (the NATS user is derived from the token), so the NATS client
is replaced then and the subscriptions made with ``Session.subscribe`` move over to the new one;
code that subscribes on ``Session.nats`` directly must follow ``nats_changed``.

States: ``connecting`` (first attempt), ``online``, ``reconnecting`` (the recorder cannot be
reached; retried with backoff 0.5 s doubling to 10 s, jittered), ``error`` (refused: wrong
credentials, another recorder at that address; retried only on ``reconnect()``), ``offline``
(closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import AuthorizationError

from app.api import ApiClient, ApiError, Login, NatsAccess
from app.cameratree import CameraTree
from app.discovery import Discovery, ServerEntry, normalize_url
from app.loop import AsyncRunner
from app.signals import Signal
from server.protocol.backoff import Backoff
from server.protocol.live import camera_status_subject
from server.protocol.timeutil import now_us

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = ["Backoff", "LiveSubscription", "ServerEntry", "Session", "Sessions", "session_backoff"]

STATES = ("connecting", "online", "reconnecting", "offline", "error")
REFRESH_FRACTION = 0.8  # of the token's lifetime, when to log in again
NATS_CONNECT_TIMEOUT_S = 3.0
LOGOUT_TIMEOUT_S = 2.0

MsgCallback = Callable[[Msg], Awaitable[None]]


def session_backoff() -> Backoff:
    """0.5 s doubling to 10 s, with jitter: after a recorder restart its workstations come back
    spread over the interval instead of all in the same instant."""
    return Backoff(0.5, 10.0)


class LiveSubscription:
    """A NATS subscription that survives the session's NATS client being replaced."""

    def __init__(self, session: Session, subject: str, callback: MsgCallback) -> None:
        self.session, self.subject, self._callback = session, subject, callback
        self._sub: Any = None  # nats.aio.subscription.Subscription on the current client
        self.active = True

    async def _attach(self, client: NatsClient) -> None:
        async def deliver(msg: Msg) -> None:
            # while clients are swapped both deliver for a moment: only the current one counts
            if client is self.session.nats or self.session.nats is None:
                await self._callback(msg)

        self._sub = await client.subscribe(self.subject, cb=deliver)

    async def unsubscribe(self) -> None:
        self.active = False
        self.session._subs.discard(self)
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


class Session:
    """One logged-in recorder at ``base_url``."""

    def __init__(
        self,
        runner: AsyncRunner,
        base_url: str,
        user: str,
        password: str,
        *,
        backoff: Backoff | None = None,
        health_interval_s: float = 5.0,
        refresh_fraction: float = REFRESH_FRACTION,
    ) -> None:
        """``refresh_fraction``: log in again after this part of the token's lifetime."""
        if not 0 < refresh_fraction < 1:
            raise ValueError("refresh_fraction must be between 0 and 1")
        self.runner = runner
        self.base_url = normalize_url(base_url)
        self.user = user
        self._password = password
        self.backoff = backoff or session_backoff()
        self.health_interval_s = health_interval_s
        self.refresh_fraction = refresh_fraction
        self.api = ApiClient(self.base_url)
        self.server_id = ""
        self.name = ""
        self.role = ""
        self.version = ""  # the recorder's (GET /server)
        self.site = ""  # the site it belongs to (GET /site); "" for a recorder on its own
        self.nats: NatsClient | None = None
        self.cameras: list[dict] = []
        self.state = "offline"
        self.error = ""  # why the last attempt failed, for the UI
        self.live_available = False  # a NATS connection exists (else: live unavailable)
        self.expires_us = 0
        self._issued_us = 0  # when the current token was obtained (our clock)
        self.logins = 0  # how many times this session logged in (refreshes included)
        self.changed: Signal[Session] = Signal("session.changed")
        self.cameras_changed: Signal[Session] = Signal("session.cameras_changed")
        self.nats_changed: Signal[Session] = Signal("session.nats_changed")
        self.status_received: Signal[dict] = Signal("session.status_received")
        self._login: Login | None = None
        self._nats_access: NatsAccess | None = None
        self._subs: set[LiveSubscription] = set()
        self._status_subs: dict[str, LiveSubscription] = {}
        self._login_lock: asyncio.Lock | None = None
        self._wake: asyncio.Event | None = None
        self._wake_reason = ""
        self._poke_token: str | None = None  # the token in use when the wake reason was set
        self._task: asyncio.Task | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<Session {self.name or self.base_url} {self.state}>"

    # --- blocking entry points (any thread but the loop's) ------------------------------------

    def open(self, timeout: float = 10) -> None:
        """Log in, read the server and cameras, connect NATS; raises ApiError on failure."""
        self.runner.call(self.open_async(), timeout)

    def start(self) -> None:
        """Connect in the background, retrying until it works (for saved/auto servers)."""
        self.runner.call_soon(self._ensure_task)

    def refresh(self, timeout: float = 10) -> None:
        self.runner.call(self.refresh_async(), timeout)

    def reconnect(self) -> None:
        """Try again now (e.g. after the user fixed the password with ``set_password``)."""
        self.runner.call_soon(self._poke, "reconnect")

    def set_password(self, password: str) -> None:
        self._password = password

    def close(self, timeout: float = 10) -> None:
        self.runner.call(self.close_async(), timeout)

    # --- on the loop ------------------------------------------------------------------------

    async def open_async(self) -> None:
        self._set_state("connecting")
        try:
            await self._establish()
        except ApiError as exc:
            self.error = exc.message
            self._set_state("offline" if exc.status == 0 else "error")
            raise
        self._ensure_task()

    async def refresh_async(self) -> None:
        cameras = await self.call(lambda api: api.get_json("/cameras"))
        self._set_cameras(cameras)

    async def call(self, fn: Callable[[ApiClient], Awaitable[T]]) -> T:
        """Run ``fn(api)``; on a 401 log in again once and retry (the token expired or was
        revoked). An unreachable recorder wakes the supervisor and the error is raised."""
        token = self.api.token
        try:
            return await fn(self.api)
        except ApiError as exc:
            if exc.status == 0:
                self._poke("unreachable")
                raise
            if exc.status != 401:
                raise
            # the refresh waits for a login already under way (its token is then new)
        log.info("%s: token refused, logging in again", self.name or self.base_url)
        await self._relogin(token)
        return await fn(self.api)

    def call_sync(self, fn: Callable[[ApiClient], Awaitable[T]], timeout: float = 10) -> T:
        return self.runner.call(self.call(fn), timeout)

    async def subscribe(self, subject: str, callback: MsgCallback) -> LiveSubscription:
        """Subscribe now if NATS is connected, and again on every new NATS connection."""
        sub = LiveSubscription(self, subject, callback)
        self._subs.add(sub)
        if self.nats is not None and self.nats.is_connected:
            await sub._attach(self.nats)
        return sub

    async def close_async(self) -> None:
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        client, self.nats = self.nats, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
        if self.api.token:
            with contextlib.suppress(ApiError, TimeoutError):
                async with asyncio.timeout(LOGOUT_TIMEOUT_S):
                    await self.api.logout()
        await self.api.close()
        self.live_available = False
        self._set_state("offline")

    # --- internals --------------------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        assert state in STATES, state
        if state != self.state:
            log.info("%s: %s -> %s", self.name or self.base_url, self.state, state)
            self.state = state
            self.changed.emit(self)

    def _set_cameras(self, cameras: Any) -> None:
        self.cameras = list(cameras or [])
        self.cameras_changed.emit(self)

    def _events(self) -> tuple[asyncio.Lock, asyncio.Event]:
        if self._login_lock is None or self._wake is None:
            self._login_lock, self._wake = asyncio.Lock(), asyncio.Event()
        return self._login_lock, self._wake

    def _poke(self, reason: str) -> None:
        if not self._wake_reason:
            self._wake_reason, self._poke_token = reason, self.api.token
        self._events()[1].set()

    def _ensure_task(self) -> None:
        if self._closed or (self._task is not None and not self._task.done()):
            return
        if self.state != "online":
            self._set_state("connecting")
        self._task = asyncio.get_running_loop().create_task(self._supervise())

    async def _relogin(self, refused_token: str | None) -> None:
        lock, _ = self._events()
        async with lock:
            if self.api.token != refused_token and self.api.token:
                return  # someone logged in again while we waited
            cameras = await self._login_locked()
        self._set_cameras(cameras)
        self._set_state("online")

    async def _establish(self) -> None:
        """Log in and (re)build everything that hangs on the login."""
        lock, _ = self._events()
        async with lock:
            cameras = await self._login_locked()
        self._set_cameras(cameras)
        self._set_state("online")

    async def _login_locked(self) -> list[dict]:
        old_token = self.api.token
        login = await self.api.login(self.user, self._password)
        info = await self.api.get_json("/server")
        sid = str(info["id"])
        if self.server_id and sid != self.server_id:
            raise ApiError(
                409,
                "other_recorder",
                f"{self.base_url} is now recorder {sid}, not {self.server_id}",
            )
        self.server_id, self.name = sid, str(info.get("name") or sid)
        self.version = str(info.get("version") or "")
        self.site = await self._site_name()
        self.role, self._login, self.expires_us = login.role, login, login.expires_us
        self._issued_us = now_us()
        self.logins += 1
        cameras = await self.api.get_json("/cameras")
        # one status subject per camera: a user restricted to some cameras is granted only theirs
        for cam in cameras if isinstance(cameras, list) else []:
            cam_id = cam.get("id") if isinstance(cam, dict) else None
            if isinstance(cam_id, str) and cam_id not in self._status_subs:
                sub = LiveSubscription(self, camera_status_subject(sid, cam_id), self._on_status)
                self._status_subs[cam_id] = sub
                self._subs.add(sub)
        await self._set_nats(login.nats)
        if old_token and old_token != login.token:
            await self._logout_token(old_token)
        self.error = ""
        return cameras

    async def _site_name(self) -> str:
        """The recorder's site (docs/design/site.md); "" when it has none, or is older than
        sites (404), keeps no site state (503) or refuses: the tree then shows it on its own."""
        try:
            site = await self.api.get_json("/site")
        except ApiError as exc:
            log.debug("%s: no site: %s", self.base_url, exc)
            return ""
        name = site.get("name") if isinstance(site, dict) else None
        return name if isinstance(name, str) else ""

    async def _logout_token(self, token: str) -> None:
        """Revoke the token a refresh replaced (its NATS user goes with it): best effort."""
        with contextlib.suppress(ApiError, TimeoutError):
            async with asyncio.timeout(LOGOUT_TIMEOUT_S):
                await self.api.request(
                    "POST", "/auth/logout", headers={"Authorization": f"Bearer {token}"}
                )

    async def _set_nats(self, access: NatsAccess | None) -> None:
        old = self.nats
        if access is None:
            if old is not None or self.live_available:
                log.warning("%s: the recorder hands out no NATS access: no live", self.name)
            self.nats, self._nats_access, self.live_available = None, None, False
            if old is not None:
                with contextlib.suppress(Exception):
                    await old.close()
                self.nats_changed.emit(self)
            return
        if old is not None and old.is_connected and access == self._nats_access:
            return
        client: NatsClient | None = None
        try:
            client = await self._nats_connect(access)
            for sub in list(self._subs):
                await sub._attach(client)
            await client.flush(timeout=2)
        except Exception as exc:  # nats-py raises several kinds (no servers, timeout, auth)
            log.warning("%s: NATS at %s unusable: %r", self.name, access.url, exc)
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.close()
            self.error = f"live unavailable: {exc!r}"
            self.live_available = old is not None and old.is_connected
            return
        self.nats, self._nats_access, self.live_available = client, access, True
        if old is not None:
            with contextlib.suppress(Exception):
                await old.close()
        self.nats_changed.emit(self)

    async def _nats_connect(self, access: NatsAccess) -> NatsClient:
        holder: dict[str, NatsClient] = {}

        async def on_error(exc: Exception) -> None:
            if isinstance(exc, AuthorizationError) and holder.get("c") is self.nats:
                self._poke("nats-auth")
            else:
                log.debug("%s: NATS: %s", self.name, exc)

        async def on_disconnected() -> None:
            if holder.get("c") is self.nats:
                self._poke("nats-disconnected")

        async def on_closed() -> None:
            if holder.get("c") is self.nats and not self._closed:
                self._poke("nats-closed")

        client = NatsClient()
        holder["c"] = client
        connect = client.connect(
            access.url,
            user=access.user,
            password=access.password,
            name=f"vigia-app {self.user}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=NATS_CONNECT_TIMEOUT_S,
            allow_reconnect=True,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            closed_cb=on_closed,
        )
        try:
            # with endless reconnects nats-py retries even the first connection forever
            async with asyncio.timeout(NATS_CONNECT_TIMEOUT_S * 2):
                await connect
        except BaseException:
            with contextlib.suppress(Exception):
                await client.close()
            raise
        return client

    async def _on_status(self, msg: Msg) -> None:
        try:
            body = json.loads(msg.data)
        except ValueError:
            log.warning("%s: unreadable status message %r", self.name, msg.data[:100])
            return
        if isinstance(body, dict):
            self.status_received.emit({**body, "server_id": self.server_id})

    async def _wait(self, timeout: float | None) -> str:
        """Sleep until poked or ``timeout`` (None: until poked); returns why it woke."""
        _, wake = self._events()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(None if timeout is None else max(0.0, timeout)):
                await wake.wait()
        wake.clear()
        reason, self._wake_reason = self._wake_reason, ""
        return reason or "timer"

    async def _supervise(self) -> None:
        """Keep the session online: refresh the login, notice outages, reconnect with backoff."""
        while not self._closed:
            try:
                if self.state != "online":
                    await self._establish()
                    self.backoff.reset()
                    continue
                await self._while_online()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                refused = isinstance(exc, ApiError) and exc.status in (401, 403, 409)
                self.error = exc.message if isinstance(exc, ApiError) else repr(exc)
                if not isinstance(exc, ApiError):
                    log.exception("%s: unexpected failure; reconnecting", self.base_url)
                if refused:
                    log.warning("%s: %s", self.base_url, exc)
                    self._set_state("error")
                    await self._wait(None)  # until reconnect()
                    continue
                self._set_state("reconnecting")
                await self._wait(self.backoff.next())

    async def _while_online(self) -> None:
        """One wait while online, then whatever woke it: renewal, a NATS refusal, a check."""
        refresh_at_us = self._refresh_at_us()
        reason = await self._wait(min(self.health_interval_s, (refresh_at_us - now_us()) / 1e6))
        if self._closed:
            return
        if now_us() >= refresh_at_us:
            log.info("%s: renewing the login", self.name)
            await self._establish()
        elif reason in ("nats-auth", "nats-closed"):
            log.info("%s: logging in again (%s)", self.name, reason)
            await self._relogin(self._poke_token)
        else:
            await self.call(lambda api: api.get_json("/server"))
            if not self.live_available and self._login and self._login.nats:
                await self._set_nats(self._login.nats)  # retry a NATS that failed

    def _refresh_at_us(self) -> int:
        login = self._login
        if login is None:
            return now_us()
        # the recorder's clock may differ from ours: the lifetime is what counts, not the instant
        issued_us = self._issued_us
        return issued_us + int((login.expires_us - issued_us) * self.refresh_fraction)


class Sessions:
    """All logged-in recorders, keyed by server id, and their cameras merged into one tree."""

    def __init__(self, runner: AsyncRunner, tree: CameraTree | None = None) -> None:
        self.runner = runner
        self.tree = tree or CameraTree()
        self.added: Signal[Session] = Signal("sessions.added")
        self.removed: Signal[Session] = Signal("sessions.removed")
        # any session's state changed, those still logging in for the first time included
        self.state_changed: Signal[Session] = Signal("sessions.state_changed")
        self._sessions: dict[str, Session] = {}
        self._pending: dict[str, Session] = {}  # by URL, until their first login
        self._unhook: dict[int, list[Callable[[], None]]] = {}

    def sessions(self) -> list[Session]:
        return list(self._sessions.values())

    def get(self, server_id: str) -> Session | None:
        return self._sessions.get(server_id)

    def pending(self) -> list[Session]:
        """Sessions logging in in the background that never were online yet."""
        return list(self._pending.values())

    def connect(self, base_url: str, user: str, password: str, timeout: float = 10) -> Session:
        """Log in now (raises ApiError); the same recorder twice gives the existing session."""
        session = Session(self.runner, base_url, user, password)
        try:
            session.open(timeout)
        except BaseException:
            session.close()
            raise
        existing = self._sessions.get(session.server_id)
        if existing is not None:
            session.close()
            return existing
        self._hook(session)
        self._adopt(session)
        return session

    def connect_later(self, base_url: str, user: str, password: str) -> Session:
        """Connect in the background, retrying (a saved server that may be down now)."""
        url = normalize_url(base_url)
        if url in self._pending:
            return self._pending[url]
        session = Session(self.runner, url, user, password)
        self._pending[url] = session
        self._hook(session)
        session.start()
        return session

    def follow(
        self, discovery: Discovery, credentials: Callable[[ServerEntry], tuple[str, str] | None]
    ) -> Callable[[], None]:
        """Log in to recorders as they are discovered, when ``credentials(entry)`` knows how."""

        def on_added(entry: ServerEntry) -> None:
            known = self._sessions.get(entry.server_id)
            if known is not None:
                if known.state == "reconnecting":
                    known.reconnect()  # it announced itself again: no need to wait the backoff
                return
            creds = credentials(entry)
            if creds is not None:
                self.connect_later(entry.base_url, *creds)

        for entry in discovery.servers():
            on_added(entry)
        return discovery.added.connect(on_added)

    def disconnect(self, server_id: str) -> None:
        session = self._sessions.pop(server_id, None)
        if session is None:
            return
        self._unhook_all(session)
        session.close()
        self.tree.remove_recorder(server_id)
        self.removed.emit(session)

    def close(self) -> None:
        for sid in list(self._sessions):
            self.disconnect(sid)
        for session in list(self._pending.values()):
            self._unhook_all(session)
            session.close()
        self._pending.clear()

    def _hook(self, session: Session) -> None:
        def on_changed(s: Session) -> None:
            if s.state == "online" and self._pending.get(s.base_url) is s:
                del self._pending[s.base_url]
                if s.server_id in self._sessions:  # the same recorder by another address
                    self._unhook_all(s)
                    self.runner.submit(s.close_async())
                    return
                self._adopt(s)
            if s.server_id and self._sessions.get(s.server_id) is s:
                self.tree.set_recorder(s.server_id, s.name, s.state, s.site)
            self.state_changed.emit(s)

        def on_cameras(s: Session) -> None:
            if s.server_id and self._sessions.get(s.server_id) is s:
                self.tree.set_cameras(s.server_id, s.cameras)

        def on_status(msg: dict) -> None:
            if self._sessions.get(msg.get("server_id", "")) is session:
                self.tree.apply_status(msg["server_id"], msg)

        self._unhook[id(session)] = [
            session.changed.connect(on_changed),
            session.cameras_changed.connect(on_cameras),
            session.status_received.connect(on_status),
        ]

    def _adopt(self, session: Session) -> None:
        self._sessions[session.server_id] = session
        self.tree.set_recorder(session.server_id, session.name, session.state, session.site)
        self.tree.set_cameras(session.server_id, session.cameras)
        self.added.emit(session)

    def _unhook_all(self, session: Session) -> None:
        for undo in self._unhook.pop(id(session), []):
            undo()
