"""PTZ of cameras added from an ONVIF device: moves, stop, home and presets; and their relay
outputs (siren, light), switched by the same users and audited the same way (``relay``).

Operators and admins steer (``ptz`` right, per camera); every command is audited. One user
holds a camera's control at a time, for ``HOLD_S`` after their last command; another user's
command meanwhile gets 409 naming the holder. A camera without an ONVIF device, or whose
device lacks a command, answers 409/422 with what is missing (docs/design/cameras.md)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from server.api.auth import Security, require
from server.api.bodies import decode_body, json_response
from server.api.errors import ApiError
from server.api.lookups import find_camera
from server.api.routing import API, Param, Route, RouteGroup
from server.auth import Permission
from server.auth.audit import PTZ, RELAY
from server.catalog import Catalog
from server.catalog.onvif import CameraOnvif
from server.clock import Clock
from server.onvif import OnvifDevice, OnvifError
from server.onvif.outputs import pick_output
from server.protocol.models import (
    PtzMove,
    PtzPreset,
    PtzPresetInput,
    PtzState,
    PtzVector,
    RelayOutput,
    RelayOutputState,
)

log = logging.getLogger(__name__)

HOLD_S = 15.0  # control stays with the last user this long after their last command
ERROR_STATUS = {
    "bad_address": (409, "onvif_address"),
    "unreachable": (502, "camera_unreachable"),
    "auth": (502, "camera_auth"),
    "unsupported": (422, "ptz_unsupported"),
    "refused": (422, "camera_refused"),
}


def onvif_error(exc: OnvifError) -> ApiError:
    status, code = ERROR_STATUS[exc.kind]
    return ApiError(status, code, exc.message)


def output_error(exc: OnvifError) -> ApiError:
    """As :func:`onvif_error`; a device without relay outputs says so in its own code."""
    if exc.kind == "unsupported":
        return ApiError(422, "no_outputs", f"the camera has no relay outputs: {exc.message}")
    return onvif_error(exc)


class PtzRoutes(RouteGroup):
    def __init__(self, catalog: Catalog, clock: Clock, security: Security) -> None:
        self.catalog, self.clock, self.sec = catalog, clock, security
        self.onvif = CameraOnvif(catalog)
        self.devices: dict[str, OnvifDevice] = {}  # open sessions, one per camera
        self.opening: dict[str, asyncio.Lock] = {}
        self.holders: dict[str, tuple[str, int]] = {}  # camera -> (user, held until µs)

    async def close(self) -> None:
        devices, self.devices = self.devices, {}
        for dev in devices.values():
            await dev.close()

    async def _device(self, camera_id: str, lacking: str = "PTZ") -> OnvifDevice:
        await asyncio.to_thread(find_camera, self.catalog, camera_id)
        row = await asyncio.to_thread(self.onvif.get, camera_id)
        if row is None:
            code = "no_ptz" if lacking == "PTZ" else "no_outputs"
            raise ApiError(
                409, code, f"camera {camera_id!r} was not added from an ONVIF device: no {lacking}"
            )
        async with self.opening.setdefault(camera_id, asyncio.Lock()):
            dev = self.devices.get(camera_id)
            same = dev is not None and (dev.address, dev.username, dev.password) == (
                row.address, row.username, row.password
            )  # fmt: skip
            if not same:
                if dev is not None:
                    await dev.close()
                try:
                    dev = await OnvifDevice(row.address, row.username, row.password).open()
                except OnvifError as exc:
                    raise onvif_error(exc) from None
                self.devices[camera_id] = dev
            assert dev is not None
            return dev

    def _take_control(self, camera_id: str, user: str) -> None:
        now = self.clock.now_us()
        holder = self.holders.get(camera_id)
        if holder is not None and holder[0] != user and holder[1] > now:
            left = (holder[1] - now) / 1e6
            raise ApiError(
                409,
                "ptz_held",
                f"{holder[0]} is steering camera {camera_id!r}; try again in {left:.0f} s",
            )
        self.holders[camera_id] = (user, now + int(HOLD_S * 1e6))

    async def _command(
        self,
        request: web.Request,
        op: str,
        detail: dict[str, Any],
        run: Callable[[OnvifDevice], Awaitable[Any]],
        *,
        control: bool = True,
        action: str = PTZ,
    ) -> Any:
        """Check the right and the control, run the command, audit it (done or refused)."""
        camera_id = request.match_info["camera_id"]
        user = require(request, Permission.PTZ, camera_id)
        if control:
            self._take_control(camera_id, user.name)
        outcome = "ok"
        try:
            dev = await self._device(camera_id, "PTZ" if action == PTZ else "relay outputs")
            try:
                return await run(dev)
            except OnvifError as exc:
                outcome = exc.kind
                if exc.kind == "unreachable":
                    self.devices.pop(camera_id, None)
                    await dev.close()
                raise onvif_error(exc) from None
        except ApiError as exc:
            if outcome == "ok":
                outcome = exc.code
            raise
        finally:
            entry = {"op": op, **detail, "outcome": outcome}
            await asyncio.to_thread(self.sec.record, request, action, camera_id, entry)

    # -- handlers -------------------------------------------------------------------------

    async def state(self, request: web.Request) -> web.Response:
        camera_id = request.match_info["camera_id"]
        require(request, Permission.LIVE, camera_id)
        dev = await self._device(camera_id)
        try:
            caps = await dev.ptz_capabilities()
        except OnvifError as exc:
            raise onvif_error(exc) from None
        holder = self.holders.get(camera_id)
        if holder is not None and holder[1] <= self.clock.now_us():
            holder = None
        return json_response(
            PtzState(
                continuous=caps.continuous,
                relative=caps.relative,
                absolute=caps.absolute,
                home=caps.home,
                presets=caps.presets,
                missing=caps.missing(),
                holder=holder[0] if holder else None,
                held_until_us=holder[1] if holder else None,
            )
        )

    async def move(self, request: web.Request) -> web.Response:
        body = await decode_body(request, PtzMove)
        detail = msgspec.structs.asdict(body)
        await self._command(
            request, "move", detail,
            lambda d: d.continuous_move(body.pan, body.tilt, body.zoom, body.timeout_s),
        )  # fmt: skip
        return web.Response(status=204)

    async def stop(self, request: web.Request) -> web.Response:
        """Anyone who may steer may stop (safety over control)."""
        await self._command(request, "stop", {}, lambda d: d.stop(), control=False)
        return web.Response(status=204)

    async def relative(self, request: web.Request) -> web.Response:
        body = await decode_body(request, PtzVector)
        await self._command(
            request, "relative", msgspec.structs.asdict(body),
            lambda d: d.relative_move(body.pan, body.tilt, body.zoom),
        )  # fmt: skip
        return web.Response(status=204)

    async def absolute(self, request: web.Request) -> web.Response:
        body = await decode_body(request, PtzVector)
        await self._command(
            request, "absolute", msgspec.structs.asdict(body),
            lambda d: d.absolute_move(body.pan, body.tilt, body.zoom),
        )  # fmt: skip
        return web.Response(status=204)

    async def home(self, request: web.Request) -> web.Response:
        await self._command(request, "home", {}, lambda d: d.goto_home())
        return web.Response(status=204)

    async def presets(self, request: web.Request) -> web.Response:
        camera_id = request.match_info["camera_id"]
        require(request, Permission.LIVE, camera_id)
        dev = await self._device(camera_id)
        try:
            found = await dev.presets()
        except OnvifError as exc:
            raise onvif_error(exc) from None
        return json_response([PtzPreset(p.token, p.name) for p in found])

    async def set_preset(self, request: web.Request) -> web.Response:
        body = await decode_body(request, PtzPresetInput)
        token = await self._command(
            request, "set-preset", {"name": body.name}, lambda d: d.set_preset(body.name)
        )
        return json_response(PtzPreset(token, body.name), status=201)

    async def goto_preset(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        await self._command(
            request, "goto-preset", {"token": token}, lambda d: d.goto_preset(token)
        )
        return web.Response(status=204)

    async def remove_preset(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        await self._command(
            request, "remove-preset", {"token": token}, lambda d: d.remove_preset(token)
        )
        return web.Response(status=204)

    # -- relay outputs --------------------------------------------------------------------

    async def outputs(self, request: web.Request) -> web.Response:
        camera_id = request.match_info["camera_id"]
        require(request, Permission.PTZ, camera_id)
        dev = await self._device(camera_id, "relay outputs")
        try:
            found = await dev.relay_outputs()
        except OnvifError as exc:
            raise output_error(exc) from None
        return json_response([RelayOutput(o.token, o.mode, o.idle_state, o.delay_s) for o in found])

    async def set_output(self, request: web.Request) -> web.Response:
        body = await decode_body(request, RelayOutputState)
        token = request.match_info["token"]

        async def switch(dev: OnvifDevice) -> None:
            out = pick_output(await dev.relay_outputs(), token)
            await dev.set_relay_output(out.token, body.active)

        detail = {"op": "output", "token": token, "active": body.active}
        try:
            await self._command(request, "output", detail, switch, control=False, action=RELAY)
        except ApiError as exc:
            if exc.code == "ptz_unsupported":
                raise ApiError(422, "no_outputs", exc.message) from None
            raise
        return web.Response(status=204)

    PTZ_PATH = f"{API}/cameras/{{camera_id}}/ptz"
    OUTPUTS_PATH = f"{API}/cameras/{{camera_id}}/outputs"
    OUTPUT = Param("token", str, True, "a relay output token", where="path")
    TOKEN = Param("token", str, True, "a preset token", where="path")
    STEER = (404, 409, 422, 502)
    ROUTES = (
        Route("GET", PTZ_PATH, state, "What the camera's PTZ can do and who holds it",
              returns=PtzState, errors=STEER, permission=Permission.LIVE),
        Route("POST", f"{PTZ_PATH}/move", move, "Continuous move until stop", body=PtzMove,
              status=204, errors=STEER, permission=Permission.PTZ),
        Route("POST", f"{PTZ_PATH}/stop", stop, "Stop moving", status=204, errors=STEER,
              permission=Permission.PTZ),
        Route("POST", f"{PTZ_PATH}/relative", relative, "Relative move (translation)",
              body=PtzVector, status=204, errors=STEER, permission=Permission.PTZ),
        Route("POST", f"{PTZ_PATH}/absolute", absolute, "Absolute move (position)",
              body=PtzVector, status=204, errors=STEER, permission=Permission.PTZ),
        Route("POST", f"{PTZ_PATH}/home", home, "Go to the home position", status=204,
              errors=STEER, permission=Permission.PTZ),
        Route("GET", f"{PTZ_PATH}/presets", presets, "The camera's presets",
              returns=list[PtzPreset], errors=STEER, permission=Permission.LIVE),
        Route("POST", f"{PTZ_PATH}/presets", set_preset, "Save the present position",
              body=PtzPresetInput, returns=PtzPreset, status=201, errors=STEER,
              permission=Permission.PTZ),
        Route("POST", f"{PTZ_PATH}/presets/{{token}}/goto", goto_preset, "Go to a preset",
              status=204, errors=STEER, params=(TOKEN,), permission=Permission.PTZ),
        Route("DELETE", f"{PTZ_PATH}/presets/{{token}}", remove_preset, "Remove a preset",
              status=204, errors=STEER, params=(TOKEN,), permission=Permission.PTZ),
        Route("GET", OUTPUTS_PATH, outputs, "The camera's relay outputs (siren, light)",
              returns=list[RelayOutput], errors=STEER, permission=Permission.PTZ),
        Route("PUT", f"{OUTPUTS_PATH}/{{token}}", set_output, "Set a relay output active or not",
              body=RelayOutputState, status=204, errors=STEER, params=(OUTPUT,),
              permission=Permission.PTZ),
    )  # fmt: skip
