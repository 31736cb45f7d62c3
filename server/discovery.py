"""Zeroconf (mDNS/DNS-SD) advertisement of a recorder, so workstations find it without typing URLs.

One service of type ``_vigia._tcp.local.`` per recorder: its port is the HTTP API's, and its TXT
record carries ``id`` (the stable server id), ``name``, ``version``, ``api``, ``tls``, ``nats``
(a port on the same host, or a URL) and, for a recorder of a site, ``site`` (its name). Clients
must key servers on ``id``, not on the instance name: the instance name follows the display
name, and changes when the server is renamed.

The TXT record's wire form lives in ``server.protocol.discovery`` (pure, shared with the
workstation); this module is the mDNS side.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from zeroconf import (
    DNSQuestionType,
    InterfaceChoice,
    IPVersion,
    NonUniqueNameException,
    ServiceInfo,
)
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from server.config import Config
from server.protocol.discovery import (
    DEFAULT_API,
    SERVICE_TYPE,
    Advertisement,
    advertisement_from_txt,
)

log = logging.getLogger(__name__)


__all__ = [
    "DEFAULT_API",
    "SERVICE_TYPE",
    "Advertisement",
    "Advertiser",
    "advertisement_from_txt",
    "parse_service_info",
]

# --- zeroconf part -----------------------------------------------------------------------------

Interfaces = Sequence[str] | InterfaceChoice

REGISTER_TIMEOUT_S = 10.0  # probing and announcing take ~1.5 s
# How long start() asks by multicast whether another recorder holds our name. A live responder
# answers within ~0.1 s, or after 1 s when it multicast the records in the last second (RFC 6762
# section 14), so no answer in 2 s means nobody holds it.
DUPLICATE_LOOKUP_S = 2.0
CLOSE_TIMEOUT_S = 3.0  # goodbyes take ~0.3 s; never hold up shutdown for long


def parse_service_info(info: ServiceInfo) -> Advertisement | None:
    """An advertisement from a resolved zeroconf ``ServiceInfo`` (None if not a Vigia server).

    The host's addresses are not part of it: take them from ``info.parsed_scoped_addresses()``.
    """
    if info.port is None:
        return None
    return advertisement_from_txt(info.decoded_properties, info.port)


def strip_credentials(url: str) -> str:
    """A NATS URL fit for a TXT record: user and password removed."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def interfaces_for_listen(listen: str) -> Interfaces:
    """The interfaces to advertise on, from the API's ``host:port``: where clients can reach it.

    A wildcard host means every interface; a loopback host keeps the advertisement on this machine
    (mDNS on 127.0.0.1 reaches local browsers only), which is what the default config wants.
    """
    host = listen.rpartition(":")[0] if ":" in listen else listen
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::", "*"):
        return InterfaceChoice.All
    if host == "localhost":
        return ["127.0.0.1"]
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return sorted({str(ai[4][0]) for ai in infos})


def addresses_for(interfaces: Interfaces) -> list[str]:
    """The addresses to put in A/AAAA records for these interfaces.

    For "all interfaces", every non-loopback IPv4 address this host has: IPv4 is what a wildcard
    API listener serves for sure, and IPv6 link-local addresses are unusable without a scope.
    """
    if not isinstance(interfaces, InterfaceChoice):
        return [a for a in interfaces if not ipaddress.ip_address(a).is_unspecified]
    import ifaddr  # a zeroconf dependency

    out: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if ip.is_IPv4 and not ipaddress.ip_address(ip.ip).is_loopback:
                out.append(str(ip.ip))
    return out


