"""Analytics throughput: analysed frames per CPU second with and without motion gating, and the
pipeline's cost per detected frame over raw ``session.run`` on the same frames.

    python bench/analytics.py [--quick] [--json OUT]

Clips: vtest.avi (a busy scene: people in every frame) and a quiet scene (vtest's empty
background with one walker for 4 s of 10 s, looped), fed through the real fan-out into the
real pipeline as fast as it takes them, analysing every frame. The reference is onnxruntime's
``session.run`` alone on the same frames, letterboxed beforehand, with the same thread count.
CPU time of the whole process is measured, so decode, motion, letterbox, tracking, zones,
stores and events are all counted against the pipeline.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.analytics.detector import Detector
from server.analytics.models import default_model
from server.analytics.service import Analytics
from server.catalog import Catalog
from server.catalog.analytics import AnalyticsCatalog, AnalyticsSettings
from server.clock import SystemClock
from server.config import AnalyticsConfig
from server.live.fanout import Fanout
from server.protocol.timeutil import rescale
from server.sim.clips import transcode_to_h264
from server.sim.footage import VTEST
from tests.helpers import clip_packets, ingest_packet
from tests.test_analytics_pipeline import _walk_clip

BASE_US = 1_700_000_000_000_000


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_pipeline(clip: Path, model: Path, root: Path, gate: bool, loops: int) -> dict:
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    catalog = Catalog(root / "catalog.db")
    catalog.upsert_camera("cam", "cam", {"main": ("file:///x.mp4", True)}, now_us=1)
    AnalyticsCatalog(catalog).set_settings(AnalyticsSettings("cam", stream="main", fps=30), 1)
    fanout = Fanout()
    cfg = AnalyticsConfig(model=str(model), threads=1, motion_gate=gate, queue=100_000)
    analytics = Analytics(cfg, catalog, root, "b1b2b3b4b5b6", SystemClock(), fanout.subscribe)
    analytics.start()
    analytics.service.ready.wait()
    info, packets = clip_packets(clip, loops=loops)
    tb = info.time_base
    cam = analytics.cameras()["cam"]
    sink = fanout.sink("cam", "main")
    sink.on_connect(info)
    t0, c0 = time.perf_counter(), cpu_s()
    for data, pts, dts, key in packets:
        while cam.backlog() > 200:
            time.sleep(0.002)
        recv = BASE_US + rescale(dts * tb.numerator, 1_000_000, tb.denominator)
        sink.on_packet(ingest_packet(data, pts, dts, key, recv, tb))
    while not cam.idle():
        time.sleep(0.005)
    wall, cpu = time.perf_counter() - t0, cpu_s() - c0
    c = cam.counters
    times = sorted(analytics.service.inference_ms)
    analytics.stop()
    catalog.close()
    return {
        "analysed": c.analysed,
        "detected": c.detected,
        "dropped": c.dropped_frames + c.dropped_packets,
        "wall_s": wall,
        "cpu_s": cpu,
        "fps_per_core": c.analysed / cpu,
        "cpu_ms_per_detected": 1000 * cpu / max(1, c.detected),
        "detect_ms_p50": times[len(times) // 2] if times else 0.0,
    }


def run_raw(clip: Path, model: Path, frames: int) -> dict:
    """``session.run`` alone on letterboxed frames of the clip (prepared before timing)."""
    det = Detector(model, threads=1)
    inputs = []
    with av.open(str(clip)) as c:
        for frame in c.decode(video=0):
            inputs.append(det.prepare(frame.to_ndarray(format="rgb24")))
            if len(inputs) >= frames:
                break
    times = []
    c0 = cpu_s()
    for feed in inputs:
        t = time.perf_counter()
        det.session.run(None, feed)
        times.append((time.perf_counter() - t) * 1000)
    cpu = cpu_s() - c0
    return {
        "frames": len(inputs),
        "run_ms_p50": statistics.median(times),
        "cpu_ms_per_frame": 1000 * cpu / len(inputs),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter clips (about a minute)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vigia-bench-analytics-"))
    try:
        model = default_model(work / "models")
        seconds = 10 if args.quick else 30
        busy = transcode_to_h264(VTEST, work / "busy.mp4", max_seconds=seconds)
        quiet, _ = _walk_clip(work / "quiet.mp4", model)
        loops = 1 if args.quick else 3
        rows = []
        for name, clip, n_loops in (("busy (vtest)", busy, 1), ("quiet (1 walker)", quiet, loops)):
            raw = run_raw(clip, model, 60 if args.quick else 150)
            for gate in (False, True):
                p = run_pipeline(clip, model, work / "data", gate, n_loops)
                p.update(
                    clip=name,
                    motion_gate=gate,
                    raw_run_ms_p50=raw["run_ms_p50"],
                    raw_cpu_ms_per_frame=raw["cpu_ms_per_frame"],
                    ratio=p["cpu_ms_per_detected"] / raw["cpu_ms_per_frame"],
                )
                rows.append(p)
        head = (
            f"{'clip':18} {'gate':5} {'analysed':>8} {'detected':>8} {'fps/core':>9} "
            f"{'cpu ms/det':>10} {'raw ms':>7} {'ratio':>6} {'infer p50':>9}"
        )
        print(head)
        for r in rows:
            print(
                f"{r['clip']:18} {'on' if r['motion_gate'] else 'off':5} {r['analysed']:8d} "
                f"{r['detected']:8d} {r['fps_per_core']:9.1f} {r['cpu_ms_per_detected']:10.1f} "
                f"{r['raw_cpu_ms_per_frame']:7.1f} {r['ratio']:6.2f} {r['detect_ms_p50']:9.1f}"
            )
        print(
            "ratio = pipeline CPU per detected frame / raw session.run CPU per frame (goal <= 1.10)"
        )
        if args.json:
            args.json.write_text(json.dumps({"rows": rows}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
