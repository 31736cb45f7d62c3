"""One ONVIF device: identity, media profiles with stream addresses, PTZ.

Every call goes through :meth:`OnvifDevice._call`, which turns what can go wrong into an
:class:`OnvifError` whose ``kind`` says whose fault it is: the network (``unreachable``), the
credentials (``auth``), a command the device does not do (``unsupported``) or refused
(``refused``). The API answers each with a 4xx or 502 and the device's own words, never a 500.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
from onvif import ONVIFCamera
from onvif.exceptions import ONVIFError
from onvif.util import is_auth_error, stringify_onvif_error
from zeep.exceptions import Fault

from server.onvif.lenient import UndeclaredPrefixes

log = logging.getLogger(__name__)

ErrorKind = Literal["bad_address", "unreachable", "auth", "unsupported", "refused"]
CALL_TIMEOUT_S = 8.0
# how a device says "I do not do that" (ONVIF core spec fault subcodes, and plain words)
UNSUPPORTED_MARKS = ("ActionNotSupported", "not supported", "NotSupported", "Unknown action")


class OnvifError(Exception):
    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True, slots=True)
class MediaProfile:
    token: str
    name: str
    codec: str  # ONVIF's encoding name: H264, H265, JPEG, ...
    width: int
    height: int
    fps: float | None
    uri: str  # the RTSP address the device gives (no credentials)
    ptz: bool  # the profile has a PTZ configuration


@dataclass(frozen=True, slots=True)
class PtzCapabilities:
    """What the device's PTZ node says it supports (GetNodes), for the profile used."""

    continuous: bool = False
    relative: bool = False
    absolute: bool = False
    home: bool = False
    presets: int = 0  # maximum number of presets; 0: none

    def missing(self) -> list[str]:
        return [
            name
            for name, ok in (
                ("continuous", self.continuous),
                ("relative", self.relative),
                ("absolute", self.absolute),
                ("home", self.home),
                ("presets", self.presets > 0),
            )
            if not ok
        ]


@dataclass(frozen=True, slots=True)
class PtzPreset:
    token: str
    name: str


@dataclass
class DeviceInfo:
    manufacturer: str = ""
    model: str = ""
    firmware: str = ""
    serial: str = ""
    hardware_id: str = ""


