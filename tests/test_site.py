"""A site of three recorders on a real NATS cluster (docs/design/site.md).

Three real ``vigia-server`` processes, each with its embedded nats-server, run in a network
namespace this module creates (joined to ours by a veth pair). Nothing else lives there, so the
fixed route ports every recorder's configuration names are certain to be free: the cluster forms
from the configuration files alone, as it would on three machines. Needs root (``ip netns``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil
import pytest

from tests.conftest import ROOT, wait_until
from tests.test_whep import ADMIN_PASSWORD, NetNs, _get_json, login, netns_unavailable

SECRET = "a-site-secret-of-enough-length"
ROUTE_PORTS = (6222, 6223, 6224)  # inside the namespace: nothing else binds there
NAMES = ("rec-a", "rec-b", "rec-c")


@dataclass
class Member:
    name: str
    proc: subprocess.Popen
    data: Path
    log_path: Path
    host: str
    base: str = ""
    token: str = ""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def site(self) -> dict | None:
        status, body = _get_json(f"{self.base}/api/v1/site", self.token)
        return body if status == 200 else None


def site_toml(ns_addr: str, name: str, route_port: int) -> str:
    routes = ", ".join(f'"nats://127.0.0.1:{p}"' for p in ROUTE_PORTS)
    return "\n".join([
        "[server]", f'listen = "{ns_addr}:0"', "discovery = false", f'name = "{name}"',
        "[analytics]", "enabled = false",
        "[nats]", 'listen = "127.0.0.1:0"', f'cluster_listen = "127.0.0.1:{route_port}"',
        f"routes = [{routes}]",
        "[site]", 'name = "hq"', "",
    ])  # fmt: skip


def start_member(ns: NetNs, tmp: Path, name: str, route_port: int) -> Member:
    config = tmp / f"{name}.toml"
    config.write_text(site_toml(ns.ns_addr, name, route_port))
    log_path = tmp / f"{name}.log"
    with log_path.open("ab") as log:
        proc = ns.popen(
            [sys.executable, "-m", "server", "--data-dir", str(tmp / name), "--config",
             str(config), "--log-level", "DEBUG"],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "VIGIA_ADMIN_PASSWORD": ADMIN_PASSWORD,
                 "VIGIA_SITE_SECRET": SECRET, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    return Member(name, proc, tmp / name, log_path, ns.ns_addr)


def api_port(m: Member) -> int | None:
    assert m.proc.poll() is None, f"{m.name} exited:\n{m.log()}"
    try:
        return json.loads((m.data / "run" / "ports.json").read_text()).get("api")
    except (OSError, ValueError):
        return None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Member]]:
    reason = netns_unavailable()
    if reason:
        pytest.skip(f"{reason} (the site's recorders run in a namespace of their own)")
    ns = NetNs()
    ns.create()
    tmp = tmp_path_factory.mktemp("site")
    members = [start_member(ns, tmp, n, p) for n, p in zip(NAMES, ROUTE_PORTS, strict=True)]
    try:
        for m in members:
            port = wait_until(lambda m=m: api_port(m), 180, f"{m.name}'s API")
            m.base = f"http://{m.host}:{port}"
            m.token = login(m.base)
        yield members
    finally:
        for m in members:
            if m.proc.poll() is None:
                m.proc.terminate()
        for m in members:
            try:
                m.proc.wait(30)
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait(10)
        ns.delete()
    for m in members:
        assert "Traceback" not in m.log(), m.log()


def whole(m: Member) -> dict | None:
    """The site as ``m`` sees it once all three are up, routed and quorate, else None."""
    body = m.site()
    if body is None:
        return None
    states = {r["name"]: r["state"] for r in body["recorders"]}
    cluster = body["cluster"]
    ok = (states == dict.fromkeys(NAMES, "up") and cluster["nodes"] == 3
          and cluster["jetstream"] == "ok" and cluster["replicas"] == 3)  # fmt: skip
    return body if ok else None


def call(method: str, url: str, token: str, body: dict | None = None) -> tuple[int, object]:
    async def go():
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, url, json=body, headers=headers) as r,
        ):
            text = await r.text()
            return r.status, (json.loads(text) if text else None)

    return asyncio.run(go())


def both(calls: list[tuple[str, str, str, dict | None]]) -> list[tuple[int, object]]:
    """Requests sent at once (two admins pressing Save together)."""

    async def one(http: aiohttp.ClientSession, method, url, token, body):
        headers = {"Authorization": f"Bearer {token}"}
        async with http.request(method, url, json=body, headers=headers) as r:
            return r.status, await r.json()

    async def go():
        async with aiohttp.ClientSession() as http:
            return await asyncio.gather(*(one(http, *c) for c in calls))

    return asyncio.run(go())


def user_on(m: Member, name: str) -> dict | None:
    status, users = call("GET", f"{m.base}/api/v1/users", m.token)
    assert status == 200, users
    return next((u for u in users if u["name"] == name), None)


def test_one_login_for_the_whole_site(site: list[Member]) -> None:
    a, b, c = site
    for m in site:
        wait_until(lambda m=m: whole(m), 90, f"{m.name} to see the whole site", poll=0.5)
    # an account made on B logs in on C
    guard = {"name": "guard", "password": "guard-password-1", "role": "viewer"}
    status, body = call("POST", f"{b.base}/api/v1/users", b.token, guard)
    assert status == 201, body
    wait_until(lambda: user_on(c, "guard"), 5, "the account on C")
    token_c = login(c.base, "guard", guard["password"])
    assert call("GET", f"{c.base}/api/v1/cameras", token_c)[0] == 200
    # a token from A works on C at once (fetched from the directory if not copied yet)
    token_a = login(a.base, "guard", guard["password"])
    assert call("GET", f"{c.base}/api/v1/cameras", token_a)[0] == 200
    # logout on A: refused on C within 1 s
    assert call("POST", f"{a.base}/api/v1/auth/logout", token_a)[0] == 204
    t0 = time.monotonic()
    wait_until(lambda: call("GET", f"{c.base}/api/v1/cameras", token_a)[0] == 401, 1,
               "the logout to reach C")  # fmt: skip
    print(f"logout on A -> refused on C: {(time.monotonic() - t0) * 1000:.0f} ms")
    # disabling the account on C ends its sessions on every recorder
    token_b = login(b.base, "guard", guard["password"])
    status, body = call("PATCH", f"{c.base}/api/v1/users/guard", c.token, {"disabled": True})
    assert status == 200, body
    wait_until(lambda: call("GET", f"{b.base}/api/v1/cameras", token_b)[0] == 401, 2,
               "the disabled account's session on B to end")  # fmt: skip
    # an admin on A sees the change before acting on it (acting on an older copy is a 409)
    wait_until(lambda: user_on(a, "guard")["disabled"], 5, "the change on A")
    assert call("PATCH", f"{a.base}/api/v1/users/guard", a.token, {"disabled": False})[0] == 200

    # two admins change the same account through A and C at once: one wins, one gets 409,
    # and every recorder ends with the winner's (several rounds: "at once" is a race)
    outcomes = []
    for i in range(8):
        cams_a, cams_c = [f"cam-a{i}"], [f"cam-c{i}"]
        (sa, ba), (sc, bc) = both([
            ("PATCH", f"{a.base}/api/v1/users/guard", a.token, {"cameras": cams_a}),
            ("PATCH", f"{c.base}/api/v1/users/guard", c.token, {"cameras": cams_c}),
        ])  # fmt: skip
        assert {sa, sc} <= {200, 409}, (ba, bc)
        outcomes.append((sa, sc))
        if 409 in (sa, sc):
            assert sa != sc, (ba, bc)
            won = cams_a if sa == 200 else cams_c
            for m in site:
                wait_until(lambda m=m, won=won: user_on(m, "guard")["cameras"] == won, 5,
                           f"{m.name} to hold the winner's change")  # fmt: skip
            break
    else:
        pytest.fail(f"no concurrent change was refused with 409 in {outcomes}")


def test_three_recorders_form_one_site_and_survive_the_loss_of_one(site: list[Member]) -> None:
    a, b, c = site
    for m in site:
        body = wait_until(lambda m=m: whole(m), 90, f"{m.name} to see the whole site",
                          poll=0.5)  # fmt: skip
        assert body["name"] == "hq"
        assert body["recorder"] == next(r["id"] for r in body["recorders"] if r["name"] == m.name)
        assert len(body["cluster"]["routes"]) == 2, body
        apis = {r["name"]: r["api"] for r in body["recorders"]}
        assert apis[m.name] == m.base, apis
    ids = {frozenset(r["id"] for r in m.site()["recorders"]) for m in site}
    assert len(ids) == 1 and len(next(iter(ids))) == 3  # the same three everywhere

    night = {"name": "night", "password": "night-password-1", "role": "viewer"}
    assert call("POST", f"{a.base}/api/v1/users", a.token, night)[0] == 201
    wait_until(lambda: user_on(b, "night"), 5, "the account on B")
    # a recorder whose nats-server stops answers 503 to writes and keeps its copy; current
    # again within 5 s of the server's return
    (nats_b,) = [p for p in psutil.Process(b.proc.pid).children() if "nats-server" in p.name()]
    nats_b.suspend()
    try:
        status, body = call("PATCH", f"{b.base}/api/v1/users/night", b.token, {"cameras": ["x"]})
        assert status == 503, body
        assert user_on(b, "night")["cameras"] != ["x"]  # nothing diverged
        lost = {"name": "lost", "password": "lost-password-1", "role": "viewer"}
        status, body = call("POST", f"{b.base}/api/v1/users", b.token, lost)
        assert status == 503, body
        assert user_on(b, "lost") is None  # an account the site could not take is not kept
        # A and C are a quorum (once they elected a leader in B's place, where B led)
        wait_until(
            lambda: call("PATCH", f"{a.base}/api/v1/users/night", a.token, {"cameras": ["y"]})[0]
            == 200, 20, "a write through A while B is frozen", poll=0.5,
        )  # fmt: skip
    finally:
        nats_b.resume()
    t0 = time.monotonic()
    wait_until(lambda: user_on(b, "night")["cameras"] == ["y"], 5, "B to catch up", poll=0.2)
    print(f"B current again {(time.monotonic() - t0) * 1000:.0f} ms after its nats-server")
    # kill -9 of one recorder: its nats-server goes with it; the other two keep quorum
    c.proc.send_signal(signal.SIGKILL)
    c.proc.wait(10)

    def c_down(m: Member) -> dict | None:
        body = m.site()
        if body is None:
            return None
        states = {r["name"]: r["state"] for r in body["recorders"]}
        cluster = body["cluster"]
        ok = (states == {"rec-a": "up", "rec-b": "up", "rec-c": "down"}
              and cluster["nodes"] == 2 and cluster["jetstream"] == "ok")  # fmt: skip
        return body if ok else None

    for m in (a, b):
        wait_until(lambda m=m: c_down(m), 60, f"{m.name} to list rec-c as down", poll=0.5)
    # the directory stays writable with 2 of 3 (once the buckets whose leader was on C have
    # elected another: a few seconds, answered 503 meanwhile)
    t0 = time.monotonic()
    wait_until(
        lambda: call("PATCH", f"{b.base}/api/v1/users/night", b.token, {"cameras": ["z"]})[0]
        == 200, 20, "a write through B after the loss of C", poll=0.5,
    )  # fmt: skip
    print(f"directory writable again {(time.monotonic() - t0) * 1000:.0f} ms after the loss")
    wait_until(lambda: user_on(a, "night")["cameras"] == ["z"], 5, "the change on A")
    # and the directory is still written: heartbeats newer than the kill keep coming
    seen = {r["name"]: r["seen_us"] for r in a.site()["recorders"]}
    wait_until(
        lambda: {r["name"]: r["seen_us"] for r in b.site()["recorders"]}["rec-a"] > seen["rec-a"],
        30, "rec-a's heartbeat to reach rec-b after the loss",
        poll=0.5,
    )  # fmt: skip


def test_a_cluster_without_the_site_secret_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "vigia.toml"
    config.write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndiscovery = false\n[analytics]\nenabled = false\n'
        '[nats]\nlisten = "127.0.0.1:0"\ncluster_listen = "127.0.0.1:0"\n[site]\nname = "hq"\n'
    )
    env = {k: v for k, v in os.environ.items() if k != "VIGIA_SITE_SECRET"}
    out = subprocess.run(
        [sys.executable, "-m", "server", "--data-dir", str(tmp_path / "data"), "--config",
         str(config)],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env=env,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "VIGIA_SITE_SECRET" in out.stderr and "[site] hq" in out.stderr, out.stderr
