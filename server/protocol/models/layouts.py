"""The workstation's named wall layouts (the layout itself is the workstation's business)."""

from __future__ import annotations

from typing import Any

import msgspec

from server.protocol.models.common import Micros


class Layout(msgspec.Struct):
    owner: str
    name: str
    shared: bool
    layout: dict[str, Any]
    updated_us: Micros


class LayoutInput(msgspec.Struct, forbid_unknown_fields=True):
    layout: dict[str, Any]
    shared: bool = False
