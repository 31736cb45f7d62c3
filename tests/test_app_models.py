"""The workstation's recorder models without Qt, against a real recorder recording real RTSP
cameras: cameras, users, recording and analytics settings, named layouts, motion search,
exports and event queries. The widgets bind to these (``tests/test_ui_*.py`` drive them
through the dialogs); here each model is called as a widget would, and what it says is
checked against what the recorder then answers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from keyring.backends import fail

from app.analytics_settings import AnalyticsSettings, parse_labels, settings_changes
from app.api import ApiError
from app.cameras_admin import CamerasAdmin, edit_body
from app.events import (
    EventFeed,
    EventFilter,
    EventItem,
    event_mark,
    parse_event,
    parse_event_message,
)
from app.export_job import ExportJob
from app.layouts import Layouts, LocalLayouts, pick_layouts
from app.motion_search import MotionSearch, check_region, motion_query, parse_ranges
from app.recording_settings import RecordingSettings, camera_recording, changes
from app.session import Session
from app.settings import SecretStore, Settings
from app.timeline import bookmark_mark
from app.users_admin import UsersAdmin, user_changes
from app.walllayout import parse_layout
from app.workstation import Workstation
from server.protocol.models.analytics import Event
from server.sim.rtsp_cameras import RtspCameraHost
from tests.conftest import ServerProcess, camera_toml, wait_until

ADMIN_PASSWORD = "admin-password-1"
S = 1_000_000
CALL_S = 20  # one model call against a loaded machine


@dataclass
class Rig:
    ws: Workstation
    host: RtspCameraHost
    server: ServerProcess
    session: Session
    config_dir: Path

    def get(self, path: str, **params: object):
        """The recorder's own answer, to check a model against (tests may use the client)."""
        return self.session.call_sync(lambda api: api.get_json(path, params or None), CALL_S)


