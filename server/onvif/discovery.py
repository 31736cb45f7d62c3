"""WS-Discovery of ONVIF devices: one Probe per interface, the ProbeMatches gathered.

Written on the standard library rather than the ``wsdiscovery`` package: that one joins and
probes on every interface of the machine from its own threads, while a recorder must choose
the interfaces it probes (a test must never reach the real network, and a site may keep the
camera VLAN apart). The messages are WS-Discovery 2005/04, the version ONVIF requires.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import ifaddr

log = logging.getLogger(__name__)

GROUP, PORT = "239.255.255.250", 3702
WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
PROBE = f"""<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
 xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="{WSD}"
 xmlns:dn="http://www.onvif.org/ver10/network/wsdl">
<s:Header><a:Action s:mustUnderstand="1">{WSD}/Probe</a:Action>
<a:MessageID>{{message_id}}</a:MessageID>
<a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address>
</a:ReplyTo><a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>
</s:Header><s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body>
</s:Envelope>"""
SCOPE_PREFIX = "onvif://www.onvif.org/"


@dataclass
class Found:
    """One device that answered: its endpoint and what its scopes say about it."""

    endpoint: str  # urn:uuid:... (stable across address changes)
    xaddrs: list[str]
    scopes: list[str]
    seen_from: str  # the sender's IP address
    name: str = ""
    manufacturer: str = ""
    model: str = ""
    mac: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        """The device service address, preferring one on the sender's own address."""
        for x in self.xaddrs:
            if urlsplit(x).hostname == self.seen_from:
                return x
        return self.xaddrs[0] if self.xaddrs else ""


def interface_addresses() -> list[str]:
    """Every IPv4 address of this machine but loopback: the default probe set."""
    out = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ip.ip.startswith("127."):
                out.append(ip.ip)
    return out


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def split_scopes(text: str) -> list[str]:
    """Scopes are space separated URIs; a device that does not escape a space in a name
    (IPyCam: ``.../name/Cam A``) gets the loose word joined back to its scope."""
    out: list[str] = []
    for word in text.split():
        if "://" in word or not out:
            out.append(word)
        else:
            out[-1] += " " + word
    return out


def parse_probe_matches(data: bytes, sender: str) -> list[Found]:
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return []
    found = []
    for match in root.iter():
        if _local(match.tag) != "ProbeMatch":
            continue
        fields: dict[str, str] = {}
        for el in match.iter():
            name = _local(el.tag)
            if name in ("Address", "Types", "Scopes", "XAddrs") and el.text:
                fields.setdefault(name, el.text.strip())
        if not fields.get("XAddrs"):
            continue
        dev = Found(
            endpoint=fields.get("Address", ""),
            xaddrs=fields["XAddrs"].split(),
            scopes=split_scopes(fields.get("Scopes", "")),
            seen_from=sender,
        )
        for scope in dev.scopes:
            if not scope.startswith(SCOPE_PREFIX):
                continue
            key, _, value = scope[len(SCOPE_PREFIX) :].partition("/")
            value = unquote(value)
            if key == "name":
                dev.name = value
            elif key in ("hardware", "model"):
                dev.model = value
            elif key in ("mfr", "manufacturer"):
                dev.manufacturer = value
            elif key == "mac":
                dev.mac = value
            elif key not in ("type", "Profile", "location"):
                dev.extra[key] = value
        found.append(dev)
    return found


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, message_id: str, sink: dict[str, Found]) -> None:
        self.message_id, self.sink = message_id, sink

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        if self.message_id.encode() not in data:
            return  # an answer to somebody else's probe, or a Hello
        for dev in parse_probe_matches(data, addr[0]):
            self.sink.setdefault(dev.endpoint or dev.address, dev)


async def probe(
    interfaces: list[str], timeout_s: float = 1.5, unicast: list[str] | None = None
) -> list[Found]:
    """Probe from each interface address (multicast) and to each ``unicast`` host (for
    networks multicast does not reach); gather the answers for ``timeout_s``."""
    loop = asyncio.get_running_loop()
    message_id = f"urn:uuid:{uuid.uuid4()}"
    payload = PROBE.replace("{message_id}", message_id).encode()
    found: dict[str, Found] = {}
    transports = []
    targets: list[tuple[str, str]] = [(a, GROUP) for a in interfaces]
    targets += [("0.0.0.0", host) for host in unicast or []]
    started = time.monotonic()
    try:
        for local, dest in targets:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
            try:
                sock.bind((local, 0))
                if dest == GROUP:
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
                    sock.setsockopt(
                        socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(local)
                    )
                sock.setblocking(False)
            except OSError as exc:
                log.warning("WS-Discovery: cannot probe from %s: %s", local, exc)
                sock.close()
                continue
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Collector(message_id, found), sock=sock
            )
            transports.append(transport)
            for _ in range(2):  # UDP: the spec repeats a probe (SOAP-over-UDP)
                try:
                    transport.sendto(payload, (dest, PORT))
                except OSError as exc:
                    log.warning("WS-Discovery: probe to %s from %s: %s", dest, local, exc)
        await asyncio.sleep(max(0.0, timeout_s - (time.monotonic() - started)))
    finally:
        for t in transports:
            t.close()
    return sorted(found.values(), key=lambda d: (d.address, d.endpoint))
