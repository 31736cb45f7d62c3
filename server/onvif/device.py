"""One ONVIF device: identity, media profiles with stream addresses, PTZ, events (a pull-point
subscription) and relay outputs.

Every call goes through :meth:`OnvifDevice._call`, which turns what can go wrong into an
:class:`OnvifError` whose ``kind`` says whose fault it is: the network (``unreachable``), the
credentials (``auth``), a command the device does not do (``unsupported``) or refused
(``refused``). The API answers each with a 4xx or 502 and the device's own words, never a 500.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
from onvif import ONVIFCamera
from onvif.exceptions import ONVIFError
from onvif.util import is_auth_error, normalize_url, stringify_onvif_error
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


@dataclass(frozen=True, slots=True)
class RelayOutput:
    """A relay output of the device (a siren, a light, a door): GetRelayOutputs."""

    token: str
    mode: str  # 'Bistable' (stays as set) or 'Monostable' (falls back after delay_s)
    idle_state: str  # 'open' or 'closed': the contact when inactive
    delay_s: float | None  # Monostable: how long it stays active


Items = tuple[tuple[str, str], ...]  # SimpleItem (Name, Value) pairs


@dataclass(frozen=True, slots=True)
class Notification:
    """One NotificationMessage of a PullMessages answer, as plain data (read into a camera
    event by ``server.onvif.notifications``)."""

    topic: str  # 'tns1:RuleEngine/CellMotionDetector/Motion'
    operation: str = ""  # PropertyOperation: 'Initialized', 'Changed', 'Deleted' or ''
    utc: datetime | None = None  # UtcTime, as the device's clock says
    source: Items = ()  # what raised it ('InputToken', 'DI_0')
    data: Items = ()  # what it says ('LogicalState', 'true')


PULLPOINT_NS = "http://www.onvif.org/ver10/events/wsdl/PullPointSubscription"


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
    _pullpoint: Any = None  # PullMessages on the subscription's own address
    _subscription: Any = None  # Renew / Unsubscribe there

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
            self._pullpoint = self._subscription = None
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
            self._services[name] = self._lenient(svc)
        return self._services[name]

    @staticmethod
    def _lenient(svc: Any) -> Any:
        for client in (svc.zeep_client, svc.zeep_client_authless):
            if not any(isinstance(p, UndeclaredPrefixes) for p in client.plugins):
                client.plugins.append(UndeclaredPrefixes())
        return svc

    async def _call(self, what: str, coro: Any, timeout_s: float = CALL_TIMEOUT_S) -> Any:
        try:
            return await asyncio.wait_for(coro, timeout_s)
        except Fault as exc:
            text = stringify_onvif_error(exc)
            if is_auth_error(exc):
                raise OnvifError("auth", f"{what}: the device refused the credentials") from None
            if any(m.lower() in text.lower() for m in UNSUPPORTED_MARKS):
                raise OnvifError("unsupported", f"{what}: {text}") from None
            raise OnvifError("refused", f"{what}: {text}") from None
        except TimeoutError:
            raise OnvifError("unreachable", f"{what}: no answer in {timeout_s:g} s") from None
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

    # -- relay outputs --------------------------------------------------------------------

    async def relay_outputs(self) -> list[RelayOutput]:
        dev = await self._service("devicemgmt")
        found = await self._call("GetRelayOutputs", dev.GetRelayOutputs()) or []
        out = []
        for r in found:
            props = getattr(r, "Properties", None)
            delay = getattr(props, "DelayTime", None)
            out.append(
                RelayOutput(
                    token=str(r.token),
                    mode=str(getattr(props, "Mode", "") or ""),
                    idle_state=str(getattr(props, "IdleState", "") or ""),
                    delay_s=delay.total_seconds() if isinstance(delay, timedelta) else None,
                )
            )
        return out

    async def set_relay_output(self, token: str, active: bool) -> None:
        dev = await self._service("devicemgmt")
        req = {"RelayOutputToken": token, "LogicalState": "active" if active else "inactive"}
        await self._call("SetRelayOutputState", dev.SetRelayOutputState(req))

    # -- events: one pull-point subscription per session ----------------------------------

    async def subscribe_events(self, lifetime_s: float) -> float:
        """CreatePullPointSubscription; returns the seconds the device grants it (renew
        before). The subscription lives at its own address, which the device names."""
        assert self._camera is not None, "open() first"
        cam = self._camera
        events = await self._service("events")
        lifetime = timedelta(seconds=lifetime_s)
        req = {"InitialTerminationTime": cam.get_next_termination_time(lifetime)}
        try:
            r = await self._call(
                "CreatePullPointSubscription", events.CreatePullPointSubscription(req)
            )
        except OnvifError as exc:
            if exc.kind not in ("refused", "unsupported"):
                raise
            # some firmware refuses any initial termination time ("not supported", "invalid
            # argument"): its own default then, renewed as usual
            r = await self._call(
                "CreatePullPointSubscription", events.CreatePullPointSubscription({})
            )
        try:
            address = normalize_url(r.SubscriptionReference.Address._value_1)
        except AttributeError:
            address = None
        if not address:
            raise OnvifError("refused", "CreatePullPointSubscription: no subscription address")
        cam.xaddrs[PULLPOINT_NS] = cam.rewrite_url(address)
        self._pullpoint = self._lenient(
            await self._call("pull point", cam.create_pullpoint_service())
        )
        manager = cam.create_subscription_service("PullPointSubscription")
        self._subscription = self._lenient(await self._call("subscription", manager))
        current, termination = (getattr(r, n, None) for n in ("CurrentTime", "TerminationTime"))
        if cam.has_broken_relative_time(lifetime, current, termination):
            # it took "PT60S" for less than half of that: absolute times from now on (the
            # client keeps that and the device's clock offset), as Home Assistant does
            return await self.renew_events(lifetime_s)
        return _granted_s(r, lifetime_s)

    async def pull_events(self, wait_s: float, limit: int) -> list[Notification]:
        """PullMessages: the device answers as soon as it has messages, or after ``wait_s``."""
        if self._pullpoint is None:
            raise OnvifError("refused", "PullMessages: no subscription")
        req = {"Timeout": timedelta(seconds=wait_s), "MessageLimit": limit}
        r = await self._call(
            "PullMessages", self._pullpoint.PullMessages(req), timeout_s=wait_s + CALL_TIMEOUT_S
        )
        out = []
        for m in getattr(r, "NotificationMessage", None) or []:
            topic = getattr(getattr(m, "Topic", None), "_value_1", None)
            if topic:
                message = getattr(getattr(m, "Message", None), "_value_1", None)
                out.append(_notification(str(topic).strip(), message))
        return out

    async def renew_events(self, lifetime_s: float) -> float:
        if self._subscription is None:
            raise OnvifError("refused", "Renew: no subscription")
        assert self._camera is not None, "open() first"
        until = self._camera.get_next_termination_time(timedelta(seconds=lifetime_s))
        r = await self._call("Renew", self._subscription.Renew(until))
        return _granted_s(r, lifetime_s)

    async def unsubscribe_events(self) -> None:
        """Best effort: the subscription ends at its termination time anyway."""
        sub, self._subscription, self._pullpoint = self._subscription, None, None
        if sub is not None:
            await self._call("Unsubscribe", sub.Unsubscribe())


def _granted_s(answer: Any, asked_s: float) -> float:
    """How long the device keeps the subscription: TerminationTime - CurrentTime (its own
    clock on both sides), or what was asked where it does not say."""
    current = getattr(answer, "CurrentTime", None)
    termination = getattr(answer, "TerminationTime", None)
    if current is not None and termination is not None:
        try:
            return max(1.0, (termination - current).total_seconds())
        except TypeError:
            pass
    return asked_s


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _parse_time(text: str) -> datetime | None:
    t = text.strip().replace("Z", "+00:00")
    if "." in t:  # some devices write 7 fraction digits; Python reads at most 6
        head, rest = t.split(".", 1)
        n = len(rest) - len(rest.lstrip("0123456789"))
        t = f"{head}.{rest[:n][:6].ljust(6, '0')}{rest[n:]}"
    try:
        when = datetime.fromisoformat(t)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _notification(topic: str, message: Any) -> Notification:
    """zeep reads ``tt:Message`` into an object where the WSDL types it, and leaves an lxml
    element where it does not (a vendor's own message): both become plain data."""
    if message is None:
        return Notification(topic)
    if hasattr(message, "tag"):  # an element: tt:Message, or a wrapper around one
        if _local(message.tag) != "Message" or any(_local(c.tag) == "Message" for c in message):
            inner = [c for c in message if _local(c.tag) == "Message"]
            message = inner[0] if inner else message

        def items(group: str) -> Items:
            for child in message:
                if _local(child.tag) == group:
                    return tuple(
                        (str(i.get("Name", "")), str(i.get("Value", "")))
                        for i in child
                        if _local(i.tag) == "SimpleItem"
                    )
            return ()

        utc = message.get("UtcTime")
        return Notification(
            topic,
            str(message.get("PropertyOperation", "") or ""),
            _parse_time(utc) if utc else None,
            items("Source"),
            items("Data"),
        )

    def zitems(group: Any) -> Items:
        found = getattr(group, "SimpleItem", None) or [] if group is not None else []
        return tuple((str(i.Name or ""), str(i.Value or "")) for i in found)

    utc = getattr(message, "UtcTime", None)
    if isinstance(utc, str):
        utc = _parse_time(utc)
    return Notification(
        topic,
        str(getattr(message, "PropertyOperation", "") or ""),
        utc if isinstance(utc, datetime) else None,
        zitems(getattr(message, "Source", None)),
        zitems(getattr(message, "Data", None)),
    )