@pytest.fixture(scope="module")
def rig(
    gst: None, camera_clips: list[tuple[Path, Path]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rig]:
    mounts: dict[str, Path] = {}
    for i in range(2):
        mounts[f"cam{i}-main"], mounts[f"cam{i}-sub"] = camera_clips[i]
    host = RtspCameraHost(mounts, name="app-models-cameras")
    host.start()
    tmp = tmp_path_factory.mktemp("app-models")
    # analytics on (its routes answer) but no camera analysed: settings, zones, motion grid
    toml = camera_toml(
        [("cam0", host.url("cam0-main"), host.url("cam0-sub"))],
        analytics="enabled = false",
    )
    (tmp / "vigia.toml").write_text(toml)
    server = ServerProcess(tmp / "data", tmp / "vigia.toml", tmp / "server.log")
    server.start(env={"VIGIA_ADMIN_PASSWORD": ADMIN_PASSWORD})
    port = server.api_port
    ws = Workstation(Settings(tmp / "config", SecretStore(fail.Keyring())), start_discovery=False)

    def connected():
        try:
            return ws.connect(f"http://127.0.0.1:{port}", "admin", ADMIN_PASSWORD, timeout=5)
        except (ApiError, TimeoutError):
            return None

    try:
        session = wait_until(connected, 60, f"a logged-in workstation\n{server.log()}", poll=0.3)
        yield Rig(ws, host, server, session, tmp / "config")
    finally:
        try:
            ws.close()
        finally:
            if server.proc is not None and server.proc.poll() is None:
                server.stop()
            host.stop()


# --- cameras, users, recording --------------------------------------------------------------


def test_cameras_admin_lists_probes_adds_edits_removes(rig: Rig) -> None:
    model = CamerasAdmin(rig.session)
    seen: list[list[dict]] = []
    model.changed.connect(seen.append)
    cameras = model.refresh().result(CALL_S)
    assert [c["id"] for c in cameras] == ["cam0"]
    assert seen == [cameras] and model.cameras == cameras
    assert [c["id"] for c in model.list().result(CALL_S)] == ["cam0"]

    # probe: a camera the recorder can open gives codec and size; one it cannot, the reason
    results = dict(
        model.probe(
            [("main", rig.host.url("cam1-main")), ("sub", "rtsp://127.0.0.1:9/nothing")]
        ).result(60)
    )
    main, sub = results["main"], results["sub"]
    assert isinstance(main, dict) and main["codec"] == "h264"
    assert (main["width"], main["height"]) == (640, 360) and main.get("snapshot_jpeg")
    assert isinstance(sub, str) and sub

    body = {"id": "cam1", "name": "cam1", "main": rig.host.url("cam1-main"), "enabled": True}
    added = model.add(body).result(CALL_S)
    assert added["id"] == "cam1"
    with pytest.raises(ApiError) as refused:  # the same id twice
        model.add(body).result(CALL_S)
    assert refused.value.status == 409
    assert model.edit("cam1", {"name": "Gate"}).result(CALL_S)["name"] == "Gate"
    cameras = model.refresh().result(CALL_S)
    assert {c["id"]: c.get("name") for c in cameras}["cam1"] == "Gate"
    assert [c.camera_id for c in rig.ws.tree.cameras()].count("cam1") == 1  # the tree too

    # a new camera has a snapshot once its first key frame is in (cam1 has no sub stream)
    def snapshot() -> bytes | None:
        try:
            return model.snapshot("cam1", "main").result(CALL_S)
        except ApiError as exc:
            assert exc.status == 404, exc
            return None

    jpeg = wait_until(snapshot, 60, "cam1's first snapshot", poll=0.5)
    assert jpeg[:2] == b"\xff\xd8"

    model.remove("cam1").result(CALL_S)
    assert [c["id"] for c in rig.get("/cameras") if c.get("enabled", True)] == ["cam0"]
    with pytest.raises(ApiError) as gone:
        model.edit("nope", {"name": "x"}).result(CALL_S)
    assert gone.value.status == 404


def test_users_admin_adds_disabled_and_edits(rig: Rig) -> None:
    model = UsersAdmin(rig.session)
    user = model.add("op1", "op1-password-1", "operator", ["cam0"], disabled=True).result(CALL_S)
    assert user["name"] == "op1" and user["disabled"] is True
    assert user["role"] == "operator" and user["cameras"] == ["cam0"]
    changed = model.edit("op1", {"role": "viewer", "disabled": False}).result(CALL_S)
    assert changed["role"] == "viewer" and changed["disabled"] is False
    users = {u["name"]: u for u in model.list().result(CALL_S)}
    assert users["op1"]["role"] == "viewer" and "admin" in users
    with pytest.raises(ApiError) as refused:
        model.add("op1", "op1-password-1", "viewer", []).result(CALL_S)
    assert refused.value.status == 409


def test_recording_settings_send_only_what_changed(rig: Rig) -> None:
    model = RecordingSettings(rig.session)
    rows = {c["id"]: c for c in model.load().result(CALL_S)}
    loaded = {cid: camera_recording(c) for cid, c in rows.items()}
    assert loaded["cam0"]["record_sub"] is not None  # cam0 has a sub stream
    edited = {"cam0": {**loaded["cam0"], "retention_days": 3}}
    diff = changes(loaded, edited)
    assert diff == {"cam0": {"retention_days": 3}}
    assert changes(loaded, loaded) == {}
    model.apply(diff).result(CALL_S)
    model.refresh_tree().result(CALL_S)
    again = {c["id"]: camera_recording(c) for c in model.load().result(CALL_S)}
    assert again["cam0"]["retention_days"] == 3
    model.apply({"cam0": {"retention_days": None}}).result(CALL_S)
    assert camera_recording(rig.get("/cameras")[0])["retention_days"] is None


def test_analytics_settings_zones_and_lines(rig: Rig) -> None:
    model = AnalyticsSettings(rig.session, "cam0")
    read = model.read().result(CALL_S)
    assert "fps" in read.settings and read.zones == []
    assert read.snapshot is None or read.snapshot[:2] == b"\xff\xd8"
    saved = model.apply({"fps": 2.0}).result(CALL_S)
    assert saved["fps"] == 2.0
    assert rig.get("/cameras/cam0/analytics")["fps"] == 2.0

    zone = {
        "kind": "zone",
        "name": "door",
        "points": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]],
        "labels": ["person"],
        "min_dwell_us": 0,
        "loiter_us": 0,
    }
    line = {**zone, "kind": "line", "name": "gate", "points": [[0.1, 0.9], [0.9, 0.9]]}
    zones = model.save_zones({"door": zone, "gate": line}, []).result(CALL_S)
    assert sorted((z["id"], z["kind"]) for z in zones) == [("door", "zone"), ("gate", "line")]
    assert sorted(z["id"] for z in model.zones_sync(CALL_S)) == ["door", "gate"]
    # one deleted here, one that is already gone: both fine
    zones = model.save_zones({"gate": line}, ["door", "never-was"]).result(CALL_S)
    assert [z["id"] for z in zones] == ["gate"]
    assert [z["id"] for z in rig.get("/cameras/cam0/zones")] == ["gate"]
    with pytest.raises(ApiError) as refused:
        AnalyticsSettings(rig.session, "nope").read().result(CALL_S)
    assert refused.value.status == 404