def split_address(address: str) -> tuple[str, int]:
    """``http://HOST:PORT/onvif/device_service`` (or ``HOST[:PORT]``) -> (host, port)."""
    parts = urlsplit(address if "://" in address else f"http://{address}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OnvifError("bad_address", f"not an ONVIF device address: {address!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise OnvifError("bad_address", f"bad port in {address!r}") from None
    return parts.hostname, port


def with_credentials(uri: str, username: str, password: str) -> str:
    """The stream address with the device's credentials, unless it carries some already."""
    parts = urlsplit(uri)
    if not username or parts.username or not parts.hostname:
        return uri
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    netloc = f"{quote(username, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def pick_profiles(profiles: list[MediaProfile]) -> tuple[MediaProfile, MediaProfile | None]:
    """Main: the largest H.264/H.265 profile; sub: the smallest other one that is smaller
    (what a recorder records and what a wall of tiles decodes)."""
    video = [p for p in profiles if p.codec.upper() in ("H264", "H265", "HEVC") and p.uri]
    if not video:
        raise OnvifError("unsupported", "the device has no H.264 or H.265 profile")
    by_area = sorted(video, key=lambda p: (p.width * p.height, p.fps or 0), reverse=True)
    main = by_area[0]
    smaller = [p for p in by_area[1:] if p.width * p.height < main.width * main.height]
    return main, (smaller[-1] if smaller else None)


@dataclass
class OnvifDevice:
    """A session with one device; ``open`` before use, ``close`` after."""

    address: str
    username: str = ""
    password: str = ""
    info: DeviceInfo = field(default_factory=DeviceInfo)
    _camera: ONVIFCamera | None = None
    _services: dict[str, Any] = field(default_factory=dict)
    _ptz_token: str | None = None

    async def open(self) -> OnvifDevice:
        host, port = split_address(self.address)
        cam = ONVIFCamera(host, port, self.username, self.password, no_cache=True)
        self._camera = cam
        try:
            await self._call("connect", cam.update_xaddrs())
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        if self._camera is not None:
            cam, self._camera = self._camera, None
            self._services.clear()
            await cam.close()

    async def __aenter__(self) -> OnvifDevice:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- plumbing -------------------------------------------------------------------------

    async def _service(self, name: str) -> Any:
        if name not in self._services:
            assert self._camera is not None, "open() first"
            create = getattr(self._camera, f"create_{name}_service")
            try:
                svc = await self._call(f"{name} service", create())
            except OnvifError as exc:
                if exc.kind == "unreachable":
                    raise
                raise OnvifError("unsupported", f"the device has no {name} service") from None
            except (KeyError, ValueError):
                raise OnvifError("unsupported", f"the device has no {name} service") from None
            for client in (svc.zeep_client, svc.zeep_client_authless):
                client.plugins.append(UndeclaredPrefixes())
            self._services[name] = svc
        return self._services[name]

    async def _call(self, what: str, coro: Any) -> Any:
        try:
            return await asyncio.wait_for(coro, CALL_TIMEOUT_S)
        except Fault as exc:
            text = stringify_onvif_error(exc)
            if is_auth_error(exc):
                raise OnvifError("auth", f"{what}: the device refused the credentials") from None
            if any(m.lower() in text.lower() for m in UNSUPPORTED_MARKS):
                raise OnvifError("unsupported", f"{what}: {text}") from None
            raise OnvifError("refused", f"{what}: {text}") from None
        except TimeoutError:
            raise OnvifError("unreachable", f"{what}: no answer in {CALL_TIMEOUT_S:g} s") from None
        except aiohttp.ClientError as exc:
            raise OnvifError("unreachable", f"{what}: {exc}") from None
        except ONVIFError as exc:
            cause = exc.__cause__ or exc
            if isinstance(cause, aiohttp.ClientError | OSError):
                raise OnvifError("unreachable", f"{what}: {cause}") from None
            if isinstance(cause, Fault) and is_auth_error(cause):
                raise OnvifError("auth", f"{what}: the device refused the credentials") from None
            raise OnvifError("refused", f"{what}: {exc}") from None
        except OSError as exc:
            raise OnvifError("unreachable", f"{what}: {exc}") from None
        except ValueError as exc:  # an answer zeep cannot read
            raise OnvifError("refused", f"{what}: unreadable answer ({exc})") from None

    # -- device and media -----------------------------------------------------------------

    async def device_info(self) -> DeviceInfo:
        dev = await self._service("devicemgmt")
        r = await self._call("GetDeviceInformation", dev.GetDeviceInformation())
        self.info = DeviceInfo(
            manufacturer=str(getattr(r, "Manufacturer", "") or ""),
            model=str(getattr(r, "Model", "") or ""),
            firmware=str(getattr(r, "FirmwareVersion", "") or ""),
            serial=str(getattr(r, "SerialNumber", "") or ""),
            hardware_id=str(getattr(r, "HardwareId", "") or ""),
        )
        return self.info

    async def profiles(self) -> list[MediaProfile]:
        media = await self._service("media")
        out = []
        for p in await self._call("GetProfiles", media.GetProfiles()) or []:
            enc = getattr(p, "VideoEncoderConfiguration", None)
            if enc is None:
                continue  # audio-only or metadata profile
            setup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
            req = {"StreamSetup": setup, "ProfileToken": p.token}
            uri = await self._call("GetStreamUri", media.GetStreamUri(req))
            rate = getattr(enc, "RateControl", None)
            fps = getattr(rate, "FrameRateLimit", None) if rate is not None else None
            out.append(
                MediaProfile(
                    token=str(p.token),
                    name=str(p.Name or p.token),
                    codec=str(enc.Encoding),
                    width=int(enc.Resolution.Width),
                    height=int(enc.Resolution.Height),
                    fps=float(fps) if fps else None,
                    uri=str(uri.Uri),
                    ptz=getattr(p, "PTZConfiguration", None) is not None,
                )
            )
        return out

    # -- PTZ ------------------------------------------------------------------------------

    async def ptz_profile(self) -> str:
        """The profile PTZ commands name: the first with a PTZ configuration."""
        if self._ptz_token is None:
            with_ptz = [p for p in await self.profiles() if p.ptz]
            if not with_ptz:
                raise OnvifError("unsupported", "no media profile of the device has PTZ")
            self._ptz_token = with_ptz[0].token
        return self._ptz_token

    async def ptz_capabilities(self) -> PtzCapabilities:
        ptz = await self._service("ptz")
        await self.ptz_profile()
        nodes = await self._call("GetNodes", ptz.GetNodes()) or []
        if not nodes:
            raise OnvifError("unsupported", "the device has no PTZ node")
        n = nodes[0]
        spaces = n.SupportedPTZSpaces

        def has(*names: str) -> bool:
            return any(getattr(spaces, name, None) for name in names)

        return PtzCapabilities(
            continuous=has("ContinuousPanTiltVelocitySpace", "ContinuousZoomVelocitySpace"),
            relative=has("RelativePanTiltTranslationSpace", "RelativeZoomTranslationSpace"),
            absolute=has("AbsolutePanTiltPositionSpace", "AbsoluteZoomPositionSpace"),
            home=bool(getattr(n, "HomeSupported", False)),
            presets=int(getattr(n, "MaximumNumberOfPresets", 0) or 0),
        )

    @staticmethod
    def _vector(pan: float, tilt: float, zoom: float) -> dict[str, Any]:
        return {"PanTilt": {"x": pan, "y": tilt}, "Zoom": {"x": zoom}}

    async def continuous_move(
        self, pan: float, tilt: float, zoom: float, timeout_s: float | None = None
    ) -> None:
        ptz = await self._service("ptz")
        req: dict[str, Any] = {
            "ProfileToken": await self.ptz_profile(),
            "Velocity": self._vector(pan, tilt, zoom),
        }
        if timeout_s is not None:
            req["Timeout"] = timedelta(seconds=timeout_s)
        await self._call("ContinuousMove", ptz.ContinuousMove(req))

    async def stop(self) -> None:
        ptz = await self._service("ptz")
        req = {"ProfileToken": await self.ptz_profile(), "PanTilt": True, "Zoom": True}
        await self._call("Stop", ptz.Stop(req))

    async def relative_move(self, pan: float, tilt: float, zoom: float) -> None:
        ptz = await self._service("ptz")
        token = await self.ptz_profile()
        req = {"ProfileToken": token, "Translation": self._vector(pan, tilt, zoom)}
        await self._call("RelativeMove", ptz.RelativeMove(req))

    async def absolute_move(self, pan: float, tilt: float, zoom: float) -> None:
        ptz = await self._service("ptz")
        req = {"ProfileToken": await self.ptz_profile(), "Position": self._vector(pan, tilt, zoom)}
        await self._call("AbsoluteMove", ptz.AbsoluteMove(req))

    async def goto_home(self) -> None:
        ptz = await self._service("ptz")
        req = {"ProfileToken": await self.ptz_profile()}
        await self._call("GotoHomePosition", ptz.GotoHomePosition(req))

    async def presets(self) -> list[PtzPreset]:
        ptz = await self._service("ptz")
        req = {"ProfileToken": await self.ptz_profile()}
        found = await self._call("GetPresets", ptz.GetPresets(req)) or []
        return [PtzPreset(str(p.token), str(getattr(p, "Name", "") or "")) for p in found]

    async def set_preset(self, name: str) -> str:
        ptz = await self._service("ptz")
        req = {"ProfileToken": await self.ptz_profile(), "PresetName": name}
        return str(await self._call("SetPreset", ptz.SetPreset(req)))

    async def goto_preset(self, token: str) -> None:
        ptz = await self._service("ptz")
        req = {"ProfileToken": await self.ptz_profile(), "PresetToken": token}
        await self._call("GotoPreset", ptz.GotoPreset(req))

    async def remove_preset(self, token: str) -> None:
        ptz = await self._service("ptz")
        req = {"ProfileToken": await self.ptz_profile(), "PresetToken": token}
        await self._call("RemovePreset", ptz.RemovePreset(req))
