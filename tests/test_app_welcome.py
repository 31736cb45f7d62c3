"""The welcome screen's model (``app.welcome``) and the tree's sites, without Qt.

Against a real recorder of a site (``[site] name``): the screen is due while nothing is logged
in, lists saved and typed recorders grouped by site, words failures (bad address, nothing
there, wrong password), logs in through the site's next recorder when the one picked is
unreachable, and the session's recorder sits under its site in the camera tree. A saved site
logs in by itself through whichever of its recorders zeroconf finds.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from keyring.backends import null

from app.cameratree import CameraTree, RecorderNode, group_sites
from app.settings import SavedServer, SecretStore, Settings
from app.welcome import LoginError, Welcome, WelcomeRecorder, WelcomeSite
from app.workstation import Workstation
from tests.conftest import START_S, ServerProcess, camera_toml, wait_until
from tests.helpers import refused_port
from tests.test_app_session import ADMIN_PASSWORD, MemoryKeyring, api_up, start_recorder

SITE = f"welcome-{secrets.token_hex(3)}"  # fresh per run: nothing else on loopback has it


@contextlib.contextmanager
def site_recorder(tmp: Path, name: str, camera: str) -> Iterator[ServerProcess]:
    """A recorder of ``SITE``, advertised on loopback, with one camera that never answers."""
    with refused_port() as port:  # a camera that never answers: listed all the same
        toml = camera_toml([(camera, f"rtsp://127.0.0.1:{port}/{camera}", None)])
    toml = toml.replace("discovery = false", f'discovery = true\nname = "{name}"')
    server = start_recorder(tmp, toml + f'\n[site]\nname = "{SITE}"\n')
    try:
        base = server.base_url
        wait_until(
            lambda: api_up(base) or server.proc.poll() is not None, START_S, "the recorder API"
        )
        assert server.proc.poll() is None, server.log()
        yield server
    finally:
        if server.proc and server.proc.poll() is None:
            server.stop()


@pytest.fixture(scope="module")
def recorder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with site_recorder(tmp_path_factory.mktemp("app-welcome"), "Site recorder", "door") as r:
        yield r


@pytest.fixture
def workstation(tmp_path: Path) -> Iterator[Workstation]:
    settings = Settings(tmp_path / "config", secrets=SecretStore(null.Keyring()))
    ws = Workstation(settings, start_discovery=False)
    yield ws
    ws.close()


def test_sites_group_recorders_and_leave_the_others_alone() -> None:
    recs = [
        RecorderNode("aaaaaaaaaaaa", "Alpha", "online", site="hq"),
        RecorderNode("bbbbbbbbbbbb", "Beta", "online"),
        RecorderNode("cccccccccccc", "Gamma", "reconnecting", site="hq"),
    ]
    groups = group_sites(recs)
    assert [(g.name, [r.name for r in g.recorders]) for g in groups] == [
        ("hq", ["Alpha", "Gamma"]),
        ("", ["Beta"]),
    ]
    tree = CameraTree()
    tree.set_recorder("aaaaaaaaaaaa", "Alpha", "online", "hq")
    tree.set_recorder("bbbbbbbbbbbb", "Beta", "online")
    tree.set_cameras("aaaaaaaaaaaa", [{"id": "door"}])
    tree.set_cameras("bbbbbbbbbbbb", [{"id": "gate"}])
    assert [(g.name, [r.server_id for r in g.recorders]) for g in tree.sites()] == [
        ("hq", ["aaaaaaaaaaaa"]),
        ("", ["bbbbbbbbbbbb"]),
    ]
    # the filter finds a site by its name (all its cameras), a camera by its own
    assert [g.name for g in tree.sites("HQ")] == ["hq"]
    assert tree.sites("HQ")[0].recorders[0].cameras[0].camera_id == "door"
    assert [(g.name, g.recorders[0].name) for g in tree.sites("gate")] == [("", "Beta")]


def test_entries_group_saved_and_typed_recorders_by_site(workstation: Workstation) -> None:
    ws = workstation
    welcome = Welcome(ws)
    try:
        assert welcome.needed() and welcome.entries() == []
        ws.settings.save_server(
            SavedServer("192.0.2.1:8480", "North", "aaaaaaaaaaaa", "ops", site="hq")
        )
        ws.settings.save_server(SavedServer("192.0.2.2:8480", "South", "bbbbbbbbbbbb", site="hq"))
        ws.settings.save_server(SavedServer("192.0.2.3:8480", "Lone", "cccccccccccc"))
        entries = welcome.entries()
        assert [e.name for e in entries] == ["hq", ""]
        hq, lone = entries
        assert [r.name for r in hq.recorders] == ["North", "South"] and hq.user == "ops"
        assert hq.title == "hq" and lone.title == "Lone"
        assert all(r.saved and not r.found and r.state == "" for r in hq.recorders)
        assert welcome.needed()  # saved but nothing logged in or logging in
    finally:
        welcome.close()
    one = WelcomeSite("", (WelcomeRecorder("k", "Alone", "http://192.0.2.9:8480"),))
    assert one.address == "http://192.0.2.9:8480" and one.version == ""


def test_login_errors_are_told_apart(workstation: Workstation, recorder: ServerProcess) -> None:
    welcome = Welcome(workstation)
    try:
        with pytest.raises(LoginError) as bad:
            welcome.login("ftp://nowhere", "admin", "x")
        assert bad.value.kind == "address"
        with refused_port() as port, pytest.raises(LoginError) as gone:
            welcome.login(f"127.0.0.1:{port}", "admin", "x", timeout=5)
        assert gone.value.kind == "unreachable"
        with pytest.raises(LoginError) as wrong:
            welcome.login(recorder.base_url, "admin", "not-the-password", timeout=5)
        assert wrong.value.kind == "refused"
        assert welcome.needed() and workstation.sessions.sessions() == []
    finally:
        welcome.close()


def test_login_through_the_sites_next_recorder(
    workstation: Workstation, recorder: ServerProcess
) -> None:
    """The recorder picked is down: the site's other recorder takes the login, the session
    knows its site and version, the tree puts it under the site, and it is saved with it."""
    ws = workstation
    welcome = Welcome(ws)
    changes: list[bool] = []
    welcome.changed.connect(lambda w: changes.append(w.needed()))
    try:
        with refused_port() as port:
            down = f"http://127.0.0.1:{port}"
            ws.settings.save_server(SavedServer(down, "Down", "dddddddddddd", "admin", site=SITE))
            ws.settings.save_server(SavedServer(recorder.base_url, "Up", "", "admin", site=SITE))
            (listed_site,) = welcome.entries()
            assert [r.name for r in listed_site.recorders] == ["Down", "Up"]
            assert listed_site.name == SITE and listed_site.address == down  # none seen up yet
            session = welcome.login(down, "admin", ADMIN_PASSWORD, timeout=5)
        assert session.base_url == recorder.base_url and session.state == "online"
        assert session.site == SITE and session.version
        assert not welcome.needed() and changes and changes[-1] is False
        (site,) = ws.tree.sites()
        assert site.name == SITE and [r.server_id for r in site.recorders] == [session.server_id]
        assert [c.camera_id for c in site.recorders[0].cameras] == ["door"]
        saved = ws.settings.server(session.server_id)
        assert saved is not None and saved.site == SITE and saved.user == "admin"
        (listed,) = [r for r in welcome.recorders() if r.key == session.server_id]
        assert listed.state == "online" and listed.site == SITE and listed.saved
        ws.sessions.disconnect(session.server_id)
        assert welcome.needed()
    finally:
        welcome.close()


def test_a_saved_site_logs_in_by_itself(tmp_path: Path, recorder: ServerProcess) -> None:
    """Saved: one recorder of the site, at an address where nothing answers now. Zeroconf
    finds another recorder of that site: it is logged in to with the saved user, unasked."""
    settings = Settings(tmp_path / "config", secrets=SecretStore(MemoryKeyring()))
    with refused_port() as port:
        settings.save_server(
            SavedServer(f"127.0.0.1:{port}", "Old", "eeeeeeeeeeee", "admin", site=SITE),
            ADMIN_PASSWORD,
        )
        ws = Workstation(settings, discovery_interfaces=["127.0.0.1"])
        welcome = Welcome(ws)
        try:
            found = wait_until(
                lambda: next((s for s in ws.sessions.sessions() if s.site == SITE), None),
                30,
                "a session with the site's recorder found by zeroconf",
            )
            assert found.base_url == recorder.base_url and found.name == "Site recorder"
            wait_until(lambda: found.state == "online", 10, "the session online")
            assert not welcome.needed()
            (site,) = [e for e in welcome.entries() if e.name == SITE]
            assert {r.name for r in site.recorders} == {"Old", "Site recorder"}
            (up,) = [r for r in site.recorders if r.state == "online"]
            assert up.found and up.version and site.address == recorder.base_url
        finally:
            welcome.close()
            ws.close()


def test_one_login_for_the_site(
    tmp_path: Path, recorder: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Two recorders of the site on the network: one login through the welcome screen's model
    logs in to both, and the tree shows them as one site."""
    settings = Settings(tmp_path / "config", secrets=SecretStore(null.Keyring()))
    with site_recorder(tmp_path_factory.mktemp("app-welcome-2"), "Second", "gate") as second:
        ws = Workstation(settings, discovery_interfaces=["127.0.0.1"])
        welcome = Welcome(ws)
        try:
            wait_until(
                lambda: any(e.name == SITE and len(e.recorders) == 2 for e in welcome.entries()),
                30,
                "both recorders of the site found by zeroconf",
            )
            (site,) = [e for e in welcome.entries() if e.name == SITE]
            assert {r.base_url for r in site.recorders} == {recorder.base_url, second.base_url}
            assert all(r.found and r.version and not r.state for r in site.recorders)
            first = welcome.login(second.base_url, "admin", ADMIN_PASSWORD, remember=False)
            wait_until(lambda: len(ws.sessions.sessions()) == 2, 20, "the site's other recorder")
            (tree_site,) = [g for g in ws.tree.sites() if g.name == SITE]
            assert {r.name for r in tree_site.recorders} == {"Site recorder", "Second"}
            cams = {c.camera_id for r in tree_site.recorders for c in r.cameras}
            assert cams == {"door", "gate"} and first.name == "Second"
            assert ws.settings.servers == []  # remember=False: nothing saved
        finally:
            welcome.close()
            ws.close()
