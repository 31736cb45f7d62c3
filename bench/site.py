"""Site figures: directory propagation, token checks across recorders, and a site's lists.

    python bench/site.py [--rounds 50] [--json OUT]

Three real recorders form a site on a real 3-node NATS cluster, as in ``tests/test_site.py``
(a network namespace of their own: fixed route ports are free there; needs root). Measured:

- propagation: an account changed through A's API, visible in C's API (``GET /users``
  polled every 2 ms), p50/p99 (goal p99 <= 100 ms on loopback);
- token checks on C: a request with a token A issued against one with C's own token, the first
  use (looked up in the directory) and the following ones (copied), as a ratio of p50s;
- lists: ``GET /users`` (directory-backed) on a recorder of the site against a recorder on
  its own, as a ratio of p50s.

The configuration compared is pinned here (analytics off, no cameras): the figures are the
directory's, not recording's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import ServerProcess, camera_toml, wait_until
from tests.test_site import NAMES, ROUTE_PORTS, Member, api_port, start_member, whole
from tests.test_whep import ADMIN_PASSWORD, NetNs, login


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))] if s else float("nan")


async def timed_get(http: aiohttp.ClientSession, url: str, token: str, n: int) -> list[float]:
    out = []
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(n):
        t0 = time.perf_counter()
        async with http.get(url, headers=headers) as r:
            assert r.status == 200, await r.text()
            await r.read()
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def measure(a: Member, c: Member, lone_base: str, lone_token: str, rounds: int) -> dict:
    async with aiohttp.ClientSession() as http:
        hdr_a = {"Authorization": f"Bearer {a.token}"}
        body = {"name": "bench", "password": "bench-password-1", "role": "viewer"}
        async with http.post(f"{a.base}/api/v1/users", json=body, headers=hdr_a) as r:
            assert r.status == 201, await r.text()
        # propagation: a change on A seen in C's API
        prop = []
        for i in range(rounds):
            want = [f"cam{i}"]
            t0 = time.perf_counter()
            async with http.patch(f"{a.base}/api/v1/users/bench", json={"cameras": want},
                                  headers=hdr_a) as r:  # fmt: skip
                assert r.status == 200, await r.text()
            while True:
                hdr_c = {"Authorization": f"Bearer {c.token}"}
                async with http.get(f"{c.base}/api/v1/users", headers=hdr_c) as r:
                    users = await r.json()
                if next(u for u in users if u["name"] == "bench")["cameras"] == want:
                    break
                await asyncio.sleep(0.002)
            prop.append((time.perf_counter() - t0) * 1000)
        # token checks on C: A's token (first use, then copied) against C's own
        firsts = []
        for _ in range(10):
            creds = {"name": "admin", "password": ADMIN_PASSWORD}
            async with http.post(f"{a.base}/api/v1/auth/login", json=creds) as r:
                tok = (await r.json())["token"]
            firsts += await timed_get(http, f"{c.base}/api/v1/server", tok, 1)
        foreign = await timed_get(http, f"{c.base}/api/v1/server", tok, rounds * 4)
        local = await timed_get(http, f"{c.base}/api/v1/server", c.token, rounds * 4)
        site_list = await timed_get(http, f"{c.base}/api/v1/users", c.token, rounds * 4)
        lone_list = await timed_get(http, f"{lone_base}/api/v1/users", lone_token, rounds * 4)
    return {
        "propagation_ms": {"p50": pct(prop, 0.5), "p99": pct(prop, 0.99), "n": len(prop)},
        "token_first_use_ms": {"p50": pct(firsts, 0.5), "n": len(firsts)},
        "token_foreign_ms": {"p50": statistics.median(foreign)},
        "token_local_ms": {"p50": statistics.median(local)},
        "token_ratio": statistics.median(foreign) / statistics.median(local),
        "token_first_use_ratio": pct(firsts, 0.5) / statistics.median(local),
        "users_site_ms": {"p50": statistics.median(site_list)},
        "users_lone_ms": {"p50": statistics.median(lone_list)},
        "users_ratio": statistics.median(site_list) / statistics.median(lone_list),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ns = NetNs()
        ns.create()
        members = [
            start_member(ns, tmp, n, port) for n, port in zip(NAMES, ROUTE_PORTS, strict=True)
        ]
        (tmp / "lone.toml").write_text(camera_toml([]))
        lone = ServerProcess(tmp / "lone", tmp / "lone.toml", tmp / "lone.log")
        lone.start(env={"VIGIA_ADMIN_PASSWORD": ADMIN_PASSWORD})
        try:
            for m in members:
                port = wait_until(lambda m=m: api_port(m), 180, f"{m.name}'s API")
                m.base = f"http://{m.host}:{port}"
                m.token = login(m.base)
            for m in members:
                wait_until(lambda m=m: whole(m), 90, f"{m.name} to see the whole site")
            lone_token = login(lone.base_url)
            result = asyncio.run(measure(members[0], members[2], lone.base_url, lone_token,
                                         args.rounds))  # fmt: skip
        finally:
            for m in members:
                m.proc.terminate()
            for m in members:
                m.proc.wait(30)
            lone.stop()
            ns.delete()
    prop = result["propagation_ms"]
    rows = [
        ("directory propagation A -> C's API", f"p50 {prop['p50']:.1f} ms, p99 {prop['p99']:.1f} ms"
         f" (goal p99 <= 100 ms), n={prop['n']}"),
        ("token from A on C, first use", f"p50 {result['token_first_use_ms']['p50']:.2f} ms "
         f"({result['token_first_use_ratio']:.2f}x C's own)"),
        ("token from A on C, copied", f"p50 {result['token_foreign_ms']['p50']:.2f} ms "
         f"({result['token_ratio']:.2f}x C's own, {result['token_local_ms']['p50']:.2f} ms)"),
        ("GET /users, site vs lone", f"{result['users_site_ms']['p50']:.2f} ms vs "
         f"{result['users_lone_ms']['p50']:.2f} ms ({result['users_ratio']:.2f}x)"),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
