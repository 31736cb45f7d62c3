"""Discovery's wire form: the ``_vigia._tcp.local.`` TXT record a recorder advertises.

Pure standard library, so that the workstation (which may import only ``server.protocol``)
reads advertisements with the same code that writes them. The mDNS side is ``server.discovery``.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

SERVICE_TYPE = "_vigia._tcp.local."
DEFAULT_API = "/api/v1"

_SERVER_ID = re.compile(r"^[0-9a-f]{12}$")
_MAX_LABEL = 63  # bytes in one DNS label (RFC 1035), the instance name included
_MAX_TXT_STRING = 255  # bytes in one "key=value" string of a TXT record (RFC 6763 §6.1)
_TRUE = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class Advertisement:
    """What a recorder tells the local network (the TXT keys of docs/design/workstation.md)."""

    server_id: str
    name: str
    port: int  # the HTTP API's
    version: str
    api: str = DEFAULT_API
    tls: bool = False
    nats: str = ""  # "4222" (same host as the API) or "nats://host:4222"; "" when none
    site: str = ""  # the ``[site] name`` it belongs to; "" when none (no TXT key then)

    def __post_init__(self) -> None:
        if not _SERVER_ID.fullmatch(self.server_id):
            raise ValueError(f"server id {self.server_id!r} is not 12 lowercase hex digits")
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} out of range")
        if not self.api.startswith("/"):
            raise ValueError(f"api {self.api!r} must be an absolute path")
        if "://" in self.nats and "@" in urlsplit(self.nats).netloc:
            # TXT records are readable by anyone on the link: never leak NATS credentials
            raise ValueError("nats URL must not carry credentials")
        for key, value in self.txt().items():
            if len(f"{key}={value}".encode()) > _MAX_TXT_STRING:
                raise ValueError(f"TXT entry {key!r} is over {_MAX_TXT_STRING} bytes")

    def txt(self) -> dict[str, str]:
        """The TXT record, as the key/value strings that go on the wire. ``site`` only when
        the recorder belongs to one, so a recorder without a site advertises what it always did."""
        txt = {
            "id": self.server_id,
            "name": self.name,
            "version": self.version,
            "api": self.api,
            "tls": "1" if self.tls else "0",
            "nats": self.nats,
        }
        if self.site:
            txt["site"] = self.site
        return txt

    def instance_name(self) -> str:
        """DNS-SD instance name: readable, unique through the id, one DNS label (≤ 63 bytes).

        Reduced to ``[a-z0-9-]`` so that it is safe wherever a host label is expected, too.
        """
        slug = unicodedata.normalize("NFKD", self.name).encode("ascii", "ignore").decode()
        slug = re.sub(r"[^a-z0-9]+", "-", slug.lower()).strip("-") or "vigia"
        slug = slug[: _MAX_LABEL - len(self.server_id) - 1].rstrip("-")
        return f"{slug}-{self.server_id}"


def advertisement_from_txt(txt: Mapping[str, str | None], port: int) -> Advertisement | None:
    """Read an advertisement back from a TXT record (decoded to str) and the SRV port.

    Depends only on plain values so that a client can use it with any mDNS library. Returns None
    for a record that is not a usable Vigia server (no or bad ``id``, bad port): a browser should
    skip those rather than fail.
    """
    sid = (txt.get("id") or "").strip().lower()
    try:
        return Advertisement(
            server_id=sid,
            name=txt.get("name") or sid,
            port=int(port),
            version=txt.get("version") or "",
            api=txt.get("api") or DEFAULT_API,
            tls=(txt.get("tls") or "").strip().lower() in _TRUE,
            nats=txt.get("nats") or "",
            site=(txt.get("site") or "").strip(),
        )
    except (TypeError, ValueError) as exc:
        log.debug("ignoring a %s record: %s", SERVICE_TYPE, exc)
        return None
