"""SRT live out: ingest -> decoded latency, first frame and recorder CPU for 1 and 4 callers.

    python bench/srt.py [--quick] [--viewers 1,4] [--seconds 15] [--json OUT]

A real recorder (``python -m server``) with one simulated camera: a 640x360 25 fps H.264 clip
with a burned-in frame code, looped at real-time pace by the file source, and ``[srt]`` on a
free port with its default latency (``latency_ms`` 40). Each caller is Debian's ``ffmpeg``
(libsrt) decoding the stream to raw grey frames on a pipe, as a low-latency player would
(``-fflags nobuffer -flags low_delay``, one decoder thread); the bench reads each frame's code.
The source plays frame ``i`` at ``t0 + i / 25`` (``t0`` read back from the stream status), so
latency = decode time - play time: ingest, fan-out, the gateway's muxing, SRT (its latency
window included), demuxing and decoding. Goal (the seed's): p50 <= 100 ms.

The reference is the recorder serving no caller (its CPU for ingest and recording).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/srt.py` from a checkout

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from bench.record import git_state, machine  # noqa: E402
from server.sim.clips import ClipSpec, make_clip, read_frame_number  # noqa: E402
from tests.conftest import ServerProcess, camera_toml  # noqa: E402
from tests.test_whep import (  # noqa: E402
    _get_json,
    latency_us,
    login,
    source_anchor_us,
)

W, H = 640, 360
GOAL_LATENCY_P50_MS = 100
ADMIN_PASSWORD = "bench-password-1"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class Caller:
    """One ffmpeg SRT caller decoding to grey frames; a thread reads their codes."""

    def __init__(self, url: str, anchor_us: int) -> None:
        self.anchor_us = anchor_us
        self.frames = 0
        self.first_ms: float | None = None
        self.latencies: list[float] = []
        self.measuring = False
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
             "-fflags", "nobuffer", "-flags", "low_delay", "-threads", "1",
             "-probesize", "32768", "-analyzeduration", "0",
             "-i", url, "-map", "0:v", "-fps_mode", "passthrough", "-flush_packets", "1",
             "-f", "rawvideo", "-pix_fmt", "gray", "-"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            raw = self.proc.stdout.read(W * H)
            if len(raw) < W * H:
                return
            now_us = int(time.time() * 1e6)
            if self.first_ms is None:
                self.first_ms = (time.monotonic() - self.t0) * 1000
            self.frames += 1
            if self.measuring:
                code = read_frame_number(np.frombuffer(raw, np.uint8).reshape(H, W))
                if code is not None:
                    self.latencies.append(latency_us(self.anchor_us, code, now_us) / 1000)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.thread.join(5)


def run_callers(url: str, anchor: int, n: int, seconds: float, proc: psutil.Process) -> dict:
    callers = [Caller(url, anchor) for _ in range(n)]
    try:
        deadline = time.monotonic() + 20
        while min(c.frames for c in callers) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(1.0)  # past the first key frame's catch-up
        children = [psutil.Process(c.proc.pid) for c in callers]
        gw = [p for p in proc.children() if "srt_gateway" in " ".join(p.cmdline())]

        def cpu(ps: list[psutil.Process]) -> float:
            return sum(t.user + t.system for t in (p.cpu_times() for p in ps))

        c0, g0, k0, w0 = cpu([proc]), cpu(gw), cpu(children), time.monotonic()
        counted = sum(c.frames for c in callers)
        for c in callers:
            c.measuring = True
        time.sleep(seconds)
        elapsed = time.monotonic() - w0
        rec_cpu, gw_cpu = (cpu([proc]) - c0) / elapsed, (cpu(gw) - g0) / elapsed
        client_cpu = (cpu(children) - k0) / elapsed
        fps = (sum(c.frames for c in callers) - counted) / elapsed / n
    finally:
        for c in callers:
            c.stop()
    latencies = [x for c in callers for x in c.latencies]
    firsts = [c.first_ms for c in callers if c.first_ms is not None]
    return {
        "viewers": n,
        "connected": len(firsts),
        "first_frame_ms_max": max(firsts) if firsts else float("nan"),
        "latency_ms_p50": pct(latencies, 0.5),
        "latency_ms_p90": pct(latencies, 0.9),
        "latency_ms_max": max(latencies) if latencies else float("nan"),
        "fps_per_viewer": fps,
        "recorder_cpu": rec_cpu,  # the recorder process alone
        "gateway_cpu": gw_cpu,  # its SRT gateway child
        "client_cpu": client_cpu,  # the ffmpeg callers, all together
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="5 s per caller count")
    p.add_argument("--viewers", default="1,4", help="caller counts (default 1,4)")
    p.add_argument("--seconds", type=float, default=15.0, help="measuring window per count")
    p.add_argument("--latency-ms", type=int, default=40, help="SRT latency, both ends (40)")
    p.add_argument("--json", type=Path, help="JSON output (default bench/results/srt-*.json)")
    args = p.parse_args(argv)
    seconds = 5.0 if args.quick else args.seconds
    counts = [int(x) for x in args.viewers.split(",")]
    clip = make_clip(
        ROOT / "bench" / "results" / "clips" / "webrtc-main-640x360.mp4",
        ClipSpec(640, 360, fps=25, seconds=8, label="webrtc main", bitrate=1_000_000),
    )
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.json or ROOT / "bench" / "results" / f"srt-{stamp}{'-quick' * args.quick}.json"
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="vigia-bench-srt-") as tmp:
        cfg = Path(tmp) / "vigia.toml"
        extra = f'[srt]\nlisten = "127.0.0.1:0"\nlatency_ms = {args.latency_ms}\n'
        cfg.write_text(camera_toml([("cam0", f"file://{clip}", None)], extra))
        rec = ServerProcess(Path(tmp) / "data", cfg, Path(tmp) / "server.log")
        rec.start({"VIGIA_ADMIN_PASSWORD": ADMIN_PASSWORD})
        try:
            port = rec.ports()["srt"]
            base = rec.base_url
            token = login(base, password=ADMIN_PASSWORD)
            deadline = time.monotonic() + 30
            while True:
                _, cams = _get_json(f"{base}/api/v1/cameras", token)
                if cams and cams[0]["streams"][0]["state"] == "online":
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"camera never online:\n{rec.log()}")
                time.sleep(0.1)
            assert rec.proc is not None
            proc = psutil.Process(rec.proc.pid)
            time.sleep(2)
            c0 = sum(proc.cpu_times()[:2])
            time.sleep(seconds)
            idle = (sum(proc.cpu_times()[:2]) - c0) / seconds
            anchor = source_anchor_us(base, token, "cam0")
            url = f"srt://127.0.0.1:{port}?streamid=cam0/main?token={token}"
            url += f"&latency={args.latency_ms * 1000}"
            for n in counts:
                rows.append(run_callers(url, anchor, n, seconds, proc))
                time.sleep(1.5)
        finally:
            if rec.proc is not None and rec.proc.poll() is None:
                rec.stop()
    result = {
        "bench": "srt",
        "when": stamp,
        "quick": args.quick,
        "seconds": seconds,
        "clip": "640x360 25 fps H.264 1 Mbit/s, GOP 1 s",
        "srt_latency_ms": args.latency_ms,
        "recorder_cpu_idle": idle,
        "load_average": os.getloadavg(),
        "goals": {"latency_ms_p50": GOAL_LATENCY_P50_MS},
        "rows": rows,
        "machine": machine(),
        "git": git_state(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"recorder CPU serving no caller (reference): {idle * 100:.1f} % of a core")
    print("machine load average (1, 5, 15 min): {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    print(
        f"{'callers':>7} {'first max':>9} {'lat p50':>8} {'p90':>6} {'max':>6} {'/goal':>6} "
        f"{'fps':>5} {'rec %':>6} {'gw %':>5} {'client %':>8}"
    )
    for r in rows:
        print(
            f"{r['viewers']:>7} {r['first_frame_ms_max']:>7.0f}ms {r['latency_ms_p50']:>6.0f}ms "
            f"{r['latency_ms_p90']:>6.0f} {r['latency_ms_max']:>6.0f} "
            f"{r['latency_ms_p50'] / GOAL_LATENCY_P50_MS:>6.2f} {r['fps_per_viewer']:>5.1f} "
            f"{r['recorder_cpu'] * 100:>6.1f} {r['gateway_cpu'] * 100:>5.1f} "
            f"{r['client_cpu'] * 100:>8.0f}"
        )
    print(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
