"""Workstation sessions against a real recorder: login, NATS live, token refresh, camera tree;
plus the saved settings (no password ever on disk) and the small observer.

One recorder process with two real RTSP cameras serves the whole module.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail
from keyring.errors import PasswordDeleteError

from app.api import ApiClient, ApiError
from app.cameratree import CameraTree
from app.loop import AsyncRunner
from app.session import Session, Sessions
from app.settings import SavedServer, SecretStore, Settings, config_dir
from app.signals import Signal
from server.protocol.live import decode_live_packet, live_subject
from server.sim.rtsp_cameras import RtspCameraHost
from tests.conftest import START_S, ServerProcess, camera_toml, wait_until
from tests.helpers import refused_port

ADMIN_PASSWORD = "admin-password-1"


def api_up(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/healthz", timeout=1) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_recorder(tmp: Path, toml: str) -> ServerProcess:
    """A vigia-server child process whose first admin has ``ADMIN_PASSWORD``."""
    cfg = tmp / "vigia.toml"
    cfg.write_text(toml)
    server = ServerProcess(tmp / "data", cfg, tmp / "server.log")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIGIA_ADMIN_PASSWORD", ADMIN_PASSWORD)
        server.start()
    return server


@pytest.fixture(scope="module")
def recorder(
    gst: None, camera_clips: list, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, ServerProcess]]:
    host = RtspCameraHost({"a": camera_clips[0][0], "b": camera_clips[1][0]})
    host.start()
    tmp = tmp_path_factory.mktemp("app-session")
    toml = camera_toml([("a", host.url("a"), None), ("b", host.url("b"), None)])
    server = start_recorder(tmp, toml)
    try:
        base = server.base_url
        wait_until(
            lambda: api_up(base) or server.proc.poll() is not None, START_S, "the recorder API"
        )
        assert server.proc.poll() is None, server.log()
        yield base, server
    finally:
        if server.proc and server.proc.poll() is None:
            server.stop()
        host.stop()


@pytest.fixture
def runner() -> Iterator[AsyncRunner]:
    with AsyncRunner("test-io") as r:
        yield r


class Packets:
    """Live packets received through a session subscription (callbacks on the loop)."""

    def __init__(self) -> None:
        self.headers: list = []

    async def __call__(self, msg) -> None:
        self.headers.append(decode_live_packet(msg.data)[0])

    def count(self) -> int:
        return len(self.headers)


# --- sessions against the real recorder --------------------------------------------------


def test_login_cameras_live_and_status(recorder, runner: AsyncRunner) -> None:
    base, _ = recorder
    sessions = Sessions(runner)
    changes: list[str] = []
    sessions.tree.changed.connect(lambda t: changes.append("tree"))
    try:
        session = sessions.connect(base, "admin", ADMIN_PASSWORD)
        assert session.state == "online" and session.role == "admin"
        assert len(session.server_id) == 12 and session.live_available
        assert session.nats is not None and session.nats.is_connected
        assert sessions.get(session.server_id) is session
        # the same recorder by a second login gives the same session
        assert sessions.connect(base + "/api/v1", "admin", ADMIN_PASSWORD) is session

        tree = sessions.tree
        rec = tree.recorder(session.server_id)
        assert rec is not None and rec.state == "online"
        assert [c.camera_id for c in rec.cameras] == ["a", "b"]
        assert tree.camera((session.server_id, "b")) is not None and changes

        packets = Packets()
        sub = runner.call(session.subscribe(live_subject(session.server_id, "a", "main"), packets))
        wait_until(lambda: packets.count() >= 30, 20, "live packets of camera a")
        assert any(h.key for h in packets.headers)
        seqs = [h.seq for h in packets.headers]
        assert seqs == sorted(seqs)

        # disabling a camera through the session: the recorder says so on the status subject
        statuses: list[dict] = []
        session.status_received.connect(statuses.append)
        session.call_sync(lambda api: api.patch_json("/cameras/b", {"enabled": False}))
        wait_until(
            lambda: (
                (tree.camera((session.server_id, "b")).stream("main") or None)
                and tree.camera((session.server_id, "b")).stream("main").state == "stopped"
            ),
            15,
            f"camera b's status to reach the tree by NATS (saw {statuses})",
        )
        assert all(m["server_id"] == session.server_id for m in statuses)
        session.refresh()
        assert tree.camera((session.server_id, "b")).status == "disabled"
        session.call_sync(lambda api: api.patch_json("/cameras/b", {"enabled": True}))
        wait_until(
            lambda: tree.camera((session.server_id, "b")).stream("main").state == "online",
            20,
            "camera b back online in the tree",
        )
        runner.call(sub.unsubscribe())
    finally:
        sessions.close()
    assert sessions.sessions() == [] and sessions.tree.recorders() == []


def test_a_revoked_token_is_replaced_and_live_follows(recorder, runner: AsyncRunner) -> None:
    """The recorder has no refresh route and a fixed 12 h token lifetime: revoke the token
    server-side (logout) to force the 401 path; the session logs in again and its NATS
    subscription moves to the new credentials."""
    base, _ = recorder
    session = Session(runner, base, "admin", ADMIN_PASSWORD)
    try:
        session.open()
        first_client = session.nats
        packets = Packets()
        runner.call(session.subscribe(live_subject(session.server_id, "a", "main"), packets))
        wait_until(lambda: packets.count() >= 5, 20, "live packets before the refresh")
        old_token = session.api.token

        async def revoke() -> None:
            other = ApiClient(base, token=old_token)
            try:
                await other.logout()
            finally:
                await other.close()

        runner.call(revoke())
        cameras = session.call_sync(lambda api: api.get_json("/cameras"))
        assert {c["id"] for c in cameras} == {"a", "b"}
        assert session.api.token != old_token and session.logins == 2
        wait_until(lambda: session.nats is not first_client, 5, "a new NATS client")
        before = packets.count()
        wait_until(lambda: packets.count() >= before + 10, 20, "live packets after the refresh")
        assert session.state == "online"
    finally:
        session.close()
    assert session.state == "offline" and session.nats is None


def test_the_login_is_renewed_before_the_token_expires(recorder, runner: AsyncRunner) -> None:
    # 12 h tokens: renew at a tiny fraction of the lifetime (~0.5 s) to see the timer work
    base, _ = recorder
    session = Session(runner, base, "admin", ADMIN_PASSWORD, refresh_fraction=0.5 / 43200)
    try:
        session.open()
        tokens = {session.api.token}
        wait_until(lambda: tokens.add(session.api.token) or len(tokens) >= 3, 15, "two renewals")
        wait_until(lambda: session.state == "online", 10, f"online ({session.error})")
        assert session.logins >= 3
        assert session.call_sync(lambda api: api.get_json("/server"))["id"] == session.server_id
    finally:
        session.close()


def test_refused_and_unreachable_logins(recorder, runner: AsyncRunner) -> None:
    base, _ = recorder
    wrong = Session(runner, base, "nobody", "not-the-password")
    with pytest.raises(ApiError) as refused:
        wrong.open()
    assert refused.value.status == 401 and wrong.state == "error"
    wrong.close()
    with refused_port() as port:
        gone = Session(runner, f"http://127.0.0.1:{port}", "admin", ADMIN_PASSWORD)
        with pytest.raises(ApiError) as unreachable:
            gone.open()
    assert unreachable.value.status == 0 and gone.state == "offline"
    gone.close()
    with pytest.raises(ValueError, match="only http"):
        Session(runner, "ftp://127.0.0.1:21", "admin", "x")


# --- camera tree (pure) -------------------------------------------------------------------


def cam(cid: str, name: str, state: str = "online", enabled: bool = True) -> dict:
    return {
        "id": cid,
        "name": name,
        "enabled": enabled,
        "streams": [{"name": "main", "state": state, "reason": ""}],
    }


def test_camera_tree_merges_recorders_and_filters() -> None:
    tree = CameraTree()
    seen: list = []
    tree.camera_changed.connect(seen.append)
    tree.set_recorder("aaaaaaaaaaaa", "North site", "online")
    tree.set_recorder("bbbbbbbbbbbb", "South site", "online")
    tree.set_cameras("aaaaaaaaaaaa", [cam("door", "Front door"), cam("yard", "Yard")])
    tree.set_cameras("bbbbbbbbbbbb", [cam("door", "Back door", "error"), "not a camera"])
    keys = [c.key for c in tree.cameras()]
    assert keys == [
        ("aaaaaaaaaaaa", "door"),
        ("aaaaaaaaaaaa", "yard"),
        ("bbbbbbbbbbbb", "door"),
    ]
    assert tree.camera(("bbbbbbbbbbbb", "door")).status == "error"
    assert [(r.name, [c.name for c in r.cameras]) for r in tree.filtered("DOOR")] == [
        ("North site", ["Front door"]),
        ("South site", ["Back door"]),
    ]
    assert [len(r.cameras) for r in tree.filtered("south")] == [1]
    assert tree.filtered("nothing-like-it") == []
    assert len(tree.filtered("  ")) == 2

    msg = {"type": "stream", "camera": "door", "stream": "main", "state": "offline"}
    changed = tree.apply_status("aaaaaaaaaaaa", {**msg, "reason": "eof", "since_us": 20})
    assert changed is not None and changed.status == "offline" and seen == [changed]
    assert tree.camera(("bbbbbbbbbbbb", "door")).status == "error"  # the other recorder's door
    # an older message that arrives late changes nothing; unknown cameras/types are ignored
    assert tree.apply_status("aaaaaaaaaaaa", {**msg, "state": "online", "since_us": 10}) is None
    assert tree.apply_status("aaaaaaaaaaaa", {**msg, "camera": "ghost", "since_us": 30}) is None
    assert tree.apply_status("aaaaaaaaaaaa", {"type": "other"}) is None
    assert tree.camera(("aaaaaaaaaaaa", "door")).status == "offline"
    tree.set_cameras("aaaaaaaaaaaa", [cam("door", "Front door", enabled=False)])
    assert tree.camera(("aaaaaaaaaaaa", "door")).status == "disabled"
    tree.remove_recorder("bbbbbbbbbbbb")
    assert [r.server_id for r in tree.recorders()] == ["aaaaaaaaaaaa"]


# --- settings -----------------------------------------------------------------------------


class MemoryKeyring(KeyringBackend):
    """A keyring backend that keeps secrets in memory: the edge we do not own (the OS's)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.secrets.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.secrets[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.secrets.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


def all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


def test_settings_round_trip_and_passwords_in_the_keyring(tmp_path: Path) -> None:
    ring = MemoryKeyring()
    settings = Settings(tmp_path, SecretStore(ring))
    assert settings.preferences.decoder == "auto" and settings.servers == []
    settings.set_preferences(language="pt_BR", tile_stream_threshold_px=800)
    saved = settings.save_server(
        SavedServer("192.0.2.7", name="North", user="admin"), password="s3cret-pw"
    )
    assert saved.base_url == "http://192.0.2.7:8480"
    assert settings.password(saved) == "s3cret-pw"
    assert b"s3cret-pw" not in all_bytes(tmp_path)

    again = Settings(tmp_path, SecretStore(ring))
    assert again.preferences.language == "pt_BR"
    assert again.preferences.tile_stream_threshold_px == 800
    assert again.servers == [saved]
    assert again.password(again.server("http://192.0.2.7:8480/api/v1")) == "s3cret-pw"

    # learning the server id moves the secret to the new key; removing drops it
    known = again.save_server(SavedServer(saved.base_url, "North", "0123456789ab", "admin"))
    assert again.password(known) == "s3cret-pw" and len(ring.secrets) == 1
    assert again.server("0123456789ab") == known
    assert again.remove_server("0123456789ab") and ring.secrets == {}
    assert not again.remove_server("0123456789ab")

    with pytest.raises(ValueError, match="decoder"):
        again.set_preferences(decoder="magic")
    assert again.preferences.decoder == "auto"
    with pytest.raises(ValueError):
        again.save_server(SavedServer("ftp://x"))


def test_no_keyring_means_no_password_on_disk(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIA_CONFIG_DIR", str(tmp_path / "cfg"))
    assert config_dir() == tmp_path / "cfg"
    with caplog.at_level(logging.INFO, logger="app.settings"):
        settings = Settings(secrets=SecretStore(fail.Keyring()))
        server = settings.save_server(SavedServer("127.0.0.1:9000", user="op"), "pw-123456")
    assert not settings.secrets.available and not settings.password_saved(server)
    assert "no usable keyring" in caplog.text and "not saved" in caplog.text
    assert settings.file.exists() and b"pw-123456" not in all_bytes(tmp_path)
    assert json.loads(settings.file.read_text())["servers"][0]["user"] == "op"


def test_a_damaged_settings_file_is_kept_aside(tmp_path: Path) -> None:
    (tmp_path / "settings.json").write_text('{"preferences": {"decoder": 5')
    settings = Settings(tmp_path, SecretStore(MemoryKeyring()))
    assert settings.servers == [] and settings.preferences.decoder == "auto"
    aside = list(tmp_path.glob("settings.json.bad-*"))
    assert len(aside) == 1 and aside[0].read_text().startswith('{"preferences"')
    settings.save()
    assert Settings(tmp_path, SecretStore(MemoryKeyring())).preferences.decoder == "auto"
    assert not list(tmp_path.glob(".settings*"))  # no temp file left behind


# --- the observer -------------------------------------------------------------------------


def test_signal_survives_a_failing_callback(caplog: pytest.LogCaptureFixture) -> None:
    sig: Signal[int] = Signal("numbers")
    got: list[int] = []

    def broken(_: int) -> None:
        raise RuntimeError("boom")

    sig.connect(broken)
    undo = sig.connect(got.append)
    with caplog.at_level(logging.ERROR, logger="app.signals"):
        sig.emit(1)
    assert got == [1] and "boom" in caplog.text and "numbers" in caplog.text
    undo()
    undo()  # twice is harmless
    sig.emit(2)
    assert got == [1] and len(sig) == 1

    # a callback that disconnects itself while emitting does not disturb the others
    order: list[str] = []
    sig2: Signal[None] = Signal()

    def once(_: None) -> None:
        order.append("once")
        undo_once()

    undo_once = sig2.connect(once)
    sig2.connect(lambda _: order.append("other"))
    sig2.emit(None)
    sig2.emit(None)
    assert order == ["once", "other", "other"]


def test_signal_emit_from_the_loop_thread(runner: AsyncRunner) -> None:
    sig: Signal[str] = Signal()
    got: list[str] = []
    sig.connect(got.append)

    async def emit() -> None:
        sig.emit("from the loop")

    runner.call(emit())
    assert got == ["from the loop"]
