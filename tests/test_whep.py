"""Live video over WebRTC (WHEP): a real recorder in a network namespace, real aiortc viewers.

aioice never gathers 127.0.0.1, so two peers on loopback alone cannot connect: the recorder runs
in a network namespace this module creates, joined to ours by a veth pair (10.231.x.1 there,
10.231.x.2 here); the viewers run in this process. Needs root (``ip netns``); skipped otherwise.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import aiohttp
import av
import psutil
import pytest

from server.live.fanout import Fanout
from server.recording.h26x import iter_nals, nal_type, parameter_sets
from server.recording.packets import IngestPacket, StreamInfo
from server.sim.clips import read_frame_number
from server.webrtc.client import WhepRefused, WhepViewer
from tests.conftest import ROOT, START_S, wait_until

ADMIN_PASSWORD = "admin-password-1"
FPS = 25
CLIP_FRAMES = 8 * FPS  # the camera_clips are 8 s at 25 fps, looped by the file source


# --- a network namespace with a veth pair -----------------------------------------------------


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class NetNs:
    """A network namespace joined to ours by a veth pair; removed by ``delete``."""

    _count = 0

    def __init__(self) -> None:
        NetNs._count += 1
        tag = f"{os.getpid() % 100000}{NetNs._count}"
        self.name = f"vigia-t{tag}"
        self.host_if, self.ns_if = f"vh{tag}"[:15], f"vn{tag}"[:15]
        self.ns_addr = self.host_addr = ""

    def create(self) -> None:
        # the free subnet is picked and taken under a lock: test workers create theirs at once
        with open(os.path.join(tempfile.gettempdir(), "vigia-test-netns.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            used = _ip("-o", "addr").stdout
            for n in range(os.getpid() % 60, 64 + os.getpid() % 60):
                net = f"10.231.{n % 256}"
                if f"{net}." not in used:
                    break
            self.ns_addr, self.host_addr = f"{net}.1", f"{net}.2"
            self._create()

    def _create(self) -> None:
        _ip("netns", "add", self.name)
        try:
            _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
            _ip("link", "set", self.ns_if, "netns", self.name)
            _ip("addr", "add", f"{self.host_addr}/30", "dev", self.host_if)
            _ip("link", "set", self.host_if, "up")
            for cmd in (
                ["addr", "add", f"{self.ns_addr}/30", "dev", self.ns_if],
                ["link", "set", self.ns_if, "up"],
                ["link", "set", "lo", "up"],
            ):
                _ip("netns", "exec", self.name, "ip", *cmd)
        except subprocess.CalledProcessError:
            self.delete()
            raise

    def delete(self) -> None:
        _ip("link", "del", self.host_if, check=False)
        _ip("netns", "del", self.name, check=False)

    def popen(self, argv: list[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kw)


def netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    try:
        probe = NetNs()
        probe.create()
        probe.delete()
    except (OSError, subprocess.CalledProcessError) as exc:
        err = getattr(exc, "stderr", "") or exc
        return f"cannot create a network namespace with a veth pair: {err}"
    return None


@pytest.fixture(scope="module")
def netns() -> Iterator[NetNs]:
    reason = netns_unavailable()
    if reason:
        pytest.skip(f"{reason} (aioice drops 127.0.0.1, so WebRTC needs a veth pair)")
    ns = NetNs()
    ns.create()
    yield ns
    ns.delete()


# --- a recorder in the namespace --------------------------------------------------------------


@dataclass
class Recorder:
    proc: subprocess.Popen
    base: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


METRICS_TOKEN = "whep-scrape-token"


def recorder_toml(listen: str, cameras: list[tuple[str, str, str | None]]) -> str:
    out = [
        "[server]",
        f'listen = "{listen}"',
        "discovery = false",
        'roles = "ingest,record,api"',  # no analytics: the CPU figures are WebRTC's alone
        f'metrics_token = "{METRICS_TOKEN}"',  # scraped from outside the namespace's loopback
        "[recording]",
        "segment_seconds = 15",
        "[storage]",
        "min_free_bytes = 0",
        "[nats]",
        "enabled = false",
    ]
    for cid, main, sub in cameras:
        out += ["[[cameras]]", f'id = "{cid}"', f'name = "{cid}"', f'main = "{main}"']
        if sub:
            out.append(f'sub = "{sub}"')
    return "\n".join(out) + "\n"


def start_recorder(ns: NetNs, tmp: Path, cameras: list[tuple[str, str, str | None]]) -> Recorder:
    port = 8480
    config = tmp / "vigia.toml"
    config.write_text(recorder_toml(f"{ns.ns_addr}:{port}", cameras))
    log_path = tmp / "server.log"
    with log_path.open("ab") as log:
        proc = ns.popen(
            [sys.executable, "-m", "server", "--data-dir", str(tmp / "data"),
             "--config", str(config), "--log-level", "INFO"],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "VIGIA_ADMIN_PASSWORD": ADMIN_PASSWORD, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    return Recorder(proc, f"http://{ns.ns_addr}:{port}", log_path)


def stop_recorder(rec: Recorder) -> None:
    if rec.proc.poll() is None:
        rec.proc.terminate()
        try:
            rec.proc.wait(20)
        except subprocess.TimeoutExpired:
            rec.proc.kill()
            rec.proc.wait(10)


def _get_json(url: str, token: str | None = None):
    async def go():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as r:
            return r.status, await r.json()

    try:
        return asyncio.run(go())
    except (aiohttp.ClientError, OSError):
        return None, None


def login(base: str, name: str = "admin", password: str = ADMIN_PASSWORD) -> str:
    async def go() -> str:
        async with aiohttp.ClientSession() as http:
            body = {"name": name, "password": password}
            async with http.post(f"{base}/api/v1/auth/login", json=body) as r:
                assert r.status == 200, await r.text()
                return (await r.json())["token"]

    return asyncio.run(go())


def wait_online(rec: Recorder, token: str, streams: set[tuple[str, str]]) -> None:
    def online() -> bool:
        assert rec.proc.poll() is None, rec.log()
        status, cams = _get_json(f"{rec.base}/api/v1/cameras", token)
        if status != 200:
            return False
        up = {(c["id"], s["name"]) for c in cams for s in c["streams"] if s["state"] == "online"}
        return streams <= up

    wait_until(online, START_S, f"streams {sorted(streams)} online")


def metric(base: str, name: str) -> float:
    async def go() -> str:
        auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        async with aiohttp.ClientSession(headers=auth) as http, http.get(f"{base}/metrics") as r:
            return await r.text()

    text = asyncio.run(go())
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    assert m, f"{name} not in /metrics: {text[:300]}"
    return float(m.group(1))


@pytest.fixture(scope="module")
def recorder(netns: NetNs, camera_clips, hevc_clip, tmp_path_factory) -> Iterator[Recorder]:
    tmp = tmp_path_factory.mktemp("whep")
    (m0, s0), (m1, s1) = camera_clips[0], camera_clips[1]
    cams = [
        ("cam0", f"file://{m0}", f"file://{s0}"),
        ("cam1", f"file://{m1}", f"file://{s1}"),
        ("camh", f"file://{hevc_clip}", None),
    ]
    rec = start_recorder(netns, tmp, cams)
    try:
        wait_until(
            lambda: _get_json(f"{rec.base}/healthz")[0] == 200 or rec.proc.poll() is not None,
            START_S,  # a busy machine can take long to start one; a quick one costs nothing
            "the recorder's API",
        )
        assert rec.proc.poll() is None, rec.log()
        token = login(rec.base)
        wait_online(rec, token, {("cam0", "main"), ("cam1", "main"), ("camh", "main")})
        yield rec
    finally:
        stop_recorder(rec)
    assert "Traceback" not in rec.log(), rec.log()


# --- the source clock, for latency and real-time checks ---------------------------------------


def source_anchor_us(base: str, token: str, camera: str, stream: str = "main") -> int:
    """When the file source played frame 0 of its first loop (our clock, µs).

    The file source plays frame ``i`` at ``t0 + i / fps``; the stream status says when packet
    ``packets - 1`` arrived. Wake-ups can only be late, so the earliest estimate is the best.
    """
    best, samples = None, 0
    for _ in range(50):
        _, cams = _get_json(f"{base}/api/v1/cameras", token)
        st = next(s for c in cams if c["id"] == camera for s in c["streams"] if s["name"] == stream)
        if st["last_packet_us"] is None:  # between two connections of the source
            time.sleep(0.1)
            continue
        anchor = st["last_packet_us"] - (st["packets"] - 1) * 1_000_000 // FPS
        best = anchor if best is None else min(best, anchor)
        samples += 1
        if samples == 5:
            break
        time.sleep(0.1)
    assert best is not None, "the source never reported a packet time"
    return best


def latency_us(anchor_us: int, code: int, now_us: int) -> int:
    """Wall time since the source played the frame with ``code`` (within one loop)."""
    return (now_us - anchor_us - code * 1_000_000 // FPS) % (CLIP_FRAMES * 1_000_000 // FPS)


@dataclass
class Watched:
    codes: list[tuple[float, int]]  # (wall time s, frame code)
    first_frame_s: float
    delete_status: int | None


async def watch(
    base: str, token: str, camera: str, seconds: float, stream: str = "main"
) -> Watched:
    async with aiohttp.ClientSession() as http:
        viewer = WhepViewer(base, camera, token, stream)
        t0 = time.monotonic()
        await viewer.start(http)
        codes: list[tuple[float, int]] = []
        first = None
        try:
            async with asyncio.timeout(seconds + 15):
                async for frame in viewer.frames():
                    now = time.time()
                    if first is None:
                        first = time.monotonic() - t0
                    code = read_frame_number(frame.to_ndarray(format="gray"))
                    if code is not None:
                        codes.append((now, code))
                    if time.monotonic() - t0 - first >= seconds:
                        break
        finally:
            status = await viewer.close(http)
    assert first is not None, "no frame arrived"
    return Watched(codes, first, status)


# --- tests ------------------------------------------------------------------------------------


def test_viewer_decodes_the_camera_at_real_time(recorder: Recorder) -> None:
    token = login(recorder.base)
    anchor = source_anchor_us(recorder.base, token, "cam0")
    seen = asyncio.run(watch(recorder.base, token, "cam0", 3.0))
    assert seen.delete_status == 200
    assert len(seen.codes) >= 50, f"only {len(seen.codes)} readable frames in 3 s"
    assert all(0 <= c < CLIP_FRAMES for _, c in seen.codes)
    # the frame code advances with the wall clock: 25 codes per second, no repeats, no jumps
    unwrapped, prev = [], None
    for t, c in seen.codes:
        step = 0 if prev is None else (c - prev) % CLIP_FRAMES
        assert prev is None or 1 <= step <= 3, f"frame code jumped {prev} -> {c}"
        unwrapped.append((t, (unwrapped[-1][1] + step) if unwrapped else c))
        prev = c
    (t_a, n_a), (t_b, n_b) = unwrapped[0], unwrapped[-1]
    rate = (n_b - n_a) / (t_b - t_a)
    assert 0.8 * FPS <= rate <= 1.2 * FPS, f"frame code advanced at {rate:.1f}/s"
    lat_ms = sorted(latency_us(anchor, c, int(t * 1e6)) / 1000 for t, c in seen.codes)
    print(
        f"first frame {seen.first_frame_s * 1000:.0f} ms, latency p50 "
        f"{lat_ms[len(lat_ms) // 2]:.0f} ms, max {lat_ms[-1]:.0f} ms, {rate:.1f} codes/s"
    )
    assert lat_ms[len(lat_ms) // 2] < 2000, "frames arrive seconds late: not live"
    wait_until(
        lambda: metric(recorder.base, "vigia_webrtc_sessions") == 0, 10, "the session to end"
    )
    assert metric(recorder.base, "vigia_webrtc_bytes_sent_total") > 50_000
    assert metric(recorder.base, "vigia_webrtc_keyframe_waits_total") >= 1


def test_four_viewers_cost_the_recorder_almost_nothing(recorder: Recorder) -> None:
    """No re-encode: serving 4 viewers costs packetizing and SRTP only."""
    token = login(recorder.base)
    proc = psutil.Process(recorder.proc.pid)
    window = 4.0

    def cpu_seconds() -> float:
        t = proc.cpu_times()
        return t.user + t.system

    c0 = cpu_seconds()
    time.sleep(window)  # a measuring window, not a synchronisation
    idle = (cpu_seconds() - c0) / window

    async def four() -> tuple[float, list[int]]:
        async with aiohttp.ClientSession() as http:
            viewers = [WhepViewer(recorder.base, "cam0", token) for _ in range(4)]
            for v in viewers:
                await v.start(http)
            counts = [0] * 4

            async def count(i: int) -> None:
                async for _ in viewers[i].frames():
                    counts[i] += 1

            tasks = [asyncio.create_task(count(i)) for i in range(4)]

            async def all_playing() -> None:
                while min(counts) == 0:
                    await asyncio.sleep(0.05)  # polls a counter the tasks above raise

            await asyncio.wait_for(all_playing(), 30)
            before = list(counts)
            start = await asyncio.to_thread(cpu_seconds)
            await asyncio.sleep(window)  # a measuring window, not a synchronisation
            busy = (await asyncio.to_thread(cpu_seconds) - start) / window
            frames = [n - b for n, b in zip(counts, before, strict=True)]
            for v in viewers:
                await v.close(http)
            for t in tasks:
                t.cancel()
            return busy, frames

    busy, frames = asyncio.run(four())
    print(
        f"recorder CPU: {idle * 100:.1f} % idle, {busy * 100:.1f} % with 4 viewers; "
        f"frames per viewer in {window:.0f} s: {frames}"
    )
    # loose bounds: a shared 2-core CI machine is noisy; a re-encode would cost whole cores
    assert all(n >= window * FPS * 0.25 for n in frames), frames
    assert busy - idle < 0.5, f"4 viewers cost {100 * (busy - idle):.1f} % of a core"


def test_offers_without_rights_are_refused(recorder: Recorder) -> None:
    admin = login(recorder.base)

    async def go() -> None:
        async with aiohttp.ClientSession() as http:
            user = {"name": "guard", "password": "guard-password-1", "role": "viewer",
                    "cameras": ["cam1"]}  # fmt: skip
            hdr = {"Authorization": f"Bearer {admin}"}
            async with http.post(f"{recorder.base}/api/v1/users", json=user, headers=hdr) as r:
                assert r.status == 201, await r.text()
            with pytest.raises(WhepRefused) as exc:
                await WhepViewer(recorder.base, "cam0", "").start(http)
            assert exc.value.status == 401
            guard = await asyncio.to_thread(login, recorder.base, "guard", "guard-password-1")
            with pytest.raises(WhepRefused) as exc:
                await WhepViewer(recorder.base, "cam0", guard).start(http)
            assert exc.value.status == 403
            assert "forbidden" in exc.value.body
            with pytest.raises(WhepRefused) as exc:
                await WhepViewer(recorder.base, "nope", admin).start(http)
            assert exc.value.status == 404

    asyncio.run(go())
    assert metric(recorder.base, "vigia_webrtc_sessions") == 0


def test_malformed_offers_get_400_and_leave_no_session(recorder: Recorder) -> None:
    token = login(recorder.base)
    url = f"{recorder.base}/api/v1/cameras/cam0/whep"
    sdp = {"Authorization": f"Bearer {token}", "Content-Type": "application/sdp"}
    no_video = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    broken = no_video + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96\r\n"

    async def go() -> list[tuple[int, str]]:
        out = []
        async with aiohttp.ClientSession() as http:
            for body, headers in [
                ("hello", sdp),
                (b"\xff\xfe", sdp),
                (no_video, sdp),
                (broken, sdp),
                ("v=0", {**sdp, "Content-Type": "application/json"}),
            ]:
                async with http.post(url, data=body, headers=headers) as r:
                    out.append((r.status, (await r.json())["error"]["code"]))
            async with http.post(f"{url}?stream=third", data=no_video, headers=sdp) as r:
                out.append((r.status, (await r.json())["error"]["code"]))
            async with http.delete(f"{recorder.base}/api/v1/whep/nope", headers=sdp) as r:
                out.append((r.status, (await r.json())["error"]["code"]))
        return out

    results = asyncio.run(go())
    assert [s for s, _ in results] == [400, 400, 400, 400, 415, 400, 404], results
    assert metric(recorder.base, "vigia_webrtc_sessions") == 0


def test_h265_camera_gets_a_clear_415(recorder: Recorder) -> None:
    token = login(recorder.base)

    async def go() -> None:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(WhepRefused) as exc:
                await WhepViewer(recorder.base, "camh", token).start(http)
            assert exc.value.status == 415
            assert "H.264" in exc.value.body and "HEVC" in exc.value.body

    asyncio.run(go())
    assert metric(recorder.base, "vigia_webrtc_sessions") == 0


def test_sessions_end_on_logout_and_on_camera_removal(recorder: Recorder) -> None:
    admin = login(recorder.base)
    short = login(recorder.base)

    async def first_frame(viewer: WhepViewer) -> None:
        async for _ in viewer.frames():
            return

    async def go() -> None:
        async with aiohttp.ClientSession() as http:
            viewer = WhepViewer(recorder.base, "cam1", short)
            await viewer.start(http)
            await asyncio.wait_for(first_frame(viewer), 15)
            hdr = {"Authorization": f"Bearer {short}"}
            async with http.post(f"{recorder.base}/api/v1/auth/logout", headers=hdr) as r:
                assert r.status == 204
            await asyncio.to_thread(
                wait_until,
                lambda: metric(recorder.base, "vigia_webrtc_sessions") == 0,
                10,
                "the logged-out viewer's session to end",
            )
            await viewer.close()

            viewer = WhepViewer(recorder.base, "cam1", admin)
            await viewer.start(http)
            await asyncio.wait_for(first_frame(viewer), 15)
            hdr = {"Authorization": f"Bearer {admin}"}
            async with http.delete(f"{recorder.base}/api/v1/cameras/cam1", headers=hdr) as r:
                assert r.status == 204
            await asyncio.to_thread(
                wait_until,
                lambda: metric(recorder.base, "vigia_webrtc_sessions") == 0,
                10,
                "the removed camera's session to end",
            )
            await viewer.close()

    asyncio.run(go())


def test_a_rights_change_ends_the_users_sessions_at_once(recorder: Recorder) -> None:
    """Issue 19: moving a viewer to other cameras ends its WebRTC session of the old camera
    before the users API answers (the periodic re-check alone took up to 2 s)."""
    admin = login(recorder.base)
    hdr = {"Authorization": f"Bearer {admin}"}

    async def first_frame(viewer: WhepViewer) -> None:
        async for _ in viewer.frames():
            return

    async def add_user() -> None:
        async with aiohttp.ClientSession(headers=hdr) as http:
            user = {"name": "mover", "password": "mover-password-1", "role": "viewer",
                    "cameras": ["cam0"]}  # fmt: skip
            async with http.post(f"{recorder.base}/api/v1/users", json=user) as r:
                assert r.status == 201, await r.text()

    asyncio.run(add_user())
    token = login(recorder.base, "mover", "mover-password-1")

    async def go() -> None:
        async with aiohttp.ClientSession() as http:
            viewer = WhepViewer(recorder.base, "cam0", token)
            await viewer.start(http)
            await asyncio.wait_for(first_frame(viewer), 15)
            assert await asyncio.to_thread(metric, recorder.base, "vigia_webrtc_sessions") == 1
            url = f"{recorder.base}/api/v1/users/mover"
            async with http.patch(url, json={"cameras": ["cam1"]}, headers=hdr) as r:
                assert r.status == 200
            assert await asyncio.to_thread(metric, recorder.base, "vigia_webrtc_sessions") == 0
            await viewer.close()

    asyncio.run(go())


# --- the fan-out, in process ------------------------------------------------------------------


class Collect:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def on_connect(self, info: StreamInfo) -> None:
        self.events.append(("connect", info))

    def on_packet(self, packet: IngestPacket) -> None:
        self.events.append(("packet", bytes(packet.packet)))

    def on_disconnect(self, reason: str) -> None:
        self.events.append(("disconnect", reason))


class Broken(Collect):
    def on_packet(self, packet: IngestPacket) -> None:
        raise RuntimeError("consumer bug")


def _annexb_packets(path: Path, n: int) -> tuple[StreamInfo, list[IngestPacket]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        bsf = av.BitStreamFilterContext("h264_mp4toannexb", s)
        extradata = s.codec_context.extradata
        info = StreamInfo("h264", s.width, s.height, Fraction(s.time_base), extradata, 25.0)
        out = []
        for pkt in c.demux(s):
            for p in bsf.filter(pkt):
                out.append(IngestPacket(p, p.dts, p.pts, p.is_keyframe, 0, p.size))
            if len(out) >= n:
                break
    return info, out


def _strip_parameter_sets(p: IngestPacket) -> IngestPacket:
    data = bytes(p.packet)
    keep = b"".join(b"\x00\x00\x00\x01" + data[a:b] for a, b in iter_nals(data)
                    if nal_type("h264", data[a]) not in (7, 8))  # fmt: skip
    q = av.Packet(keep)
    return IngestPacket(q, p.dts, p.pts, p.key, p.recv_us, q.size)


def test_fanout_late_subscriber_parameter_sets_and_broken_consumer(camera_clips) -> None:
    info, packets = _annexb_packets(camera_clips[0][0], 30)
    assert packets[0].key and parameter_sets("h264", bytes(packets[0].packet))
    fanout = Fanout()
    sink = fanout.sink("cam", "main")
    sink.on_packet(packets[0])  # before on_connect, nobody listening: nothing happens
    sink.on_connect(info)
    late, broken = Collect(), Broken()
    unsubscribe = fanout.subscribe("cam", "main", late)
    fanout.subscribe("cam", "main", broken)
    assert late.events == [("connect", info)]  # at once, before any packet
    stripped = [_strip_parameter_sets(p) if p.key else p for p in packets]
    assert not parameter_sets("h264", bytes(stripped[0].packet))
    for p in stripped:
        sink.on_packet(p)
    got = [e[1] for e in late.events[1:]]
    assert len(got) == len(packets)
    # every key frame got its parameter sets back (from the extradata); the rest untouched
    for data, p, q in zip(got, packets, stripped, strict=True):
        want = parameter_sets("h264", bytes(p.packet))
        assert parameter_sets("h264", data) == want if p.key else data == bytes(q.packet)
    assert sum(p.key for p in packets) >= 2
    assert fanout.stats("cam", "main").consumer_errors == 1  # and broken was unsubscribed
    # decodable from that first key frame on
    codec = av.CodecContext.create("h264", "r")
    frames = [f for d in got for f in codec.decode(av.Packet(d))]
    assert frames and read_frame_number(frames[0].to_ndarray(format="gray")) == 0
    unsubscribe()
    sink.on_disconnect("stopped")
    assert late.events[-1][0] == "packet"
    assert fanout.info("cam", "main") is None