# --- layouts ----------------------------------------------------------------------------------


def _wall(sid: str, camera: str | None = "cam0") -> dict:
    return {
        "version": 1,
        "rows": 1,
        "cols": 2,
        "cells": [
            {"row": 0, "col": 0, "rowspan": 1, "colspan": 1, "camera": f"{sid}/{camera}"},
            {"row": 0, "col": 1, "rowspan": 1, "colspan": 1, "camera": None},
        ],
    }


def test_layouts_local_and_on_the_recorder(rig: Rig) -> None:
    layouts = Layouts(rig.ws)
    sid = rig.session.server_id
    changed: list[str] = []
    layouts.changed.connect(changed.append)
    assert layouts.user() == "admin"
    wall = _wall(sid)
    assert layouts.save("night", wall) == ["local", sid]
    assert changed == ["night"]
    local = LocalLayouts(rig.config_dir, "admin")
    assert local.file == rig.config_dir / "layouts" / "admin.json"
    doc = json.loads(local.file.read_text())
    assert doc["version"] == 1 and doc["layouts"]["night"]["layout"] == wall
    # the atomic write leaves no temporary file beside it
    assert [p.name for p in local.file.parent.iterdir()] == ["admin.json"]
    found = layouts.get("night")
    assert found is not None and found.origin == "local" and found.layout == wall

    # the recorder's copy serves when the local one is gone
    assert local.delete("night")
    found = layouts.get("night")
    assert found is not None and found.origin == sid and found.owner == "admin"

    # shared: only on the recorder, seen by every user
    shared = _wall(sid, None)
    assert layouts.save("lobby", shared, shared=True) == [sid]
    rows = {lay.name: lay for lay in layouts.remotes()[0].list()}
    assert rows["lobby"].shared and rows["lobby"].layout == shared
    assert "lobby" in layouts.names() and "night" in layouts.names()
    assert layouts.delete("lobby") == 1 and layouts.delete("night") == 1
    assert "lobby" not in layouts.names() and "night" not in layouts.names()
    assert layouts.delete("never-was") == 0

    # the last wall is kept beside the named ones
    local.save("mine", wall)
    local.save_last(shared)
    assert local.last() == shared and [lay.name for lay in local.list()] == ["mine"]

    # a bad name or layout is refused with the reason, and nothing is written
    before = local.file.read_bytes()
    with pytest.raises(ValueError, match="1 to 100"):
        layouts.save("   ", wall)
    with pytest.raises(ValueError, match="overlap"):
        bad = {**wall, "cells": [*wall["cells"], {"row": 0, "col": 0, "camera": None}]}
        layouts.save("bad", bad)
    assert local.file.read_bytes() == before

    # an unreadable file is set aside, not lost, and the user starts again
    local.file.write_text("{not json")
    assert local.list() == []
    assert [p.name for p in local.file.parent.glob("admin.json.bad-*")]


def test_pick_layouts_prefers_local_then_own_then_shared() -> None:
    from app.layouts import NamedLayout

    wall = {"version": 1, "rows": 1, "cols": 1, "cells": [{"row": 0, "col": 0}]}
    parse_layout(wall)
    shared = NamedLayout("a", wall, "boss", True, 1, "s1")
    own = NamedLayout("a", wall, "me", False, 2, "s1")
    local = NamedLayout("a", wall, "me", False, 3, "local")
    assert pick_layouts([shared, own, local], ["a"], "me")["a"] is local
    assert pick_layouts([shared, own], ["a"], "me")["a"] is own
    assert pick_layouts([shared], ["a", "b"], "me") == {"a": shared}


# --- motion search, export ------------------------------------------------------------------


def test_motion_search_and_its_query() -> None:
    assert motion_query("cam", (0.1, 0.2, 0.3, 0.4), 1, 2) == {
        "camera": "cam",
        "region": [0.1, 0.2, 0.3, 0.4],
        "start_us": 1,
        "end_us": 2,
    }
    with pytest.raises(ValueError):
        check_region((0.5, 0.2, 0.4, 0.9))
    assert parse_ranges(
        {"ranges": [{"start_us": 1, "end_us": 2}, {"start_us": 5, "end_us": 9}]}
    ) == [
        (5, 9),
        (1, 2),
    ]
    with pytest.raises(KeyError):
        parse_ranges({"hits": []})


