"""A small ONVIF device that has what IPyCam lacks: the events service (a pull point) and
relay outputs. IPyCam 1.3.0 serves device, media and PTZ only (GetCapabilities and GetServices
name no events service; CreatePullPointSubscription and GetRelayOutputs are answered "Action
not supported"), and no other ONVIF device with events installs here, so the camera-event and
relay tests talk to this one, over real HTTP and SOAP through onvif-zeep-async.

It answers only what a pull-point client and a relay switch call (GetSystemDateAndTime,
GetServices, GetCapabilities, GetDeviceInformation, GetRelayOutputs, SetRelayOutputState,
CreatePullPointSubscription, PullMessages, Renew, Unsubscribe), with the message shapes of the
ONVIF Core and Event specifications. Its notifications are written the way cameras write them
(``tests/fixtures/onvif/notifications.xml``: Hikvision-, Axis-, Dahua- and Reolink-style
topics and items). A subscription it grants lives at most ``max_lifetime_s`` unless renewed,
and ``reboot`` forgets every subscription, as a camera does when it restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

from aiohttp import web

FIXTURES = Path(__file__).parent / "fixtures" / "onvif"
NS = (
    'xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:tds="http://www.onvif.org/ver10/device/wsdl" '
    'xmlns:tt="http://www.onvif.org/ver10/schema" '
    'xmlns:tev="http://www.onvif.org/ver10/events/wsdl" '
    'xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" '
    'xmlns:wsa="http://www.w3.org/2005/08/addressing" '
    'xmlns:ter="http://www.onvif.org/ver10/error" '
    'xmlns:tns1="http://www.onvif.org/ver10/topics"'
)
_ACTION = re.compile(r"<(?:[\w-]+:)?Body[^>]*>\s*<(?:[\w-]+:)?(\w+)", re.S)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _seconds(text: str | None, default: float) -> float:
    """``PT5S`` / ``PT1M30S`` / ``PT0.5S`` -> seconds; an absolute time: seconds from now."""
    m = re.fullmatch(r"\s*PT(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?\s*", text or "")
    if not m or not any(m.groups()):
        try:
            until = datetime.fromisoformat((text or "").strip().replace("Z", "+00:00"))
        except ValueError:
            return default
        return (until - datetime.now(UTC)).total_seconds()
    h, mi, s = m.groups()
    return int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)


def _tag(body: str, name: str) -> str | None:
    m = re.search(rf"<(?:[\w-]+:)?{name}[^>]*>([^<]*)</", body)
    return m.group(1) if m else None


def _envelope(body: str) -> str:
    head = '<?xml version="1.0" encoding="UTF-8"?>'
    return f"{head}<s:Envelope {NS}><s:Body>{body}</s:Body></s:Envelope>"


def _fault(code: str, reason: str) -> web.Response:
    body = (
        f"<s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>{code}</s:Value>"
        f'</s:Subcode></s:Code><s:Reason><s:Text xml:lang="en">{escape(reason)}</s:Text>'
        "</s:Reason></s:Fault>"
    )
    return web.Response(
        status=500, text=_envelope(body), content_type="application/soap+xml", charset="utf-8"
    )


def notification(
    topic: str,
    source: dict[str, str] | None = None,
    data: dict[str, str] | None = None,
    operation: str | None = "Changed",
    when: datetime | None = None,
) -> str:
    """One wsnt:NotificationMessage as a camera writes it."""
    when = when or datetime.now(UTC)
    op = f' PropertyOperation="{operation}"' if operation else ""

    def items(values: dict[str, str] | None) -> str:
        return "".join(
            f'<tt:SimpleItem Name="{escape(k)}" Value="{escape(v)}"/>'
            for k, v in (values or {}).items()
        )

    return (
        "<wsnt:NotificationMessage><wsnt:Topic"
        ' Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">'
        f"{escape(topic)}</wsnt:Topic><wsnt:Message>"
        f'<tt:Message UtcTime="{_iso(when)}"{op}><tt:Source>{items(source)}</tt:Source>'
        f"<tt:Key/><tt:Data>{items(data)}</tt:Data></tt:Message>"
        "</wsnt:Message></wsnt:NotificationMessage>"
    )


@dataclass
class _Subscription:
    id: int
    until: datetime
    queue: list[str] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class EventsDevice:
    """Runs on its own thread and loop; every method is called from the test's thread."""

    host: str = "127.0.0.1"
    max_lifetime_s: float = 60.0
    relays: dict[str, bool] = field(default_factory=lambda: {"AlarmOut_0": False})
    initial: list[str] = field(default_factory=list)  # sent as 'Initialized' to each new one
    refuse_initial_time: bool = False  # firmware that refuses any InitialTerminationTime
    subscriptions: dict[int, _Subscription] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # SOAP action -> calls
    port: int = 0

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def address(self) -> str:
        return f"http://{self.host}:{self.port}/onvif/device_service"

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def start(self) -> EventsDevice:
        self._thread.start()
        self._run(self._start())
        return self

    def stop(self) -> None:
        if self._runner is not None:
            self._run(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/onvif/device_service", self._device)
        app.router.add_post("/onvif/events", self._events)
        app.router.add_post("/onvif/subscription/{id}", self._subscription)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    # -- what the test does ---------------------------------------------------------------

    def send(self, *messages: str) -> int:
        """Queue notifications on every live subscription; returns how many took them."""

        async def put() -> int:
            for sub in self.subscriptions.values():
                sub.queue.extend(messages)
                sub.wake.set()
            return len(self.subscriptions)

        return self._run(put())

    def reboot(self) -> None:
        """Forget every subscription, as a camera that restarted."""

        async def forget() -> None:
            for sub in self.subscriptions.values():
                sub.wake.set()
            self.subscriptions.clear()

        self._run(forget())

    # -- SOAP -----------------------------------------------------------------------------

    @staticmethod
    def _ok(body: str) -> web.Response:
        return web.Response(
            text=_envelope(body), content_type="application/soap+xml", charset="utf-8"
        )

    async def _read(self, request: web.Request) -> tuple[str, str]:
        body = await request.text()
        m = _ACTION.search(body)
        action = m.group(1) if m else ""
        self.counts[action] = self.counts.get(action, 0) + 1
        return action, body

    async def _device(self, request: web.Request) -> web.Response:
        action, body = await self._read(request)
        base = f"http://{self.host}:{self.port}/onvif"
        now = datetime.now(UTC)
        if action == "GetSystemDateAndTime":
            return self._ok(
                "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
                "<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false"
                "</tt:DaylightSavings><tt:UTCDateTime><tt:Time>"
                f"<tt:Hour>{now.hour}</tt:Hour><tt:Minute>{now.minute}</tt:Minute>"
                f"<tt:Second>{now.second}</tt:Second></tt:Time><tt:Date>"
                f"<tt:Year>{now.year}</tt:Year><tt:Month>{now.month}</tt:Month>"
                f"<tt:Day>{now.day}</tt:Day></tt:Date></tt:UTCDateTime>"
                "</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
            )
        if action == "GetServices":
            services = "".join(
                f"<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{base}/{path}"
                "</tds:XAddr><tds:Version><tt:Major>2</tt:Major><tt:Minor>6</tt:Minor>"
                "</tds:Version></tds:Service>"
                for ns, path in (
                    ("http://www.onvif.org/ver10/device/wsdl", "device_service"),
                    ("http://www.onvif.org/ver10/events/wsdl", "events"),
                )
            )
            return self._ok(f"<tds:GetServicesResponse>{services}</tds:GetServicesResponse>")
        if action == "GetCapabilities":
            return self._ok(
                "<tds:GetCapabilitiesResponse><tds:Capabilities><tt:Device>"
                f"<tt:XAddr>{base}/device_service</tt:XAddr></tt:Device><tt:Events>"
                f"<tt:XAddr>{base}/events</tt:XAddr>"
                "<tt:WSSubscriptionPolicySupport>false</tt:WSSubscriptionPolicySupport>"
                "<tt:WSPullPointSupport>true</tt:WSPullPointSupport>"
                "<tt:WSPausableSubscriptionManagerInterfaceSupport>false"
                "</tt:WSPausableSubscriptionManagerInterfaceSupport></tt:Events>"
                "</tds:Capabilities></tds:GetCapabilitiesResponse>"
            )
        if action == "GetDeviceInformation":
            return self._ok(
                "<tds:GetDeviceInformationResponse><tds:Manufacturer>Vigia tests"
                "</tds:Manufacturer><tds:Model>Events device</tds:Model><tds:FirmwareVersion>1"
                "</tds:FirmwareVersion><tds:SerialNumber>1</tds:SerialNumber><tds:HardwareId>1"
                "</tds:HardwareId></tds:GetDeviceInformationResponse>"
            )
        if action == "GetRelayOutputs":
            outs = "".join(
                f'<tds:RelayOutputs token="{t}"><tt:Properties><tt:Mode>Bistable</tt:Mode>'
                "<tt:DelayTime>PT0S</tt:DelayTime><tt:IdleState>open</tt:IdleState>"
                "</tt:Properties></tds:RelayOutputs>"
                for t in self.relays
            )
            return self._ok(f"<tds:GetRelayOutputsResponse>{outs}</tds:GetRelayOutputsResponse>")
        if action == "SetRelayOutputState":
            token, state = _tag(body, "RelayOutputToken"), _tag(body, "LogicalState")
            if token not in self.relays or state not in ("active", "inactive"):
                return _fault("ter:InvalidArgVal", f"no relay output {token!r}")
            self.relays[token] = state == "active"
            return self._ok("<tds:SetRelayOutputStateResponse/>")
        return _fault("ter:ActionNotSupported", f"Action not supported: {action}")

    async def _events(self, request: web.Request) -> web.Response:
        action, body = await self._read(request)
        if action != "CreatePullPointSubscription":
            return _fault("ter:ActionNotSupported", f"Action not supported: {action}")
        asked = _tag(body, "InitialTerminationTime")
        if asked is not None and self.refuse_initial_time:
            return _fault("ter:InvalidArgVal", "InitialTerminationTime not supported")
        lifetime = min(_seconds(asked, 60), self.max_lifetime_s)
        now = datetime.now(UTC)
        sub = _Subscription(next(self._ids), now + timedelta(seconds=lifetime))
        sub.queue.extend(self.initial)
        self.subscriptions[sub.id] = sub
        return self._ok(
            "<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference><wsa:Address>"
            f"http://{self.host}:{self.port}/onvif/subscription/{sub.id}</wsa:Address>"
            f"</tev:SubscriptionReference><wsnt:CurrentTime>{_iso(now)}</wsnt:CurrentTime>"
            f"<wsnt:TerminationTime>{_iso(sub.until)}</wsnt:TerminationTime>"
            "</tev:CreatePullPointSubscriptionResponse>"
        )

    async def _subscription(self, request: web.Request) -> web.Response:
        action, body = await self._read(request)
        sub = self.subscriptions.get(int(request.match_info["id"]))
        now = datetime.now(UTC)
        if sub is not None and sub.until < now:
            del self.subscriptions[sub.id]
            sub = None
        if sub is None:
            return _fault("ter:InvalidArgVal", "no such subscription (expired or unknown)")
        if action == "PullMessages":
            wait = _seconds(_tag(body, "Timeout"), 5)
            limit = int(_tag(body, "MessageLimit") or 100)
            if not sub.queue:
                sub.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sub.wake.wait(), wait)
            taken, sub.queue[:] = sub.queue[:limit], sub.queue[limit:]
            return self._ok(
                f"<tev:PullMessagesResponse><tev:CurrentTime>{_iso(now)}</tev:CurrentTime>"
                f"<tev:TerminationTime>{_iso(sub.until)}</tev:TerminationTime>"
                f"{''.join(taken)}</tev:PullMessagesResponse>"
            )
        if action == "Renew":
            lifetime = min(_seconds(_tag(body, "TerminationTime"), 60), self.max_lifetime_s)
            sub.until = now + timedelta(seconds=lifetime)
            return self._ok(
                f"<wsnt:RenewResponse><wsnt:TerminationTime>{_iso(sub.until)}"
                f"</wsnt:TerminationTime><wsnt:CurrentTime>{_iso(now)}</wsnt:CurrentTime>"
                "</wsnt:RenewResponse>"
            )
        if action == "Unsubscribe":
            self.subscriptions.pop(sub.id, None)
            return self._ok("<wsnt:UnsubscribeResponse/>")
        return _fault("ter:ActionNotSupported", f"Action not supported: {action}")
