"""Liveness and identity of a recorder."""

from __future__ import annotations

from typing import Literal

import msgspec

from server.protocol.models.archive import ArchiveStatus
from server.protocol.models.common import Micros


class Health(msgspec.Struct):
    status: Literal["ok"]
    streams: int
    online: int


class Server(msgspec.Struct):
    """Recorder identity and clock (``time_us`` lets a client see its own clock offset)."""

    id: str
    name: str
    version: str
    api: str
    time_us: Micros
    archive: ArchiveStatus | None = None  # none: no [archive] configured