class Advertiser:
    """Keeps one recorder advertised on the local network while it runs.

    ``start()`` probes and announces (and fails if another live recorder already advertises the
    same id, e.g. a copied data dir); ``update()`` re-announces changed TXT or port, and renames
    the instance when the display name changes (new name announced before the old one is
    withdrawn, so browsers never lose the server); ``close()`` sends goodbyes so that clients
    drop the server at once instead of waiting for the records' TTL.
    """

    def __init__(
        self,
        adv: Advertisement,
        *,
        interfaces: Interfaces | None = None,
        addresses: Sequence[str] | None = None,
        listen: str | None = None,
    ) -> None:
        """``interfaces`` defaults to those of ``listen`` (the API's address, default config's);
        ``addresses`` defaults to the addresses of ``interfaces``.
        """
        if interfaces is None:
            interfaces = interfaces_for_listen(listen or Config().listen)
        self._interfaces = interfaces
        self._addresses = list(addresses) if addresses is not None else addresses_for(interfaces)
        self._adv = adv
        self._zc: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def interfaces(self) -> Interfaces:
        return self._interfaces

    @property
    def advertisement(self) -> Advertisement:
        return self._adv

    @property
    def service_name(self) -> str | None:
        """The full DNS-SD name registered now (None when not advertising)."""
        return self._info.name if self._info else None

    def _service_info(self, adv: Advertisement) -> AsyncServiceInfo:
        return AsyncServiceInfo(
            SERVICE_TYPE,
            f"{adv.instance_name()}.{SERVICE_TYPE}",
            port=adv.port,
            properties=adv.txt(),
            server=f"vigia-{adv.server_id}.local.",
            parsed_addresses=self._addresses,
        )

    async def start(self) -> None:
        """Probe and announce. Raises on failure (callers may choose to run without discovery)."""
        async with self._lock:
            if self._zc is not None or self._closed:
                return
            if not self._addresses:
                raise RuntimeError("no address to advertise")
            ip_version = (
                IPVersion.All
                if any(ipaddress.ip_address(a).version == 6 for a in self._addresses)
                else IPVersion.V4Only
            )
            zc = AsyncZeroconf(interfaces=self._interfaces, ip_version=ip_version)
            info = self._service_info(self._adv)
            try:
                await self._refuse_duplicate(zc, info)
                await self._register(zc, info)
            except BaseException:
                await zc.async_close()
                raise
            self._zc, self._info = zc, info
            log.info(
                "advertising %r on %s (port %d)",
                info.name,
                ", ".join(self._addresses),
                self._adv.port,
            )

    async def _refuse_duplicate(self, zc: AsyncZeroconf, info: AsyncServiceInfo) -> None:
        """Raise if a live recorder already answers for our instance name.

        zeroconf's own probes ask for unicast answers, and a defender that announced recently
        answers by unicast only, to port 5353; on one machine every mDNS socket shares that
        port, and a unicast datagram reaches just one of them (RFC 6762 section 15), usually
        not ours. So a second recorder on the same host never heard the defence. Asked by
        multicast (QM), the answer reaches every socket.
        """
        other = AsyncServiceInfo(info.type, info.name)
        if await other.async_request(
            zc.zeroconf, DUPLICATE_LOOKUP_S * 1000, question_type=DNSQuestionType.QM
        ):
            raise NonUniqueNameException(
                f"{info.name} is already advertised: another recorder runs with server id "
                f"{self._adv.server_id} (a copied data dir?)"
            )

    async def _register(self, zc: AsyncZeroconf, info: AsyncServiceInfo) -> None:
        try:
            async with asyncio.timeout(REGISTER_TIMEOUT_S):
                await (await zc.async_register_service(info))
        except NonUniqueNameException:
            raise NonUniqueNameException(
                f"{info.name} is already advertised: another recorder runs with server id "
                f"{self._adv.server_id} (a copied data dir?)"
            ) from None

    async def update(self, adv: Advertisement) -> None:
        """Advertise ``adv`` from now on; re-announce only if something changed."""
        if adv.server_id != self._adv.server_id:
            raise ValueError("the server id of a running advertiser cannot change")
        async with self._lock:
            zc, info = self._zc, self._info
            if zc is None or info is None or adv == self._adv:
                self._adv = adv  # not advertising: start() will use the new one
                return
            new = self._service_info(adv)
            if new.name == info.name:
                self._info = new
                await (await zc.async_update_service(new))
                log.info("re-announced %r: %s", new.name, adv.txt())
            else:
                await self._register(zc, new)
                self._info = new
                await (await zc.async_unregister_service(info))
                log.info("renamed %r to %r", info.name, new.name)
            self._adv = adv

    async def close(self) -> None:
        """Withdraw the service (goodbye packets) and release the sockets. Idempotent."""
        async with self._lock:
            self._closed = True
            zc, info = self._zc, self._info
            self._zc = self._info = None
            if zc is None:
                return
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    if info is not None:
                        await (await zc.async_unregister_service(info))
                    await zc.async_close()
                log.info("withdrew %r", info.name if info else SERVICE_TYPE)
            except TimeoutError:
                log.warning("zeroconf did not close within %.0f s", CLOSE_TIMEOUT_S)
