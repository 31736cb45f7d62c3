"""Zeroconf advertisement: TXT and name rules, then real mDNS on 127.0.0.1 seen by another process.

Only ever on loopback: a test that used every interface would multicast on the machine's network.
"""

from __future__ import annotations

import asyncio
import json
import queue
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from zeroconf import InterfaceChoice, NonUniqueNameException, ServiceInfo

from server import __version__
from server.datadir import DataDir
from server.discovery import (
    SERVICE_TYPE,
    Advertisement,
    Advertiser,
    addresses_for,
    advertisement_from_txt,
    interfaces_for_listen,
    parse_service_info,
    strip_credentials,
)
from tests.conftest import camera_toml, wait_until

LOOPBACK = ["127.0.0.1"]
EVENT_TIMEOUT_S = 30.0  # events come in ~0.1-2 s; generous for a loaded CI machine

# The other process: plain zeroconf (none of our code), browsing on loopback only. One JSON line
# per browser event, resolved in the main thread (handlers must not block the browser's thread).
BROWSER = r"""
import json, queue, sys
from zeroconf import ServiceBrowser, ServiceStateChange, Zeroconf

TYPE = sys.argv[1]
zc = Zeroconf(interfaces=["127.0.0.1"])
events = queue.Queue()

def on_change(zeroconf, service_type, name, state_change):
    events.put((state_change, name))

browser = ServiceBrowser(zc, TYPE, handlers=[on_change])
print(json.dumps({"event": "ready"}), flush=True)
try:
    while True:
        state, name = events.get()
        out = {"event": state.name.lower(), "name": name}
        if state is not ServiceStateChange.Removed:
            info = zc.get_service_info(TYPE, name, timeout=3000)
            if info is not None:
                out.update(
                    port=info.port,
                    txt=info.decoded_properties,
                    addresses=info.parsed_addresses(),
                    server=info.server,
                )
        print(json.dumps(out), flush=True)
finally:
    browser.cancel()
    zc.close()
"""


def adv(sid: str, **kw: object) -> Advertisement:
    base: dict = dict(server_id=sid, name="Front office", port=48123, version=__version__)
    base.update(kw)
    return Advertisement(**base)


# --- pure rules -----------------------------------------------------------------------------


def test_txt_has_the_design_keys_and_round_trips() -> None:
    a = adv("0123456789ab", tls=True, nats="4222")
    assert a.txt() == {
        "id": "0123456789ab",
        "name": "Front office",
        "version": __version__,
        "api": "/api/v1",
        "tls": "1",
        "nats": "4222",
    }
    assert advertisement_from_txt(a.txt(), a.port) == a
    assert adv("0123456789ab").txt()["tls"] == "0"


def test_txt_carries_the_site_only_for_a_recorder_of_one() -> None:
    """``site=`` names the recorder's site (docs/design/site.md); a recorder without a site
    advertises the record it always did, with no ``site`` key at all."""
    a = adv("0123456789ab", site="hq")
    assert a.txt()["site"] == "hq"
    assert advertisement_from_txt(a.txt(), a.port) == a
    assert "site" not in adv("0123456789ab").txt()
    assert advertisement_from_txt(adv("0123456789ab").txt(), 48123).site == ""


def test_instance_name_is_one_safe_label_and_unique_by_id() -> None:
    sid = "0123456789ab"
    assert adv(sid).instance_name() == f"front-office-{sid}"
    assert adv(sid, name="Café Ünter  den   Linden!").instance_name() == (
        f"cafe-unter-den-linden-{sid}"
    )
    assert adv(sid, name="監視").instance_name() == f"vigia-{sid}"
    assert adv(sid, name="").instance_name() == f"vigia-{sid}"
    long = adv(sid, name="x" * 40 + " " + "y" * 200).instance_name()
    assert len(long.encode()) <= 63 and long.endswith(f"-{sid}") and "--" not in long
    assert adv("ba9876543210").instance_name() != adv(sid).instance_name()


