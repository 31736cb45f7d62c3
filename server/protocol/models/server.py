"""Liveness and identity of a recorder."""

from __future__ import annotations

from typing import Literal

import msgspec

from server.protocol.models.archive import ArchiveStatus
from server.protocol.models.common import Micros


class Health(msgspec.Struct):
    """``degraded``: the process answers but live distribution is down or the volume is not
    ``ok`` (issue 19: a taken NATS port turned live off while this said ok); still a 200."""

    status: Literal["ok", "degraded"]
    streams: int
    online: int
    live: Literal["connected", "disconnected", "off"] = "off"
    storage: Literal["ok", "full", "unfreeable", "error", "unknown"] = "unknown"


class Server(msgspec.Struct):
    """Recorder identity and clock (``time_us`` lets a client see its own clock offset)."""

    id: str
    name: str
    version: str
    api: str
    time_us: Micros
    archive: ArchiveStatus | None = None  # none: no [archive] configured