def test_motion_search_on_the_recorder(rig: Rig) -> None:
    model = MotionSearch(rig.session)
    found: list[list[tuple[int, int]]] = []
    model.found.connect(found.append)
    now = time.time_ns() // 1000
    ranges = model.search("cam0", (0.0, 0.0, 1.0, 1.0), now - 3600 * S, now).result(CALL_S)
    assert found == [ranges]
    assert ranges == sorted(ranges, reverse=True)
    assert all(isinstance(a, int) and a < b for a, b in ranges)
    # (motion found on real footage: tests/test_ui_events.py, through the motion panel)
    with pytest.raises(ApiError) as refused:
        model.search("cam0", (0.0, 0.0, 1.0, 1.0), now, now - S).result(CALL_S)
    assert refused.value.status == 400
    assert found == [ranges]  # a refusal finds nothing


def test_export_job_runs_downloads_and_verifies(rig: Rig, tmp_path: Path) -> None:
    def recorded() -> tuple[int, int] | None:
        now = time.time_ns() // 1000
        rows = rig.get("/recordings", camera="cam0", start_us=now - 3600 * S, end_us=now + S)
        spans = [(r["start_us"], r["end_us"]) for r in rows["ranges"]]
        return next(((a, b) for a, b in spans if b - a >= 4 * S), None)

    start, _end = wait_until(recorded, 90, "4 s of cam0 recorded", poll=1)
    end = start + 3 * S
    progress, phases = [], []
    job = ExportJob(rig.session)
    out, report = job.run(
        [("cam0", "main")],
        start,
        end,
        tmp_path,
        on_progress=progress.append,
        on_phase=phases.append,
    ).result(120)
    assert report.ok, report.problems
    assert phases == ["downloading", "verifying"]
    assert progress[0].id and progress[-1].state == "done"
    assert out == tmp_path / progress[0].id and any(out.iterdir())
    with pytest.raises(ApiError) as gone:
        job.cancel("no-such-export").result(CALL_S)
    assert gone.value.status == 404


# --- events -----------------------------------------------------------------------------------


def test_event_wire_parsing_and_filter() -> None:
    row = {
        "id": 7,
        "camera_id": "vt",
        "kind": "enter",
        "start_us": 100,
        "end_us": None,
        "label": "person",
        "score": 0.8,
        "track_id": 3,
        "zone_id": "door",
        "snapshot": True,
        "box": [0.1, 0.2, 0.3, 0.4],
    }
    item = parse_event("s1", row)
    want = Event(id=7, camera_id="vt", kind="enter", start_us=100, label="person", score=0.8,
                 end_us=None, track_id=3, zone_id="door", snapshot=True,
                 box=[0.1, 0.2, 0.3, 0.4])  # fmt: skip
    assert item == EventItem("s1", want) and item.label == "person" and item.end_us is None
    assert item.key == ("s1", 7) and EventItem.from_json("s1", row) == item
    assert parse_event_message("s1", json.dumps(row).encode()) == item
    for bad in ([1, 2], {"id": "x", "camera_id": "vt", "kind": "object"}, {"id": 1}):
        with pytest.raises(ValueError):
            parse_event("s1", bad)
    with pytest.raises(ValueError):
        parse_event_message("s1", b"{not json")
    # the timeline's marks from the same rows (and from bookmarks)
    assert event_mark(row) == (100, 100, "person")  # ongoing: it ends where it starts
    assert event_mark({"start_us": 5, "end_us": 9}) == (5, 9, "event")
    assert event_mark({"label": "person"}) is None
    assert bookmark_mark({"start_us": 5, "end_us": 9, "name": "door"}) == (5, "door", 4)
    assert bookmark_mark({"start_us": 5}) == (5, "", 0) and bookmark_mark([]) is None

    f = EventFilter(
        camera=("s1", "vt"),
        window_us=None,
        start_us=50,
        end_us=150,
        labels=("person", "car"),
        zone="door",
        kinds=("enter",),
        min_score=0.5,
    )
    assert f.params(0) == {
        "start_us": 50,
        "end_us": 150,
        "order": "desc",
        "limit": 500,
        "camera": "vt",
        "label": "person,car",
        "kind": "enter",
        "zone": "door",
        "min_score": "0.500",
    }
    assert f.matches(item, 0)
    assert not EventFilter(camera=("s2", "vt"), window_us=None, end_us=150).matches(item, 0)
    assert not EventFilter(window_us=None, start_us=0, end_us=100).matches(item, 0)  # [start, end)
    assert not EventFilter(window_us=None, end_us=150, min_score=0.9).matches(item, 0)
    live = EventFilter(window_us=60 * S)
    assert live.span(1000 * S) == (940 * S, 1060 * S)  # a minute ahead: clocks differ
    assert live.params(1000 * S) == {
        "start_us": 940 * S,
        "end_us": 1060 * S,
        "order": "desc",
        "limit": 500,
    }


