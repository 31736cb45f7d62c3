"""Switching a camera's relay output (siren, light) from the recorder itself: the rules
engine's "switch a camera output" action (docs/design/cameras.md, docs/design/rules.md).

The API switches through its own device sessions (``server/api/ptz.py``), audited per user;
this opens a session for one command, which suits rules (rare, and each its own event).
"""

from __future__ import annotations

import asyncio

from server.catalog import Catalog
from server.catalog.onvif import CameraOnvif
from server.onvif.device import OnvifDevice, OnvifError, RelayOutput

__all__ = ["pick_output", "switch_output"]


async def _device(catalog: Catalog, camera_id: str) -> OnvifDevice:
    row = await asyncio.to_thread(CameraOnvif(catalog).get, camera_id)
    if row is None:
        raise OnvifError(
            "unsupported", f"camera {camera_id!r} was not added from an ONVIF device: no outputs"
        )
    return await OnvifDevice(row.address, row.username, row.password).open()


def pick_output(outputs: list[RelayOutput], token: str | None) -> RelayOutput:
    """The output named ``token`` (None: the first); OnvifError naming what the camera has."""
    if not outputs:
        raise OnvifError("unsupported", "the camera has no relay outputs")
    if token is None:
        return outputs[0]
    for out in outputs:
        if out.token == token:
            return out
    have = ", ".join(o.token for o in outputs)
    raise OnvifError("unsupported", f"the camera has no relay output {token!r} (it has: {have})")


async def switch_output(
    catalog: Catalog, camera_id: str, active: bool, token: str | None = None
) -> str:
    """Set relay output ``token`` (None: the camera's first) of ``camera_id`` active or
    inactive; returns the token switched. Raises :class:`OnvifError` with what went wrong:
    ``unsupported`` (no device, no outputs, no such output), ``unreachable``, ``auth``,
    ``refused`` (the device said no), and its message says so in words."""
    dev = await _device(catalog, camera_id)
    try:
        out = pick_output(await dev.relay_outputs(), token)
        await dev.set_relay_output(out.token, active)
        return out.token
    finally:
        await dev.close()
