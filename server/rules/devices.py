"""What rule actions ask of a camera's ONVIF device: go to a PTZ preset, switch a relay output.

The commands go through ``server.onvif.OnvifDevice`` (the same session layer as the PTZ API,
docs/design/cameras.md), one kept session per camera. Every outcome is a ``DeviceResult``:
an action on a camera that was not added from a device, whose device lacks PTZ or relay outputs,
or that does not answer, fails with the reason, which the engine lists as a failed delivery
(docs/design/rules.md).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from server.catalog import Catalog
from server.catalog.onvif import CameraOnvif
from server.onvif import OnvifDevice, OnvifError

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class DeviceResult:
    ok: bool
    target: str  # "<camera> preset <name>", "<camera> output <token>"
    error: str = ""


class CameraDevices:
    """The devices behind cameras, for rule actions."""

    def __init__(self, catalog: Catalog) -> None:
        self.onvif = CameraOnvif(catalog)
        self._open: dict[str, OnvifDevice] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def close(self) -> None:
        devices, self._open = self._open, {}
        for dev in devices.values():
            await dev.close()

    async def _device(self, camera: str) -> OnvifDevice | str:
        """The open session, or why there is none."""
        row = await asyncio.to_thread(self.onvif.get, camera)
        if row is None:
            return f"camera {camera!r} was not added from an ONVIF device"
        async with self._locks.setdefault(camera, asyncio.Lock()):
            dev = self._open.get(camera)
            if dev is not None and (dev.address, dev.username, dev.password) == (
                row.address, row.username, row.password
            ):  # fmt: skip
                return dev
            if dev is not None:
                await dev.close()
            try:
                dev = await OnvifDevice(row.address, row.username, row.password).open()
            except OnvifError as exc:
                return f"{exc.kind}: {exc.message}"
            self._open[camera] = dev
            return dev

    async def _run(self, camera: str, target: str, work: Any) -> DeviceResult:
        dev = await self._device(camera)
        if isinstance(dev, str):
            return DeviceResult(False, target, dev)
        try:
            error = await asyncio.wait_for(work(dev), CALL_TIMEOUT_S)
        except OnvifError as exc:
            if exc.kind == "unreachable":
                self._open.pop(camera, None)
                await dev.close()
            return DeviceResult(False, target, f"{exc.kind}: {exc.message}")
        except TimeoutError:
            return DeviceResult(False, target, f"no answer in {CALL_TIMEOUT_S:.0f} s")
        return DeviceResult(not error, target, error or "")

    async def goto_preset(self, camera: str, preset: str) -> DeviceResult:
        """``preset``: a preset's token or its name."""

        async def work(dev: OnvifDevice) -> str:
            found = await dev.presets()
            match = next((p for p in found if preset in (p.token, p.name)), None)
            if match is None:
                names = ", ".join(p.name or p.token for p in found) or "none"
                return f"no preset {preset!r} (the camera has: {names})"
            await dev.goto_preset(match.token)
            return ""

        return await self._run(camera, f"{camera} preset {preset}", work)

    async def set_output(self, camera: str, output: str, active: bool) -> DeviceResult:
        """``output``: a relay output's token; empty: the device's first output."""
        target = f"{camera} output {output or '(first)'}"

        async def work(dev: OnvifDevice) -> str:
            found = await dev.relay_outputs()
            if not found:
                return f"camera {camera!r} has no relay outputs"
            tokens = [o.token for o in found]
            token = output or tokens[0]
            if token not in tokens:
                return f"no relay output {output!r} (the camera has: {', '.join(tokens)})"
            await dev.set_relay_output(token, active)
            return ""

        return await self._run(camera, target, work)
