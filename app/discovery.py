"""The recorders a workstation can reach: found by zeroconf, plus addresses the user typed.

Zeroconf runs on the ``AsyncRunner`` loop (``AsyncZeroconf`` + ``AsyncServiceBrowser``). Entries
found by mDNS are keyed on the TXT ``id`` (the stable server id), never on the instance name,
which follows the display name; a rename (new name announced, old one withdrawn) is therefore an
update, not a removal. Manual entries are keyed on their normalised URL until a login tells who
they are (``identify``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from app.loop import AsyncRunner
from app.signals import Signal
from server.protocol.discovery import SERVICE_TYPE, Advertisement, advertisement_from_txt

log = logging.getLogger(__name__)

DEFAULT_PORT = 8480  # the recorder's default API port (server config ``listen``)
RESOLVE_TIMEOUT_MS = 3000
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$",
    re.I,
)


@dataclass(frozen=True)
class ServerEntry:
    """One recorder in the list; ``server_id`` is "" for a manual address not yet logged in to."""

    server_id: str
    name: str
    base_url: str  # e.g. http://192.0.2.7:8480 (no /api/v1)
    nats_port: int | None
    source: str  # 'zeroconf' | 'manual'
    version: str = ""  # the recorder's, as advertised ("" for a typed address)
    site: str = ""  # the site it belongs to (TXT ``site``); "" when none or not known

    @property
    def key(self) -> str:
        """What the list is keyed on: the server id when known, else the URL."""
        return self.server_id or self.base_url


def normalize_url(text: str) -> str:
    """``host``, ``host:port`` or ``http(s)://host[:port][/api/v1]`` → ``scheme://host:port``.

    Raises ValueError with the reason for anything that is not a usable recorder address.
    """
    raw = text.strip()
    if not raw:
        raise ValueError("empty recorder address")
    if "://" not in raw:
        raw = f"http://{raw}"
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{text!r}: only http and https recorders are supported")
    if parts.username or parts.password:
        raise ValueError(f"{text!r}: put credentials in the login, not in the address")
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # a port that is not a number or out of range
        raise ValueError(f"{text!r}: {exc}") from None
    if not host:
        raise ValueError(f"{text!r}: no host")
    if not _is_ip(host) and not _HOSTNAME.fullmatch(host):
        raise ValueError(f"{text!r}: {host!r} is not a host name or IP address")
    path = parts.path.rstrip("/")
    if path not in ("", "/api/v1"):
        raise ValueError(f"{text!r}: unexpected path {parts.path!r} (give the recorder's address)")
    if port is None:
        port = DEFAULT_PORT if parts.scheme == "http" else 443
    return f"{parts.scheme}://{_host_for_url(host)}:{port}"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _host_for_url(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host.lower()


def _nats_port(adv: Advertisement) -> int | None:
    value = adv.nats.strip()
    if not value:
        return None
    if value.isdigit():
        return int(value)
    try:
        return urlsplit(value).port
    except ValueError:
        return None


def _pick_address(addresses: Sequence[str]) -> str | None:
    """IPv4 first (what a recorder's API serves for sure), then global/ULA IPv6."""
    v4 = [a for a in addresses if ":" not in a]
    if v4:
        return v4[0]
    # link-local IPv6 needs a scope id that URLs handle badly; skip it
    v6 = [a for a in addresses if "%" not in a and not ipaddress.ip_address(a).is_link_local]
    return v6[0] if v6 else None


def entry_from_service(adv: Advertisement, addresses: Sequence[str]) -> ServerEntry | None:
    address = _pick_address(addresses)
    if address is None:
        return None
    scheme = "https" if adv.tls else "http"
    return ServerEntry(
        server_id=adv.server_id,
        name=adv.name,
        base_url=f"{scheme}://{_host_for_url(address)}:{adv.port}",
        nats_port=_nats_port(adv),
        source="zeroconf",
        version=adv.version,
        site=adv.site,
    )


class Discovery:
    """Live list of recorders. ``interfaces``: zeroconf's choice (all by default; tests pass
    ``["127.0.0.1"]`` so nothing is multicast on the machine's network)."""

    def __init__(
        self,
        runner: AsyncRunner,
        interfaces: Sequence[str] | InterfaceChoice = InterfaceChoice.All,
        service_type: str = SERVICE_TYPE,
    ) -> None:
        self._runner = runner
        self._interfaces = interfaces
        self._type = service_type
        self.added: Signal[ServerEntry] = Signal("discovery.added")
        self.updated: Signal[ServerEntry] = Signal("discovery.updated")
        self.removed: Signal[ServerEntry] = Signal("discovery.removed")
        self._lock = threading.Lock()
        self._entries: dict[str, ServerEntry] = {}
        self._names: dict[str, str] = {}  # mDNS instance name -> server id
        self._azc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._tasks: set[asyncio.Task] = set()

    # --- the list ---------------------------------------------------------------------------

    def servers(self) -> list[ServerEntry]:
        with self._lock:
            return sorted(self._entries.values(), key=lambda e: (e.name.lower(), e.key))

    def get(self, key: str) -> ServerEntry | None:
        """By server id or by (normalised) URL."""
        with self._lock:
            return self._find(key)

    def _find(self, key: str) -> ServerEntry | None:
        if key in self._entries:
            return self._entries[key]
        try:
            url = normalize_url(key)
        except ValueError:
            return None
        return next((e for e in self._entries.values() if e.base_url == url), None)

    def add_manual(self, url: str, name: str = "") -> ServerEntry:
        """Add a typed address (ValueError when unusable); adding it twice changes nothing."""
        base = normalize_url(url)
        with self._lock:
            for e in self._entries.values():
                if e.source == "manual" and e.base_url == base:
                    return e
            entry = ServerEntry("", name or base.split("://", 1)[1], base, None, "manual")
            self._entries[entry.key] = entry
        self.added.emit(entry)
        return entry

    def identify(
        self, url: str, server_id: str, name: str, *, site: str = ""
    ) -> ServerEntry | None:
        """A manual entry learned who it is (after a login): re-key it on the server id."""
        base = normalize_url(url)
        with self._lock:
            old = next(
                (e for e in self._entries.values() if e.source == "manual" and e.base_url == base),
                None,
            )
            if old is None:
                return None
            new = replace(old, server_id=server_id, name=name or old.name, site=site or old.site)
            if new == old:
                return old
            del self._entries[old.key]
            clash = self._entries.get(new.key)
            if clash is not None and clash.source == "zeroconf":
                # the same recorder is also advertised: the typed address stays, keyed by URL
                new = replace(new, server_id="")
            self._entries[new.key] = new
        self.updated.emit(new)
        return new

    def remove(self, key: str) -> bool:
        """Remove a manual entry by server id or URL; advertised ones go when they withdraw."""
        with self._lock:
            entry = self._find(key)
            if entry is None or entry.source != "manual":
                if entry is not None:
                    log.info("%s is advertised by zeroconf; it stays while it is", entry.name)
                return False
            del self._entries[entry.key]
        self.removed.emit(entry)
        return True

    # --- zeroconf ---------------------------------------------------------------------------

    def start(self, timeout: float = 10) -> None:
        """Start browsing (blocking; from any thread but the runner's)."""
        self._runner.call(self.start_async(), timeout)

    async def start_async(self) -> None:
        if self._azc is not None:
            return
        self._azc = AsyncZeroconf(interfaces=self._interfaces, ip_version=IPVersion.V4Only)
        self._browser = AsyncServiceBrowser(
            self._azc.zeroconf, self._type, handlers=[self._on_change]
        )
        log.info("browsing for %s", self._type)

    def stop(self, timeout: float = 10) -> None:
        self._runner.call(self.stop_async(), timeout)

    async def stop_async(self) -> None:
        browser, azc = self._browser, self._azc
        self._browser = self._azc = None
        for task in list(self._tasks):
            task.cancel()
        if browser is not None:
            await browser.async_cancel()
        if azc is not None:
            await azc.async_close()

    def _on_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        # called on the loop by zeroconf; resolving needs awaiting, so hand it to a task
        task = asyncio.get_running_loop().create_task(self._handle(name, state_change))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, name: str, change: ServiceStateChange) -> None:
        if change is ServiceStateChange.Removed:
            self._vanished(name)
            return
        azc = self._azc
        if azc is None:
            return
        info = AsyncServiceInfo(self._type, name)
        if not await info.async_request(azc.zeroconf, RESOLVE_TIMEOUT_MS):
            log.debug("could not resolve %s", name)
            return
        adv = advertisement_from_txt(info.decoded_properties, info.port or 0)
        entry = entry_from_service(adv, info.parsed_scoped_addresses()) if adv else None
        if entry is None:
            log.debug("ignoring %s: not a usable Vigia recorder", name)
            return
        self._seen(name, entry)

    def _seen(self, name: str, entry: ServerEntry) -> None:
        with self._lock:
            self._names[name] = entry.server_id
            old = self._entries.get(entry.server_id)
            if old == entry:
                return
            rekeyed = None
            if old is not None and old.source == "manual":
                # a typed address that turned out to be advertised: keep it, keyed on its URL
                rekeyed = self._entries[old.base_url] = replace(old, server_id="")
            self._entries[entry.server_id] = entry
        if rekeyed is not None:
            self.updated.emit(rekeyed)
        if old is None or old.source == "manual":
            log.info("found recorder %r (%s) at %s", entry.name, entry.server_id, entry.base_url)
            self.added.emit(entry)
        else:
            self.updated.emit(entry)

    def _vanished(self, name: str) -> None:
        with self._lock:
            sid = self._names.pop(name, None)
            if sid is None or sid in self._names.values():
                return  # unknown, or the server still goes by another instance name (renamed)
            entry = self._entries.get(sid)
            if entry is None or entry.source != "zeroconf":
                return
            del self._entries[sid]
        log.info("recorder %r (%s) withdrew", entry.name, sid)
        self.removed.emit(entry)
