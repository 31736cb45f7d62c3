#!/usr/bin/env python3
"""Playback seek latency of the workstation engine over loopback HTTP.

An archive of 1080p25 H.264 (4 Mbit/s CBR, key frame every 2 s) is recorded offline with the
recorder's own segmenter and served by a real ``vigia-server``; the playback engine
(``app.playback``) then seeks to random instants: time to the first image (the fragment's key
frame, or the exact frame when that is the key frame) and to the exact frame (range fetch of
init + fragment, in-memory demux, decode from the key frame). Reference in the same run: PyAV
seeking in the same segment files on local disk (``container.seek`` + decode to the frame), the
floor that any HTTP client sits on. Goal: p95 <= 50 ms first image, <= 150 ms exact frame.

    python bench/client_seek.py [--quick] [--seeks N] [--threads N] [--json OUT]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/client_seek.py` from a checkout

import av  # noqa: E402

from app.api import ApiClient  # noqa: E402
from app.loop import AsyncRunner  # noqa: E402
from app.playback import PlaybackEngine, Presented, SegmentFetcher  # noqa: E402
from server.catalog import Catalog  # noqa: E402
from server.datadir import DataDir  # noqa: E402
from server.protocol.fragindex import decode_fragment_index  # noqa: E402
from server.recording.packets import IngestPacket, StreamInfo  # noqa: E402
from server.recording.segmenter import RecordingSettings, SegmentWriter  # noqa: E402
from server.service import PORTS_FILE  # noqa: E402
from server.sim.clips import ClipSpec, make_clip  # noqa: E402

S = 1_000_000
PASSWORD = "bench-password-1"
RESULTS = ROOT / "bench" / "results"


def _packets(clip: Path) -> tuple[StreamInfo, list[tuple[bytes, int, int, bool, int]]]:
    with av.open(str(clip)) as c:
        s = c.streams.video[0]
        bsf = av.BitStreamFilterContext("h264_mp4toannexb", s)
        raw = [(bytes(q), q.pts, q.dts, q.is_keyframe, q.duration)
               for p in c.demux(s) if p.dts is not None for q in bsf.filter(p)]  # fmt: skip
        info = StreamInfo("h264", s.codec_context.width, s.codec_context.height, s.time_base,
                          None, float(s.average_rate))  # fmt: skip
    return info, raw


def record_archive(data: DataDir, clip: Path, seconds: int) -> tuple[int, int]:
    """``seconds`` of the looped clip, received 'live' up to now; returns (start, end)."""
    catalog = Catalog(data.catalog)
    now = time.time_ns() // 1000
    catalog.upsert_camera("cam", "cam", {"main": ("rtsp://127.0.0.1:1/none", True)}, now_us=now)
    rec = SegmentWriter(catalog, data.root, "cam", "main", RecordingSettings())
    info, raw = _packets(clip)
    rec.on_connect(info)
    tb = info.time_base
    span = raw[-1][2] + raw[-1][4] - raw[0][2]
    start = now - seconds * S - 10 * S
    n = 0
    loops = 0
    while True:
        for payload, pts, dts, key, _ in raw:
            d = dts + loops * span - raw[0][2]
            media_us = int(d * tb * S)
            if media_us >= seconds * S and key:
                rec.close()
                catalog.close()
                return start, start + media_us
            pkt = av.Packet(payload)
            pkt.pts, pkt.dts, pkt.time_base = pts + loops * span, dts + loops * span, tb
            pkt.is_keyframe = key
            rec.on_packet(IngestPacket(pkt, pkt.dts, pkt.pts, key, start + media_us, len(payload)))
            n += 1
        loops += 1


def _api_port(data: DataDir, proc: subprocess.Popen) -> int | None:
    """The API port a recorder started with port 0 took (``run/ports.json``), once it listens."""
    try:
        ports = json.loads((data.root / PORTS_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return ports["api"] if ports.get("pid") == proc.pid else None


def pct(values: list[float], p: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, round(p / 100 * (len(v) - 1)))]


def bench_engine(base: str, instants: list[int], threads: int) -> dict:
    runner = AsyncRunner("bench-seek").start()
    try:

        async def login() -> ApiClient:
            api = ApiClient(base)
            await api.login("admin", PASSWORD)
            return api

        api = runner.call(login(), 10)
        first_ms, exact_ms = [], []
        with PlaybackEngine(SegmentFetcher(runner, api, "cam"), decode_threads=threads) as eng:
            got_first = threading.Event()
            t0 = [0.0]

            def on_frame(p: Presented) -> None:
                if not got_first.is_set():
                    first_ms.append((time.perf_counter() - t0[0]) * 1000)
                    got_first.set()

            eng.on_frame.connect(on_frame)
            eng.seek(instants[0]).result(30)  # warm-up: connection, first init
            first_ms.clear()
            for t in instants[1:]:
                got_first.clear()
                t0[0] = time.perf_counter()
                frame = eng.seek(t).result(30)
                exact_ms.append((time.perf_counter() - t0[0]) * 1000)
                assert frame is not None and frame.pts_us <= t
        runner.call(api.close(), 5)
    finally:
        runner.stop()
    return {"first_ms": first_ms, "exact_ms": exact_ms}


def bench_reference(data: DataDir, instants: list[int]) -> list[float]:
    """PyAV on the local files, no HTTP and no engine: read init + the fragment holding the
    instant from disk (its offset from the fragment index), decode to the exact frame."""
    catalog = Catalog(data.catalog)
    segs = catalog.segments()
    catalog.close()
    out = []
    for t in instants[1:]:
        seg = next(s for s in segs if s.start_us <= t < s.end_us)
        t0 = time.perf_counter()
        init, frags = decode_fragment_index(seg.fragment_index, seg.start_us)
        frag = next(f for f in frags if f.start_us <= t < f.end_us)
        with open(data.root / seg.path, "rb") as fh:
            head = fh.read(init)
            fh.seek(frag.offset)
            body = fh.read(frag.bytes)
        with av.open(io.BytesIO(head + body), format="mp4") as c:
            vs = c.streams.video[0]
            base = None
            for f in c.decode(vs):
                base = f.pts if base is None else base
                if frag.start_us + int((f.pts - base) * vs.time_base * S) + 40_000 > t:
                    break  # the last frame with wall time <= t
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a 2-minute archive, 40 seeks")
    ap.add_argument("--seeks", type=int, default=None)
    ap.add_argument("--seconds", type=int, default=None, help="archive length")
    ap.add_argument("--threads", type=int, default=0, help="decoder frame threads (0: FFmpeg's)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    seeks = args.seeks or (40 if args.quick else 200)
    seconds = args.seconds or (120 if args.quick else 600)
    clips = RESULTS / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    spec = ClipSpec(1920, 1080, fps=25, seconds=8, gop=50, bitrate=4_000_000, label="seek bench")
    clip = make_clip(clips / "seek-1080p-gop2-4M.mp4", spec)
    with tempfile.TemporaryDirectory(prefix="vigia-seek-") as tmp:
        data = DataDir(Path(tmp) / "data")
        data.create()
        start, end = record_archive(data, clip, seconds)
        cfg = Path(tmp) / "vigia.toml"
        cfg.write_text(
            '[server]\nlisten = "127.0.0.1:0"\ndiscovery = false\n'
            "[nats]\nenabled = false\n[storage]\nmin_free_bytes = 0\n"
        )
        env = {**os.environ, "VIGIA_ADMIN_PASSWORD": PASSWORD}
        log = (Path(tmp) / "server.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "--data-dir", str(data.root), "--config", str(cfg)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while (port := _api_port(data, proc)) is None:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("vigia-server did not come up")
                time.sleep(0.1)
            base = f"http://127.0.0.1:{port}"
            rng = random.Random(1)
            instants = [rng.randrange(start, end - S) for _ in range(seeks + 1)]
            eng = bench_engine(base, instants, args.threads)
            ref = bench_reference(data, instants)
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()
    rows = {
        "first image (engine, HTTP)": eng["first_ms"],
        "exact frame (engine, HTTP)": eng["exact_ms"],
        "exact frame (PyAV, local file)": ref,
    }
    print(f"seek latency, 1080p25 2 s GOP 4 Mbit/s, {seeks} random seeks in {seconds} s")
    print(f"{'':34} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    figures = {}
    for name, v in rows.items():
        figures[name] = {"p50_ms": round(pct(v, 50), 1), "p95_ms": round(pct(v, 95), 1),
                         "max_ms": round(max(v), 1), "n": len(v)}  # fmt: skip
        f = figures[name]
        print(f"{name:34} {f['p50_ms']:8.1f} {f['p95_ms']:8.1f} {f['max_ms']:8.1f}")
    ratio = statistics.median(eng["exact_ms"]) / statistics.median(ref)
    print(f"exact frame p50, engine over local PyAV: {ratio:.2f}x")
    goals = {
        "first_p95_ok": figures["first image (engine, HTTP)"]["p95_ms"] <= 50,
        "exact_p95_ok": figures["exact frame (engine, HTTP)"]["p95_ms"] <= 150,
    }
    print(f"goals (p95 first <= 50 ms, exact <= 150 ms): {goals}")
    if args.json:
        args.json.write_text(json.dumps({
            "bench": "client_seek", "quick": args.quick, "seeks": seeks, "seconds": seconds,
            "threads": args.threads, "figures": figures, "ratio_exact_p50": round(ratio, 2),
            "goals": goals,
        }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