def test_event_feed_queries_every_recorder_and_follows_cameras(rig: Rig) -> None:
    feed = EventFeed(rig.ws.runner, rig.ws.sessions)
    try:
        sid = rig.session.server_id
        now = time.time_ns() // 1000
        assert feed.target_sessions(EventFilter()) == [rig.session]
        assert feed.target_sessions(EventFilter(camera=(sid, "cam0"))) == [rig.session]
        assert feed.target_sessions(EventFilter(camera=("other", "cam0"))) == []
        # no camera is analysed here: an empty answer, and no failure
        results = feed.query(EventFilter(window_us=3600 * S), now).result(CALL_S)
        assert results.items == [] and results.failures == []
        # a recorder that refuses is a failure in the results, not an exception
        bad = feed.query(EventFilter(window_us=None, start_us=10, end_us=5), now).result(CALL_S)
        assert bad.items == [] and [s for s, _m in bad.failures] == [sid]
        # live: one subscription per camera the recorder lists (a removed one stays listed,
        # disabled: tests before this one may have left some)
        wait_until(
            lambda: "cam0" in feed.followed().result(CALL_S).get(sid, []),
            CALL_S,
            "the events subscription of cam0",
        )
        # a camera added on the recorder is followed once the workstation lists it
        admin = CamerasAdmin(rig.session)
        body = {"id": "cam2", "name": "cam2", "main": rig.host.url("cam1-main"), "enabled": True}
        admin.add(body).result(CALL_S)
        admin.refresh().result(CALL_S)
        wait_until(
            lambda: "cam2" in feed.followed().result(CALL_S).get(sid, []),
            CALL_S,
            "the events subscription of the new camera",
        )
        admin.remove("cam2").result(CALL_S)
        missing = EventItem(
            sid, Event(id=999_999, camera_id="cam0", kind="object", label="", score=0.0,
                       start_us=now, end_us=None)
        )  # fmt: skip
        with pytest.raises(ApiError) as no_snapshot:
            feed.snapshot(missing).result(CALL_S)
        assert no_snapshot.value.status == 404
    finally:
        feed.close()
    wait_until(lambda: feed.followed().result(CALL_S) == {}, CALL_S, "no subscription left")


def test_forms_send_only_what_changed() -> None:
    """The bodies the settings pages send, from what the recorder listed and the form holds."""
    user = {"name": "op", "role": "viewer", "cameras": ["a"], "disabled": False}
    assert user_changes(user, "viewer", ["a"], False) == {}
    assert user_changes(user, "operator", ["a", "b"], True, "new-password-1") == {
        "role": "operator",
        "cameras": ["a", "b"],
        "disabled": True,
        "password": "new-password-1",
    }
    was = {"enabled": True, "fps": 5.0, "labels": ["person"], "min_score": 0.5}
    now = {"enabled": True, "fps": 5.0000001, "labels": ["person", "car"], "min_score": 0.5}
    assert settings_changes(was, {**now, "stream": "sub"}) == {
        "labels": ["person", "car"],
        "stream": "sub",  # not in what was read: sent
    }
    assert parse_labels(" person, car;dog ,, ") == ["person", "car", "dog"]
    shown = ("rtsp://u:***@cam/1", "")
    body = {"id": "gate", "name": "Gate", "main": shown[0], "sub": None, "enabled": False}
    assert edit_body(body, shown) == {"name": "Gate", "enabled": False}
    changed = {**body, "main": "rtsp://u:pw@cam/1", "sub": "rtsp://cam/2"}
    assert edit_body(changed, shown) == {
        "name": "Gate",
        "main": "rtsp://u:pw@cam/1",
        "sub": "rtsp://cam/2",
        "enabled": False,
    }