@pytest.mark.parametrize(
    "kw",
    [
        {"server_id": "XYZ"},
        {"server_id": "0123456789AB"},
        {"port": 0},
        {"port": 70000},
        {"api": "api/v1"},
        {"nats": "nats://user:secret@host:4222"},
        {"nats": "nats://token@host:4222"},
        {"name": "n" * 300},
    ],
)
def test_bad_advertisements_are_refused(kw: dict) -> None:
    with pytest.raises(ValueError):
        adv("0123456789ab", **kw)


def test_parsing_skips_what_is_not_a_vigia_server() -> None:
    good = {"id": "0123456789ab", "name": "A", "version": "1", "tls": "true", "nats": "4222"}
    parsed = advertisement_from_txt(good, 8480)
    assert parsed is not None and parsed.tls and parsed.api == "/api/v1"
    assert advertisement_from_txt({**good, "id": None}, 8480) is None
    assert advertisement_from_txt({**good, "id": "nope"}, 8480) is None
    assert advertisement_from_txt(good, 0) is None
    bare = advertisement_from_txt({"id": "0123456789ab"}, 8480)
    assert bare == Advertisement("0123456789ab", "0123456789ab", 8480, "", tls=False, nats="")


def test_parse_service_info() -> None:
    a = adv("0123456789ab", nats="nats://10.0.0.5:4222")
    info = ServiceInfo(
        SERVICE_TYPE,
        f"{a.instance_name()}.{SERVICE_TYPE}",
        port=a.port,
        properties=a.txt(),
        server="vigia-0123456789ab.local.",
        parsed_addresses=["192.0.2.10"],
    )
    assert parse_service_info(info) == a
    other = ServiceInfo(SERVICE_TYPE, f"x.{SERVICE_TYPE}", port=80, properties={"path": "/"})
    assert parse_service_info(other) is None


def test_credentials_never_reach_the_txt_record() -> None:
    assert strip_credentials("nats://u:p@nats.lan:4222") == "nats://nats.lan:4222"
    assert strip_credentials("tls://tok@nats.lan") == "tls://nats.lan"
    assert strip_credentials("nats://nats.lan:4222") == "nats://nats.lan:4222"
    assert strip_credentials("4222") == "4222"


def test_interfaces_follow_the_api_listen_address() -> None:
    assert interfaces_for_listen("127.0.0.1:8480") == ["127.0.0.1"]
    assert interfaces_for_listen("localhost:8480") == ["127.0.0.1"]
    assert interfaces_for_listen("192.0.2.7:8480") == ["192.0.2.7"]
    assert interfaces_for_listen("0.0.0.0:8480") is InterfaceChoice.All
    assert interfaces_for_listen("[::]:8480") is InterfaceChoice.All
    assert addresses_for(["127.0.0.1"]) == ["127.0.0.1"]
    every = addresses_for(InterfaceChoice.All)
    assert "127.0.0.1" not in every and all(":" not in a for a in every)
    # the default config listens on loopback: so does the default advertiser
    assert Advertiser(adv("0123456789ab")).interfaces == ["127.0.0.1"]


# --- real mDNS on loopback, browsed from another process -------------------------------------


class Browser:
    """The browsing process's JSON events, read by a thread so waits can have timeouts."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", BROWSER, SERVICE_TYPE],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: queue.Queue[dict | None] = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.put(json.loads(line))
        self.events.put(None)  # the process ended

    def wait_for(
        self, what: str, match: Callable[[dict], bool], timeout: float = EVENT_TIMEOUT_S
    ) -> dict:
        """The first event (from now on) that matches; other events (other servers) pass by."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                break
            if event is None:
                stderr = self.proc.stderr.read() if self.proc.stderr else ""
                pytest.fail(f"browser exited while waiting for {what}: {stderr}")
            self.seen.append(event)
            if match(event):
                return event
        pytest.fail(f"no {what} within {timeout} s; saw {self.seen}")

    async def await_for(self, what: str, match: Callable[[dict], bool]) -> dict:
        return await asyncio.to_thread(self.wait_for, what, match)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


@pytest.fixture
def browser() -> Iterator[Browser]:
    b = Browser()
    try:
        b.wait_for("the browser to start", lambda e: e["event"] == "ready")
        yield b
    finally:
        b.stop()


