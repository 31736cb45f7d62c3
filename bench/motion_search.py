#!/usr/bin/env python3
"""Area motion search: ``MotionStore.search`` over hourly grid files against an in-memory scan.

Builds D days (30; 3 with ``--quick``) of motion grids for one camera at 5 analysed frames/s,
about 30 % of them with motion (episodes of 2-60 s, a blob of cells drifting across the
32x18 grid), written through ``MotionStore.append``. The data directory is kept between runs
with ``--data DIR`` (generation takes a few minutes for 30 days). Then it times searches for a
small region (2x2 cells) and a large one (most of the frame) over the last hour, day and the
whole span, each repeated ``--repeat`` times (median and first run reported; files are in the
page cache, as they are after recording). The reference is a plain numpy scan of the same
records held in memory (timestamps sorted, ``searchsorted`` for the window, ``(grids & mask)
.any(axis=1)``, the same merge); both must return the same ranges.

    python bench/motion_search.py [--quick] [--days 30] [--data DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/motion_search.py` from a checkout

import numpy as np  # noqa: E402

from server.analytics.motionstore import HOUR_US, MotionStore, region_mask  # noqa: E402

CAMERA = "bench"
FPS = 5
FRAME_US = 1_000_000 // FPS
COLS, ROWS = 32, 18
MOTION_SHARE = 0.30
T0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000
RESULTS = ROOT / "bench" / "results"
REGIONS = {
    "small (2x2 cells)": (0.40, 0.40, 0.46, 0.51),
    "large (80% of frame)": (0.10, 0.10, 0.90, 0.90),
}
WINDOWS_H = {"1 h": 1, "1 day": 24}


@dataclass
class Row:
    region: str
    window: str
    ranges: int
    store_first_ms: float
    store_median_ms: float
    reference_median_ms: float
    ratio: float  # store median / reference median


def generate(root: Path, days: int, seed: int = 1) -> int:
    """Write ``days`` of synthetic motion through MotionStore; returns the records stored."""
    rng = np.random.default_rng(seed)
    store = MotionStore(root, COLS, ROWS, flush_interval_s=None)
    total_frames = days * 24 * 3600 * FPS
    mean_episode = 31 * FPS  # frames; episodes last 2-60 s
    mean_gap = int(mean_episode * (1 - MOTION_SHARE) / MOTION_SHARE)
    frame = 0
    stored = 0
    rows_idx = np.arange(ROWS)[None, :, None]
    cols_idx = np.arange(COLS)[None, None, :]
    while frame < total_frames:
        frame += int(rng.exponential(mean_gap))
        n = min(int(rng.integers(2 * FPS, 60 * FPS + 1)), total_frames - frame)
        if n <= 0:
            break
        w, h = rng.integers(2, 9), rng.integers(2, 7)
        x0, y0 = rng.uniform(0, COLS - w), rng.uniform(0, ROWS - h)
        vx, vy = rng.uniform(-0.3, 0.3), rng.uniform(-0.15, 0.15)
        i = np.arange(n)
        x = np.clip(x0 + vx * i, 0, COLS - w).astype(int)[:, None, None]
        y = np.clip(y0 + vy * i, 0, ROWS - h).astype(int)[:, None, None]
        cells = (cols_idx >= x) & (cols_idx < x + w) & (rows_idx >= y) & (rows_idx < y + h)
        grids = np.packbits(cells.reshape(n, -1), axis=1)
        for k in range(n):
            store.append(CAMERA, T0 + (frame + k) * FRAME_US, grids[k].tobytes())
        stored += n
        frame += n
        if frame // (3600 * FPS) != (frame - n) // (3600 * FPS):
            store.flush()
    store.close()
    return stored


def load_reference(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every record of the camera in memory: sorted timestamps and (N, 72) grids."""
    dtype = np.dtype([("ts_us", "<i8"), ("grid", "u1", (COLS * ROWS // 8,))])
    parts = [
        np.fromfile(p, dtype, offset=16)
        for p in sorted((root / CAMERA).glob("*.motion"))  # names sort by time
    ]
    records = np.concatenate(parts)
    return np.ascontiguousarray(records["ts_us"]), np.ascontiguousarray(records["grid"])


def reference_search(
    ts: np.ndarray, grids: np.ndarray, start_us: int, end_us: int, mask: np.ndarray, gap_us: int
) -> list[tuple[int, int]]:
    a, b = np.searchsorted(ts, [start_us, end_us])
    hit = (grids[a:b] & mask).any(axis=1)
    hits = ts[a:b][hit]
    if hits.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(hits) > gap_us)
    firsts = np.concatenate(([0], breaks + 1))
    lasts = np.concatenate((breaks, [hits.size - 1]))
    return [(int(hits[i]), int(hits[j]) + 1) for i, j in zip(firsts, lasts, strict=True)]


def timed(fn, repeat: int) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t) * 1000)
    return times, result


def dir_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def machine() -> dict[str, object]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "git_commit": commit,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 days, 3 repeats (about a minute)")
    parser.add_argument("--days", type=int, help="days of data (default 30; 3 with --quick)")
    parser.add_argument("--data", type=Path, help="data directory kept between runs")
    parser.add_argument("--repeat", type=int, help="runs per search (default 7; 3 with --quick)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    days = args.days or (3 if args.quick else 30)
    repeat = args.repeat or (3 if args.quick else 7)
    temp = None
    if args.data is None:
        temp = Path(tempfile.mkdtemp(prefix="vigia-motion-bench-"))
        data = temp
    else:
        data = args.data
    try:
        return run(data, days, repeat, args.json, args.quick)
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def run(data: Path, days: int, repeat: int, json_out: Path | None, quick: bool) -> int:
    params = {"days": days, "fps": FPS, "motion_share": MOTION_SHARE, "seed": 1, "format": 1}
    marker = data / "bench-params.json"
    gen_s = None
    if marker.exists() and json.loads(marker.read_text()) == params:
        print(f"reusing {days} days of motion grids in {data}")
    else:
        if data.exists():
            shutil.rmtree(data)
        print(f"writing {days} days of motion grids to {data} ...", flush=True)
        t = time.perf_counter()
        generate(data, days)
        gen_s = time.perf_counter() - t
        marker.write_text(json.dumps(params))
    size = dir_bytes(data / CAMERA)
    ts, grids = load_reference(data)
    share = ts.size / (days * 24 * 3600 * FPS)
    print(
        f"{ts.size:,} records ({share:.0%} of frames), {size / 1e6:.0f} MB in "
        f"{len(list((data / CAMERA).glob('*.motion')))} hour files"
        + (f"; generated in {gen_s:.0f} s" if gen_s else "")
    )
    store = MotionStore(data, COLS, ROWS, flush_interval_s=None)
    end_us = T0 + days * 24 * HOUR_US
    windows = dict(WINDOWS_H)
    windows[f"{days} days"] = days * 24
    rows: list[Row] = []
    for region_name, region in REGIONS.items():
        mask = np.frombuffer(region_mask(region, COLS, ROWS), np.uint8)
        for window_name, hours in windows.items():
            start_us = end_us - hours * HOUR_US
            s_times, s_result = timed(
                lambda s=start_us, r=region: store.search(CAMERA, s, end_us, r), repeat
            )
            r_times, r_result = timed(
                lambda s=start_us, m=mask: reference_search(ts, grids, s, end_us, m, 1_000_000),
                repeat,
            )
            if s_result != r_result:
                print(f"MISMATCH for {region_name}, {window_name}", file=sys.stderr)
                return 1
            s_med, r_med = statistics.median(s_times), statistics.median(r_times)
            rows.append(
                Row(
                    region_name, window_name, len(s_result), s_times[0], s_med, r_med, s_med / r_med
                )
            )
    store.close()
    print()
    print(
        f"{'region':22} {'window':8} {'ranges':>7} {'store 1st':>10} {'store p50':>10} "
        f"{'numpy p50':>10} {'ratio':>6}"
    )
    for r in rows:
        print(
            f"{r.region:22} {r.window:8} {r.ranges:7d} {r.store_first_ms:8.1f}ms "
            f"{r.store_median_ms:8.1f}ms {r.reference_median_ms:8.1f}ms {r.ratio:6.2f}"
        )
    worst = max(r.store_median_ms for r in rows if r.window == f"{days} days")
    print(f"\nslowest {days}-day search: {worst:.0f} ms (goal for 30 days: < 1000 ms)")
    out = json_out
    if out is None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = RESULTS / f"motion-search-{stamp}{'-quick' if quick else ''}.json"
    out.write_text(
        json.dumps(
            {
                "params": params,
                "records": int(ts.size),
                "bytes": size,
                "generate_s": gen_s,
                "repeat": repeat,
                "rows": [asdict(r) for r in rows],
                "machine": machine(),
            },
            indent=2,
        )
    )
    print(f"figures written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
