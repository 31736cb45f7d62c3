"""Rules (admins), arming of camera groups, alarms and failed deliveries
(docs/design/rules.md). Every change is audited; a rule that names a camera, zone or label the
recorder does not know, or a schedule that does not parse, is refused with 400 and the reason."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

from aiohttp import web
from msgspec import Meta

from server.api.auth import Security, require
from server.api.bodies import decode_body, json_response
from server.api.errors import ApiError
from server.api.lookups import find_camera, id_param
from server.api.routing import API, Media, Param, Route, RouteGroup
from server.auth import Permission, can_see
from server.catalog import Catalog
from server.catalog.analytics import AnalyticsCatalog
from server.export.cutter import ExportError, cut_range
from server.protocol.models.analytics import CAMERA_LABELS
from server.protocol.models.rules import (
    Alarm,
    AlarmPatch,
    Arming,
    ArmingInput,
    Delivery,
    ManualRule,
    ManualTrigger,
    OutputAction,
    PtzPresetAction,
    Rule,
    RuleInput,
)
from server.rules import schedule
from server.rules.engine import ARMING_CHANGE, CLIP_POST_US, CLIP_PRE_US, RULE_CHANGE, RulesEngine

RULE_ID = Param("rule_id", int, where="path")
ALARM_ID = Param("alarm_id", int, where="path")
STATE = Param("state", Literal["new", "acknowledged", "closed"],
              description="only alarms in this state (repeat for several)")  # fmt: skip
LIMIT = Param("limit", Annotated[int, Meta(ge=1, le=10_000)])
EXP = Param("exp", int, description="when the link expires (Unix seconds)")
SIG = Param("sig", str, description="HMAC-SHA256 of the path and the expiry (hex)")
LINKS = f"{API}/links/alarms/{{alarm_id}}"  # signed links: no token (server/rules/links.py)


def only_params(request: web.Request, *params: Param) -> None:
    """400 for a query parameter the route does not take (a typo must not filter nothing)."""
    names = {p.name for p in params}
    unknown = sorted(k for k in request.query if k not in names)
    if unknown:
        raise ApiError(400, "bad_parameter", f"unknown query parameter {unknown[0]!r}")


KnownLabels = Callable[[], frozenset[str] | None]  # None: the detector's labels are not known


class RuleRoutes(RouteGroup):
    def __init__(
        self,
        engine: RulesEngine | None,
        catalog: Catalog,
        security: Security,
        known_labels: KnownLabels = lambda: None,
    ) -> None:
        self._engine, self.catalog, self.sec = engine, catalog, security
        self.known_labels = known_labels

    @property
    def engine(self) -> RulesEngine:
        if self._engine is None:
            raise ApiError(503, "unavailable", "rules do not run on this recorder")
        return self._engine

    # --- validation -----------------------------------------------------------------------

    def check(self, rule: RuleInput) -> None:
        """400 with the reason for what a type cannot check."""
        try:
            schedule.parse(rule.schedule)
        except schedule.ScheduleError as exc:
            raise ApiError(400, "bad_rule", str(exc)) from None
        cameras = {c.id for c in self.catalog.cameras()}
        acting = [a.camera for a in rule.actions if isinstance(a, PtzPresetAction | OutputAction)]
        for cam in [*rule.filters.cameras, *filter(None, acting)]:
            if cam not in cameras:
                raise ApiError(400, "bad_rule", f"unknown camera {cam!r}")
        if rule.filters.zones:
            zones = AnalyticsCatalog(self.catalog).zones()
            scope = set(rule.filters.cameras) or cameras
            known = {z.id for z in zones if z.camera_id in scope}
            for z in rule.filters.zones:
                if z not in known:
                    where = ", ".join(sorted(scope)) or "any camera"
                    raise ApiError(400, "bad_rule", f"unknown zone or line {z!r} on {where}")
        if rule.trigger == "camera":  # the camera's own events: their labels, not the detector's
            for label in rule.filters.labels:
                if label not in CAMERA_LABELS:
                    known = ", ".join(CAMERA_LABELS)
                    raise ApiError(400, "bad_rule", f"camera events are labelled {known}")
            return
        labels = self.known_labels()
        if labels is not None:
            for label in rule.filters.labels:
                if label not in labels:
                    raise ApiError(400, "bad_rule", f"unknown label {label!r} for the detector")

    # --- rules ----------------------------------------------------------------------------

    async def list_rules(self, request: web.Request) -> web.Response:
        require(request, Permission.CONFIG)
        return json_response(await asyncio.to_thread(self.engine.store.rules))

    async def get_rule(self, request: web.Request) -> web.Response:
        require(request, Permission.CONFIG)
        rid = id_param(request, "rule_id", "rule")
        rule = await asyncio.to_thread(self.engine.store.rule, rid)
        if rule is None:
            raise ApiError(404, "not_found", f"no rule {rid}")
        return json_response(rule)

    async def create_rule(self, request: web.Request) -> web.Response:
        require(request, Permission.CONFIG)
        body = await decode_body(request, RuleInput, "bad_rule")
        engine = self.engine

        def work() -> Rule | None:
            self.check(body)
            rid = engine.store.add_rule(body, engine.clock.now_us())
            self.sec.record(request, RULE_CHANGE, str(rid), {"op": "create", "name": body.name})
            engine.reload()
            return engine.store.rule(rid)

        return json_response(await asyncio.to_thread(work), status=201)

    async def put_rule(self, request: web.Request) -> web.Response:
        require(request, Permission.CONFIG)
        rid = id_param(request, "rule_id", "rule")
        body = await decode_body(request, RuleInput, "bad_rule")
        engine = self.engine

        def work() -> Rule | None:
            self.check(body)
            if not engine.store.put_rule(rid, body, engine.clock.now_us()):
                raise ApiError(404, "not_found", f"no rule {rid}")
            self.sec.record(request, RULE_CHANGE, str(rid), {"op": "update", "name": body.name})
            engine.reload()
            return engine.store.rule(rid)

        return json_response(await asyncio.to_thread(work))

    async def delete_rule(self, request: web.Request) -> web.Response:
        require(request, Permission.CONFIG)
        rid = id_param(request, "rule_id", "rule")
        engine = self.engine

        def work() -> None:
            if not engine.store.delete_rule(rid):
                raise ApiError(404, "not_found", f"no rule {rid}")
            self.sec.record(request, RULE_CHANGE, str(rid), {"op": "delete"})
            engine.reload()

        await asyncio.to_thread(work)
        return web.Response(status=204)

    async def manual_rules(self, request: web.Request) -> web.Response:
        """The enabled manual rules, for the workstation's trigger (operators may not read
        rules): those for cameras the user sees, or for any camera."""
        user = require(request, Permission.LIVE)
        rules = await asyncio.to_thread(self.engine.store.rules)
        out = [
            ManualRule(r.id, r.name, r.group, [c for c in r.filters.cameras if can_see(user, c)])
            for r in rules
            if r.trigger == "manual" and r.enabled
            and (not r.filters.cameras or any(can_see(user, c) for c in r.filters.cameras))
        ]  # fmt: skip
        return json_response(out)

    async def trigger(self, request: web.Request) -> web.Response:
        rid = id_param(request, "rule_id", "rule")
        body = await decode_body(request, ManualTrigger)
        user = require(request, Permission.LIVE, body.camera)
        await asyncio.to_thread(find_camera, self.catalog, body.camera)
        rule = await asyncio.to_thread(self.engine.store.rule, rid)
        if rule is None:
            raise ApiError(404, "not_found", f"no rule {rid}")
        if rule.trigger != "manual":
            raise ApiError(400, "bad_request", f"rule {rid} is not a manual rule")
        firing = self.engine.manual(rid, body.camera, user.name, body.comment)
        detail = {"op": "trigger", "rule": rid, "fired": firing is not None}
        await asyncio.to_thread(self.sec.record, request, RULE_CHANGE, body.camera, detail)
        return web.Response(status=202 if firing is not None else 204)

    # --- arming ---------------------------------------------------------------------------

    async def list_arming(self, request: web.Request) -> web.Response:
        require(request, Permission.LIVE)
        arming = await asyncio.to_thread(self.engine.store.arming)
        return json_response(sorted(arming.values(), key=lambda a: a.group))

    async def set_arming(self, request: web.Request) -> web.Response:
        user = require(request, Permission.BOOKMARKS)
        group = request.match_info["group"]
        body = await decode_body(request, ArmingInput)
        engine = self.engine

        def work() -> Arming:
            out = engine.store.set_armed(group, body.armed, engine.clock.now_us(), user.name)
            self.sec.record(request, ARMING_CHANGE, group, {"armed": body.armed})
            engine.reload()
            return out

        return json_response(await asyncio.to_thread(work))

    # --- alarms ---------------------------------------------------------------------------

    async def list_alarms(self, request: web.Request) -> web.Response:
        user = require(request, Permission.LIVE)
        only_params(request, STATE, LIMIT)
        states = tuple(request.query.getall("state", []))
        if any(s not in ("new", "acknowledged", "closed") for s in states):
            raise ApiError(400, "bad_parameter", "state is new, acknowledged or closed")
        limit = LIMIT.read_int(request, default=500)
        rows = await asyncio.to_thread(self.engine.store.alarms, states, limit)
        return json_response([a for a in rows if can_see(user, a.camera)])

    async def _alarm(self, request: web.Request) -> Alarm:
        aid = id_param(request, "alarm_id", "alarm")
        alarm = await asyncio.to_thread(self.engine.store.alarm, aid)
        if alarm is None:
            raise ApiError(404, "not_found", f"no alarm {aid}")
        require(request, Permission.LIVE, alarm.camera or None)
        return alarm

    async def get_alarm(self, request: web.Request) -> web.Response:
        return json_response(await self._alarm(request))

    async def patch_alarm(self, request: web.Request) -> web.Response:
        alarm = await self._alarm(request)
        body = await decode_body(request, AlarmPatch)
        if alarm.state == "closed":
            raise ApiError(409, "conflict", f"alarm {alarm.id} is closed")
        user = require(request, Permission.LIVE, alarm.camera or None)
        out = await self.engine.set_state(
            alarm.id, body.state, user.name, body.comment, request.remote or ""
        )
        return json_response(out)

    async def failed_deliveries(self, request: web.Request) -> web.Response:
        require(request, Permission.CONFIG)
        only_params(request, LIMIT)
        limit = LIMIT.read_int(request, default=500)
        return json_response(await asyncio.to_thread(self.engine.store.failed, limit))

    # --- signed links (webhook receivers hold no token) ------------------------------------

    async def _linked(self, request: web.Request) -> Alarm:
        engine = self.engine
        only_params(request, EXP, SIG)
        why = engine.links.check(request.path, request.query.get("exp", ""),
                                 request.query.get("sig", ""), engine.clock.now_us())  # fmt: skip
        if why is not None:
            raise ApiError(403, "forbidden", why)
        aid = id_param(request, "alarm_id", "alarm")
        alarm = await asyncio.to_thread(engine.store.alarm, aid)
        if alarm is None:
            raise ApiError(404, "not_found", f"no alarm {aid}")
        return alarm

    async def link_snapshot(self, request: web.Request) -> web.StreamResponse:
        alarm = await self._linked(request)
        path = self.engine.root / alarm.snapshot if alarm.snapshot else None
        if path is None or not await asyncio.to_thread(path.exists):
            raise ApiError(404, "not_found", f"alarm {alarm.id} has no snapshot")
        return web.FileResponse(path, headers={"Content-Type": "image/jpeg"})

    async def link_clip(self, request: web.Request) -> web.Response:
        """The main stream from ``CLIP_PRE_US`` before the alarm to ``CLIP_POST_US`` after
        (or now), cut on request: a receiver that follows the link at once gets what there is."""
        alarm = await self._linked(request)
        engine = self.engine
        start = alarm.ts_us - CLIP_PRE_US
        end = min(alarm.ts_us + CLIP_POST_US, engine.clock.now_us())

        def work() -> bytes:
            out = Path(tempfile.mkdtemp(prefix="vigia-clip-"))
            try:
                files = cut_range(self.catalog, engine.root, [(alarm.camera, "main")],
                                  start, end, out)  # fmt: skip
                return files[0].path.read_bytes()
            except ExportError as exc:
                raise ApiError(404, "not_found", f"no footage of alarm {alarm.id}: {exc}") from None
            finally:
                shutil.rmtree(out, ignore_errors=True)

        body = await asyncio.to_thread(work)
        return web.Response(body=body, content_type="video/mp4")

    ROUTES = (
        Route("GET", f"{API}/rules", list_rules, "Rules (admins)", returns=list[Rule],
              errors=(503,), permission=Permission.CONFIG),
        Route("POST", f"{API}/rules", create_rule, "Add a rule (admins)", body=RuleInput,
              returns=Rule, status=201, errors=(400, 503), permission=Permission.CONFIG),
        Route("GET", f"{API}/rules/{{rule_id}}", get_rule, "One rule (admins)", returns=Rule,
              params=(RULE_ID,), errors=(400, 404, 503), permission=Permission.CONFIG),
        Route("PUT", f"{API}/rules/{{rule_id}}", put_rule, "Replace a rule (admins)",
              body=RuleInput, returns=Rule, params=(RULE_ID,), errors=(400, 404, 503),
              permission=Permission.CONFIG),
        Route("DELETE", f"{API}/rules/{{rule_id}}", delete_rule, "Delete a rule (admins)",
              params=(RULE_ID,), status=204, errors=(400, 404, 503),
              permission=Permission.CONFIG),
        Route("POST", f"{API}/rules/{{rule_id}}/trigger", trigger,
              "Fire a manual rule on a camera (202: fired; 204: disarmed, off schedule or "
              "cooling down)", body=ManualTrigger, params=(RULE_ID,), status=202,
              errors=(400, 404, 503), permission=Permission.LIVE),
        Route("GET", f"{API}/manual-triggers", manual_rules,
              "Manual rules a workstation may fire on the cameras the user sees",
              returns=list[ManualRule], errors=(503,), permission=Permission.LIVE),
        Route("GET", f"{API}/arming", list_arming, "Camera groups armed or disarmed by hand",
              returns=list[Arming], errors=(503,), permission=Permission.LIVE),
        Route("PUT", f"{API}/arming/{{group}}", set_arming, "Arm or disarm a camera group",
              body=ArmingInput, returns=Arming, params=(Param("group", str, where="path"),),
              errors=(400, 503), permission=Permission.BOOKMARKS),
        Route("GET", f"{API}/alarms", list_alarms,
              "Alarms of the cameras the user sees, most urgent then newest first",
              returns=list[Alarm], params=(STATE, LIMIT), errors=(400, 503),
              permission=Permission.LIVE),
        Route("GET", f"{API}/alarms/{{alarm_id}}", get_alarm, "One alarm", returns=Alarm,
              params=(ALARM_ID,), errors=(400, 404, 503), permission=Permission.LIVE),
        Route("PATCH", f"{API}/alarms/{{alarm_id}}", patch_alarm,
              "Acknowledge or close an alarm, with a comment (audited, sent to every "
              "workstation)", body=AlarmPatch, returns=Alarm, params=(ALARM_ID,),
              errors=(400, 404, 409, 503), permission=Permission.LIVE),
        Route("GET", f"{API}/deliveries/failed", failed_deliveries,
              "Webhooks and e-mails given up after their retries (admins)",
              returns=list[Delivery], params=(LIMIT,), errors=(400, 503),
              permission=Permission.CONFIG),
        Route("GET", f"{LINKS}/snapshot", link_snapshot,
              "An alarm's snapshot through a signed, short-lived link (webhooks, e-mail)",
              returns=Media.binary("image/jpeg", description="JPEG"), params=(ALARM_ID, EXP, SIG),
              errors=(400, 403, 404, 503), permission="public"),
        Route("GET", f"{LINKS}/clip", link_clip,
              "An alarm's clip (MP4) through a signed, short-lived link (webhooks, e-mail)",
              returns=Media.binary("video/mp4", description="MP4"), params=(ALARM_ID, EXP, SIG),
              errors=(400, 403, 404, 503), permission="public"),
    )  # fmt: skip