def test_advertise_update_rename_and_withdraw(browser: Browser) -> None:
    # a fresh id per run: other runs (or recorders) on this machine's loopback cannot confuse us
    sid = secrets.token_hex(6)
    first = adv(sid, nats="4222")

    def event(kind: str, name: str, txt: dict | None = None) -> Callable[[dict], bool]:
        def match(e: dict) -> bool:
            return e["event"] == kind and e["name"] == name and (txt is None or e.get("txt") == txt)

        return match

    async def scenario() -> None:
        advertiser = Advertiser(first, interfaces=LOOPBACK)
        try:
            await advertiser.start()
            name = f"front-office-{sid}.{SERVICE_TYPE}"
            assert advertiser.service_name == name
            found = await browser.await_for("the service", event("added", name, first.txt()))
            assert found["port"] == 48123
            assert found["addresses"] == ["127.0.0.1"]
            assert found["server"] == f"vigia-{sid}.local."
            assert advertisement_from_txt(found["txt"], found["port"]) == first

            # changed TXT, same name: re-announced in place
            moved = adv(sid, nats="nats://192.0.2.9:4222", tls=True)
            await advertiser.update(moved)
            await browser.await_for("the new TXT", event("updated", name, moved.txt()))

            # renamed: the new instance appears, then the old one goes
            renamed = adv(sid, name="Back door", nats=moved.nats, tls=True)
            await advertiser.update(renamed)
            new_name = f"back-door-{sid}.{SERVICE_TYPE}"
            await browser.await_for("the renamed service", event("added", new_name, renamed.txt()))
            await browser.await_for("the old name's removal", event("removed", name))
            assert advertiser.service_name == new_name
        finally:
            await advertiser.close()
        await browser.await_for("the withdrawal", event("removed", new_name))
        await advertiser.close()  # idempotent

    asyncio.run(scenario())


def test_a_second_recorder_with_the_same_id_is_refused() -> None:
    sid = secrets.token_hex(6)

    async def scenario() -> None:
        first = Advertiser(adv(sid), interfaces=LOOPBACK)
        second = Advertiser(adv(sid), interfaces=LOOPBACK)
        try:
            await first.start()
            with pytest.raises(NonUniqueNameException, match=sid):
                await second.start()
            assert second.service_name is None
        finally:
            await second.close()
            await first.close()

    asyncio.run(scenario())


def test_a_running_recorder_is_found_and_withdrawn(server_process, browser: Browser) -> None:
    """The real vigia-server advertises its API port and TXT, and withdraws on a clean exit."""
    toml = camera_toml([])  # port 0: the recorder says which it took
    toml = toml.replace("discovery = false", 'discovery = true\nname = "Gate recorder"')
    server = server_process(toml)
    server.start()
    sid = wait_until(
        lambda: (server.data_dir / "server-id").exists() and DataDir(server.data_dir).server_id(),
        10,
        "the server id",
    )
    found = browser.wait_for(
        "the recorder",
        lambda e: e["event"] == "added" and e.get("txt", {}).get("id") == sid,
        timeout=30,  # a whole recorder process starts first
    )
    assert found["port"] == server.api_port
    assert found["txt"]["name"] == "Gate recorder" and found["txt"]["api"] == "/api/v1"
    assert found["txt"]["nats"].isdigit()  # the embedded server's port, on the same host
    assert server.stop() == 0, server.log()
    browser.wait_for("the goodbye", lambda e: e["event"] == "removed" and sid in e["name"])


def test_a_recorder_of_a_site_advertises_it(server_process, browser: Browser) -> None:
    """The real vigia-server puts its ``[site] name`` in the TXT record."""
    site = f"txt-{secrets.token_hex(3)}"  # fresh per run: other recorders on loopback differ
    toml = camera_toml([]).replace("discovery = false", 'discovery = true\nname = "Site rec"')
    server = server_process(toml + f'\n[site]\nname = "{site}"\n')
    server.start()
    found = browser.wait_for(
        "the recorder of the site",
        lambda e: e["event"] == "added" and e.get("txt", {}).get("site") == site,
        timeout=45,  # a whole recorder process starts first
    )
    assert found["port"] == server.api_port and found["txt"]["name"] == "Site rec"
    assert found["txt"]["id"] == DataDir(server.data_dir).server_id()
    assert server.stop() == 0, server.log()
