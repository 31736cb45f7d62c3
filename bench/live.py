#!/usr/bin/env python3
"""Live-view and timeline benchmark: packet-to-decoded-frame latency over NATS, and the
latency of the timeline query (``GET /api/v1/recordings``) on a large catalog.

Live: one ``vigia-server`` process records N simulated RTSP cameras and publishes every packet
on ``vigia.<sid>.live.<camera>.<stream>`` through its embedded nats-server. A subscriber
process (nats-py, wildcard ``vigia.<sid>.live.>``) decodes every packet with PyAV (one
``CodecContext`` per subject, on a pool of decoder threads: PyAV releases the GIL while
decoding) and takes, per frame, ``decoded = time.time_ns()//1000 - header.dts_us``, the header's
wall-clock DTS being the recorder's estimate of when the packet arrived (see bench/README.md).
Scenario (a): N main streams, 1080p25 4 Mbit/s. (b): M 640x360 sub streams, 512 kbit/s.

Timeline: a catalog of C cameras x D days of 60 s segments is generated, the recorder's HTTP
API is served on it (without cameras), and the timeline query is timed over HTTP for random
cameras and windows (1 h, 1 day, 30 days at a 2000-pixel resolution), and directly on SQLite.

    python bench/live.py [--quick] [--main 16] [--sub 64] [--seconds 60] [--days 30] [--json OUT]

Internal modes, started by the script itself: ``--subscriber CONFIG.json`` (the subscriber
process) and ``--api DATA_DIR PORT_FILE`` (the API server on the generated catalog).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import queue
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/live.py` from a checkout

import av  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402

from bench.record import Children, git_state, machine, stop_cameras  # noqa: E402
from server.catalog import Catalog  # noqa: E402
from server.datadir import DataDir  # noqa: E402
from server.protocol.fragindex import encode_fragment_index  # noqa: E402
from server.protocol.live import decode_live_packet, live_subject, live_wildcard  # noqa: E402
from server.recording.segmenter import segment_relpath  # noqa: E402
from server.service import PORTS_FILE  # noqa: E402
from server.sim.clips import demo_clips  # noqa: E402
from server.sim.rtsp_cameras import RtspCameraHost, gst_available  # noqa: E402

FPS = 25
SCENES = 4  # distinct (main, sub) clip pairs, shared round-robin by the cameras
START_TIMEOUT_S = 120.0
SETTLE_S = 3.0  # after every subject decodes, before the window
PROBE_INTERVAL_S = 0.1
SEGMENT_US = 60_000_000
TIMELINE_PX = 2000
RESULTS = ROOT / "bench" / "results"
US = 1_000_000
DAY_US = 86_400 * US


def now_us() -> int:
    """Wall time in µs, as the recorder's ``SystemClock`` reads it (same machine)."""
    return time.time_ns() // 1000


def bound_ports(data: DataDir, proc: subprocess.Popen) -> dict | None:
    """The ports a recorder started with port 0 took (``run/ports.json``), once it listens."""
    try:
        ports = json.loads((data.root / PORTS_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return ports if ports.get("pid") == proc.pid else None


def stats(values: list[int] | list[float], scale: float = 1e-3) -> dict[str, float | int]:
    """p50/p90/p99/max/mean of µs values, in ms (``scale``), and the count."""
    if not values:
        return {"n": 0}
    a = np.asarray(values, dtype=np.float64) * scale
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        "n": len(values),
        "p50": round(float(p50), 3),
        "p90": round(float(p90), 3),
        "p99": round(float(p99), 3),
        "max": round(float(a.max()), 3),
        "mean": round(float(a.mean()), 3),
    }


# --- the subscriber (its own process: `live.py --subscriber CONFIG.json`) ------------------


@dataclass
class _Subject:
    """One subject's decoder and bookkeeping, owned by exactly one decoder thread."""

    ctx: Any = None
    keyed: bool = False  # a key frame was seen: decoding can start
    pending: dict[int, tuple[int, int, bool]] = field(default_factory=dict)  # pts -> meta
    last_seq: int | None = None
    decoded: int = 0


class LiveSubscriber:
    """Receives live packets on the event loop and decodes them on ``threads`` threads."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.expected = set(cfg["subjects"])
        self.threads = int(cfg["threads"])
        self.queues: list[queue.SimpleQueue[tuple | None]] = [
            queue.SimpleQueue() for _ in range(self.threads)
        ]
        self.route: dict[str, int] = {}
        self.subjects: dict[str, _Subject] = {}
        self.started: set[str] = set()  # subjects that decoded a frame
        self.window: tuple[int, int] | None = None  # arrival-time window measured
        self.decoded_us: list[int] = []  # decoded - header dts
        self.arrival_us: list[int] = []  # arrival in the subscriber - header dts
        self.local_us: list[int] = []  # decoded - arrival (queue + decode)
        self.decode_call_us: list[int] = []  # the decode call itself
        self.pts_minus_dts_us: list[int] = []
        self.decoded_at: list[int] = []  # decode time of each sample (for drift)
        self.probe_us: list[int] = []
        self.received = 0  # messages with an arrival in the window
        self.received_bytes = 0
        self.seq_gaps = 0
        self.gap_flags = 0
        self.errors: list[str] = []
        self.nats_errors = 0
        self.max_backlog = 0
        self.lock = threading.Lock()

    # on the event loop
    async def on_live(self, msg: Any) -> None:
        t_arr = now_us()
        try:
            header, payload = decode_live_packet(msg.data)
        except ValueError as exc:
            self._error(f"{msg.subject}: {exc}")
            return
        idx = self.route.get(msg.subject)
        if idx is None:
            idx = self.route[msg.subject] = len(self.route) % self.threads
        self.queues[idx].put((msg.subject, header, payload, t_arr))

    async def on_probe(self, msg: Any) -> None:
        t = now_us()
        if self._in_window(t):
            self.probe_us.append(t - int(msg.data))

    def _in_window(self, t: int) -> bool:
        return self.window is not None and self.window[0] <= t < self.window[1]

    def _error(self, text: str) -> None:
        with self.lock:
            if len(self.errors) < 20:
                self.errors.append(text)

    # on a decoder thread
    def decode_loop(self, q: queue.SimpleQueue[tuple | None]) -> None:
        tb = Fraction(1, US)
        while (item := q.get()) is not None:
            subject, header, payload, t_arr = item
            st = self.subjects.get(subject)
            if st is None:
                st = self.subjects[subject] = _Subject()
            in_window = self._in_window(t_arr)
            if st.last_seq is not None and header.seq != st.last_seq + 1 and in_window:
                with self.lock:
                    self.seq_gaps += max(0, header.seq - st.last_seq - 1)
            st.last_seq = header.seq
            if in_window:
                with self.lock:
                    self.received += 1
                    self.received_bytes += len(payload) + 40
                    self.gap_flags += header.gap
            if not st.keyed:
                if not header.key:
                    continue
                st.keyed = True
                st.ctx = av.CodecContext.create(header.codec.codec_name, "r")
                st.ctx.thread_count = 1  # no frame threading: it would hold frames back
            packet = av.Packet(payload)
            packet.pts, packet.dts, packet.time_base = header.pts_us, header.dts_us, tb
            st.pending[header.pts_us] = (header.dts_us, t_arr, in_window)
            t0 = time.perf_counter_ns()
            try:
                frames = st.ctx.decode(packet)
            except av.error.FFmpegError as exc:
                self._error(f"{subject}: decode: {exc}")
                continue
            t_dec = now_us()
            call_us = (time.perf_counter_ns() - t0) // 1000
            for frame in frames:
                meta = st.pending.pop(frame.pts, None) if frame.pts is not None else None
                if meta is None:
                    continue
                dts_us, arrived, counted = meta
                st.decoded += 1
                if subject not in self.started:
                    self.started.add(subject)
                if counted:
                    with self.lock:
                        self.decoded_us.append(t_dec - dts_us)
                        self.arrival_us.append(arrived - dts_us)
                        self.local_us.append(t_dec - arrived)
                        self.decode_call_us.append(call_us)
                        self.pts_minus_dts_us.append(int(frame.pts) - dts_us)
                        self.decoded_at.append(t_dec)
            if len(st.pending) > 64:  # frames the decoder never returned
                st.pending.clear()

    async def run(self) -> dict[str, Any]:
        import nats  # only the subscriber process needs it

        cfg = self.cfg
        workers = [
            threading.Thread(target=self.decode_loop, args=(q,), name=f"decode{i}", daemon=True)
            for i, q in enumerate(self.queues)
        ]
        for w in workers:
            w.start()

        async def on_error(exc: Exception) -> None:
            self.nats_errors += 1
            self._error(f"nats: {exc!r}")

        nc = await nats.connect(
            cfg["url"],
            user=cfg["user"],
            password=cfg["password"],
            name="bench-live-subscriber",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.2,
            error_cb=on_error,
        )
        limits = {"pending_msgs_limit": 1_000_000, "pending_bytes_limit": 2**31}
        await nc.subscribe(cfg["wildcard"], cb=self.on_live, **limits)
        probe_subject = cfg["probe_subject"]
        await nc.subscribe(probe_subject, cb=self.on_probe)
        deadline = time.monotonic() + cfg["ready_timeout_s"]
        while not self.expected <= self.started:
            if time.monotonic() > deadline:
                missing = sorted(self.expected - self.started)
                raise TimeoutError(f"no decoded frame on {len(missing)} subjects: {missing[:3]}")
            await asyncio.sleep(0.1)
        await asyncio.sleep(cfg["settle_s"])
        start = now_us()
        self.window = (start, start + int(cfg["window_s"] * US))
        Path(cfg["ready_path"]).write_text(f"{start}\n")
        while now_us() < self.window[1]:
            await nc.publish(probe_subject, str(now_us()).encode())
            backlog = sum(q.qsize() for q in self.queues)
            self.max_backlog = max(self.max_backlog, backlog)
            await asyncio.sleep(PROBE_INTERVAL_S)
        backlog_end = sum(q.qsize() for q in self.queues)
        # let what arrived in the window be decoded (the drain counts in the latency)
        drain = time.monotonic() + 30
        while any(q.qsize() for q in self.queues) and time.monotonic() < drain:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        await nc.close()
        for q in self.queues:
            q.put(None)
        for w in workers:
            w.join(5)
        return self.summary(backlog_end)

    def summary(self, backlog_end: int) -> dict[str, Any]:
        window_s = (self.window[1] - self.window[0]) / US if self.window else 0.0
        with self.lock:
            decoded = len(self.decoded_us)
            fifths: list[float] = []
            floor: list[float] = []  # least arrival - dts: how far dts lags receipt at best
            if decoded and self.window:
                at = np.asarray(self.decoded_at)
                lat = np.asarray(self.decoded_us)
                arr = np.asarray(self.arrival_us)
                edges = np.linspace(self.window[0], self.window[1], 6)
                for a, b in itertools.pairwise(edges):
                    sel = (at >= a) & (at < b)
                    ok = bool(sel.any())
                    fifths.append(round(float(np.median(lat[sel])) / 1e3, 2) if ok else -1.0)
                    floor.append(round(float(arr[sel].min()) / 1e3, 2) if ok else -1.0)
            return {
                "window_s": window_s,
                "subjects": len(self.expected),
                "received": self.received,
                "received_mbit_s": round(self.received_bytes * 8 / window_s / 1e6, 2)
                if window_s
                else 0.0,
                "decoded": decoded,
                "expected_frames": round(FPS * window_s * len(self.expected)),
                "seq_gaps": self.seq_gaps,
                "gap_flags": self.gap_flags,
                "max_backlog": self.max_backlog,
                "backlog_end": backlog_end,
                "decoded_ms": stats(self.decoded_us),
                "arrival_ms": stats(self.arrival_us),
                "local_ms": stats(self.local_us),
                "decode_call_ms": stats(self.decode_call_us),
                "pts_minus_dts_ms": stats(self.pts_minus_dts_us),
                "probe_ms": stats(self.probe_us),
                "decoded_p50_by_fifth_ms": fifths,
                "arrival_min_by_fifth_ms": floor,
                "nats_errors": self.nats_errors,
                "errors": self.errors,
            }


def subscriber_main(config_path: Path) -> int:
    cfg = json.loads(config_path.read_text())
    sub = LiveSubscriber(cfg)
    try:
        result = asyncio.run(sub.run())
    except Exception as exc:  # reported to the orchestrator through the result file
        result = {"error": f"{type(exc).__name__}: {exc}"}
    Path(cfg["out_path"]).write_text(json.dumps(result, indent=1))
    return 0 if "error" not in result else 1


# --- live scenarios -----------------------------------------------------------------------


@dataclass
class Scenario:
    key: str  # 'a16', 'b64', ...: names its files in the work directory
    title: str
    cameras: int
    mount: str  # 'main' (1080p) or 'sub' (640x360) clip


def vigia_live_config(urls: list[str], nats_port: int) -> str:
    """Records and publishes every camera; the only stream of each camera is its ``main``."""
    lines = ["[server]", 'listen = "127.0.0.1:0"', "discovery = false"]
    lines += ["[nats]", f'listen = "127.0.0.1:{nats_port}"']
    lines += ["[recording]", "segment_seconds = 60", "[storage]", "min_free_bytes = 0"]
    for i, url in enumerate(urls, start=1):
        lines += ["[[cameras]]", f'id = "cam{i:02d}"', f'name = "Camera {i}"', f'main = "{url}"']
    return "\n".join(lines) + "\n"


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait(
    predicate: Callable[[], bool], timeout: float, what: str, procs: list[subprocess.Popen]
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"{what}: a process exited with status {dead[0].returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def _cpu_s(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def _busy(t: Any) -> float:
    return t.user + t.system + t.nice + t.irq + t.softirq + t.steal


def run_live(
    children: Children, sc: Scenario, clips: list[Path], seconds: float, threads: int, work: Path
) -> dict[str, Any]:
    """One scenario: cameras, recorder, subscriber; CPU per process group over the window."""
    row: dict[str, Any] = {"scenario": sc.key, "title": sc.title, "streams": sc.cameras}
    hosts = [
        RtspCameraHost({sc.mount: clips[i % len(clips)]}, name=f"camera{i + 1}")
        for i in range(sc.cameras)
    ]
    data = DataDir(work / f"{sc.key}-data")
    data.root.mkdir(parents=True)
    server = sub = None
    try:
        t0 = time.monotonic()
        for h in hosts:
            h.launch()
        for h in hosts:
            h.wait_ready(90)
        row["cameras_start_s"] = round(time.monotonic() - t0, 1)
        sid = data.server_id()
        cfg = work / f"{sc.key}.toml"
        cfg.write_text(vigia_live_config([h.url(sc.mount) for h in hosts], 0))  # any free port
        cmd = [sys.executable, "-m", "server", "--data-dir", str(data.root), "--config", str(cfg)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        log = work / f"{sc.key}-vigia.log"
        server = children.popen([*cmd, "--log-level", "INFO"], log, cwd=ROOT, env=env)
        creds_path = data.root / "nats" / "credentials.json"
        _wait(lambda: bound_ports(data, server), 60, "the recorder's ports", [server])
        nats_port = bound_ports(data, server)["nats"]  # type: ignore[index]
        _wait(lambda: creds_path.exists() and _port_open(nats_port), 60, "NATS", [server])
        creds = json.loads(creds_path.read_text())
        subjects = [live_subject(sid, f"cam{i:02d}", "main") for i in range(1, sc.cameras + 1)]
        sub_cfg = {
            "url": f"nats://127.0.0.1:{nats_port}",
            "user": creds["user"],
            "password": creds["password"],
            "wildcard": live_wildcard(sid),
            "probe_subject": f"bench.{sid}.probe",
            "subjects": subjects,
            "threads": threads,
            "settle_s": SETTLE_S,
            "window_s": seconds,
            "ready_timeout_s": START_TIMEOUT_S,
            "ready_path": str(work / f"{sc.key}.ready"),
            "out_path": str(work / f"{sc.key}.result.json"),
        }
        sub_cfg_path = work / f"{sc.key}.sub.json"
        sub_cfg_path.write_text(json.dumps(sub_cfg))
        sub = children.popen(
            [sys.executable, str(Path(__file__).resolve()), "--subscriber", str(sub_cfg_path)],
            work / f"{sc.key}-subscriber.log",
            env=env,
        )
        ready = Path(sub_cfg["ready_path"])
        _wait(ready.exists, START_TIMEOUT_S + 30, "every subject to decode", [server, sub])
        row["ready_s"] = round(time.monotonic() - t0, 1)
        groups = {
            "server": [psutil.Process(server.pid)],
            "nats": [
                p for p in psutil.Process(server.pid).children() if "nats" in p.name().lower()
            ],
            "cameras": [psutil.Process(h._proc.pid) for h in hosts if h._proc is not None],
            "subscriber": [psutil.Process(sub.pid)],
            "bench": [psutil.Process()],  # this script (camera log readers, sampling)
        }
        cpu0 = {k: _cpu_s(v) for k, v in groups.items()}
        sys0, w0 = psutil.cpu_times(), time.monotonic()
        _wait(lambda: time.monotonic() - w0 >= seconds, seconds + 5, "the window", [server, sub])
        elapsed = time.monotonic() - w0
        sys1 = psutil.cpu_times()
        row["cpu_pct_of_core"] = {
            k: round(100 * (_cpu_s(v) - cpu0[k]) / elapsed, 1) for k, v in groups.items()
        }
        total = sum(sys1) - sum(sys0)
        row["system_busy_pct"] = round(100 * (_busy(sys1) - _busy(sys0)) / total, 1)
        busy_core_pct = 100 * (_busy(sys1) - _busy(sys0)) / elapsed
        row["other_cpu_pct_of_core"] = round(
            max(0.0, busy_core_pct - sum(row["cpu_pct_of_core"].values())), 1
        )  # busy CPU no process of the benchmark accounts for: other jobs on the machine
        row["loadavg"] = os.getloadavg()
        sub.wait(seconds + 60)
        row["subscriber"] = json.loads(Path(sub_cfg["out_path"]).read_text())
    except (RuntimeError, TimeoutError, OSError, subprocess.TimeoutExpired) as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
        out = work / f"{sc.key}.result.json"
        if out.exists():
            row["subscriber"] = json.loads(out.read_text())
    finally:
        for proc in (sub, server):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        stop_cameras(hosts)
    sub_result = row.get("subscriber", {})
    if "error" in sub_result and "error" not in row:
        row["error"] = "subscriber: " + sub_result["error"]
    vlog = work / f"{sc.key}-vigia.log"
    row["log_problems"] = [
        line
        for line in (vlog.read_text(errors="replace").splitlines() if vlog.exists() else [])
        if " WARNING " in line or " ERROR " in line or "Traceback" in line
    ][:10]
    slog = work / f"{sc.key}-subscriber.log"
    if slog.exists() and slog.stat().st_size:
        row["subscriber_log"] = slog.read_text(errors="replace").splitlines()[-10:]
    row["keeps_up"] = keeps_up(sub_result)
    return row


def keeps_up(r: dict[str, Any]) -> bool:
    """Every received frame decoded, and the latency did not grow over the window."""
    if not r.get("received"):
        return False
    fifths = [x for x in r.get("decoded_p50_by_fifth_ms", []) if x >= 0]
    growth = fifths[-1] - fifths[0] if len(fifths) >= 2 else 0.0
    return r["decoded"] >= 0.99 * r["received"] and growth < 25.0 and r["backlog_end"] < 2 * FPS


# --- timeline API -------------------------------------------------------------------------

CURRENT_SQL = (
    "SELECT start_us, end_us FROM segments WHERE stream_id = ? AND start_us < ?"
    " AND end_us > ? ORDER BY start_us"
)
# Suggested: segments of a stream never overlap, so only the last one starting at or before
# the window can reach into it; bounding start_us from below turns the scan of the whole
# history before the window into an index seek.
BOUNDED_SQL = (
    "SELECT start_us, end_us FROM segments WHERE stream_id = :sid AND start_us < :end"
    " AND start_us >= coalesce((SELECT max(start_us) FROM segments WHERE stream_id = :sid"
    " AND start_us <= :start), 0) AND end_us > :start ORDER BY start_us"
)
COVER_INDEX = "CREATE INDEX bench_cover ON segments (stream_id, start_us, end_us)"


def merge(spans: list[tuple[int, int]], start: int, end: int, res: int) -> list[list[int]]:
    """The API handler's merge (server/api/app.py ``recordings``): ranges in the response."""
    ranges: list[list[int]] = []
    for a, b in spans:
        s, e = max(a, start), min(b, end)
        if ranges and s - ranges[-1][1] <= res:
            ranges[-1][1] = max(ranges[-1][1], e)
        else:
            ranges.append([s, e])
    return ranges


def generate_catalog(path: Path, cameras: int, days: int, seed: int = 1) -> dict[str, Any]:
    """``cameras`` x ``days`` of contiguous 60 s main-stream segments ending now, written in
    time order across cameras (as a recorder writes them), with about one outage (1..30 min,
    a new run after it) every other camera-day."""
    rng = random.Random(seed)
    t_gen = time.perf_counter()
    end_us = (now_us() // SEGMENT_US) * SEGMENT_US
    t0 = end_us - days * DAY_US
    n_seg = days * DAY_US // SEGMENT_US
    catalog = Catalog(path)
    try:
        ids = [f"cam{i:02d}" for i in range(1, cameras + 1)]
        for cam in ids:
            url = f"rtsp://127.0.0.1:9/{cam}"
            catalog.upsert_camera(cam, cam, {"main": (url, True)}, enabled=False, now_us=t0)
        sids = [catalog.stream_id(cam, "main") for cam in ids]
        phase = [rng.randrange(SEGMENT_US) for _ in ids]  # cameras' segments are not aligned
        outages: list[list[tuple[int, int]]] = []  # per camera, segment index ranges skipped
        for _ in ids:
            out = []
            for d in range(days):
                if rng.random() < 0.5:
                    a = d * 1440 + rng.randrange(1440)
                    out.append((a, a + rng.randint(1, 30)))
            outages.append(out)
        # runs: one per uninterrupted stretch
        run_rows, run_of = [], []  # run_of[c]: list of (first segment index, run id)
        next_run = 1
        for c, out in enumerate(outages):
            stretches, first = [], 0
            for a, b in out:
                if a > first:
                    stretches.append((first, a))
                first = max(first, b)
            stretches.append((first, n_seg))
            mine = []
            for a, b in stretches:
                s_us, e_us = t0 + a * SEGMENT_US + phase[c], t0 + b * SEGMENT_US + phase[c]
                run_rows.append((next_run, sids[c], s_us, e_us, "source lost"))
                mine.append((a, b, next_run))
                next_run += 1
            run_of.append(mine)
        with catalog.transaction() as conn:
            conn.executemany(
                "INSERT INTO runs (id, stream_id, started_us, ended_us, end_reason)"
                " VALUES (?, ?, ?, ?, ?)",
                run_rows,
            )
        frag = encode_fragment_index(880, [(500_000, 1_000_000)] * 60)  # 1 s fragments
        size = 880 + 60 * 500_000
        sql = (
            "INSERT INTO segments (stream_id, run_id, start_us, end_us, media_duration_us,"
            " path, bytes, frames, codec, width, height, fragment_index, state)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'closed')"
        )
        cursor = [0] * cameras  # index into run_of[c]
        rows = 0

        def day_rows(d: int) -> Iterator[tuple]:
            nonlocal rows
            for k in range(d * 1440, min(n_seg, (d + 1) * 1440)):
                for c in range(cameras):
                    runs = run_of[c]
                    while cursor[c] < len(runs) and runs[cursor[c]][1] <= k:
                        cursor[c] += 1
                    if cursor[c] >= len(runs) or k < runs[cursor[c]][0]:
                        continue  # outage
                    start = t0 + k * SEGMENT_US + phase[c]
                    rows += 1
                    yield (
                        sids[c], runs[cursor[c]][2], start, start + SEGMENT_US,
                        SEGMENT_US - 40, segment_relpath(ids[c], "main", start), size,
                        60 * FPS, "h264", 1920, 1080, frag,
                    )  # fmt: skip

        for d in range(days):
            with catalog.transaction() as conn:
                conn.executemany(sql, day_rows(d))
        catalog._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        catalog.close()
    return {
        "cameras": cameras,
        "days": days,
        "segments": rows,
        "runs": len(run_rows),
        "generate_s": round(time.perf_counter() - t_gen, 1),
        "db_mb": round(path.stat().st_size / 1e6, 1),
        "start_us": t0,
        "end_us": end_us,
        "stream_ids": dict(zip(ids, sids, strict=True)),
    }


def add_api_token(path: Path) -> str | None:
    """An admin token in the catalog, for a recorder whose API wants one (None: no auth)."""
    try:
        from server.auth import Tokens, Users
        from server.clock import SystemClock
    except ImportError:
        return None
    catalog = Catalog(path)
    try:
        clock = SystemClock()
        user = Users(catalog, clock).add("bench", "bench-password-0123456789", "admin")
        return Tokens(catalog, clock).issue(user)[0]
    except Exception:  # an older schema or another auth design: go without
        return None
    finally:
        catalog.close()


def api_main(data_dir: Path, port_path: Path) -> int:
    """Serve the recorder's HTTP API on ``data_dir`` with the recorder's own ``start_api``,
    but without ``open_services``: its start-up recovery would delete every generated row
    (they have no files). Nothing is recorded: every camera is disabled."""
    from server.clock import SystemClock
    from server.config import Config
    from server.recording.retention import Retention, VolumeLimits
    from server.service import Services, start_api
    from server.supervisor import IngestSupervisor

    data = DataDir(data_dir)
    lock_fd = data.lock()
    catalog = Catalog(data.catalog)
    clock = SystemClock()
    services = Services(
        data, catalog, IngestSupervisor(catalog, data, clock), Retention(
            catalog, data, VolumeLimits(None, 0), clock
        ), lock_fd, clock,
    )  # fmt: skip
    config = Config(listen="127.0.0.1:0", discovery=False)

    async def serve() -> None:
        runner, port = await start_api(config, services)
        if runner is None:
            raise SystemExit(1)
        port_path.write_text(f"{port}\n")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(serve())
    catalog.close()
    return 0


@dataclass
class Query:
    kind: str
    camera: str
    start: int
    end: int
    res: int


def make_queries(info: dict[str, Any], per_kind: int, seed: int = 2) -> list[Query]:
    """Random cameras and windows; a window is at most the catalog's history."""
    rng = random.Random(seed)
    t0, t1 = info["start_us"], info["end_us"]
    cams = list(info["stream_ids"])
    kinds = [("1h latest", 3600 * US, True), ("1h", 3600 * US, False)]
    kinds += [("1d", DAY_US, False), ("30d", 30 * DAY_US, False)]
    out = []
    for kind, length, latest in kinds:
        length = min(length, t1 - t0)
        for _ in range(per_kind):
            start = t1 - length if latest else t0 + rng.randrange(t1 - t0 - length + 1)
            out.append(Query(kind, rng.choice(cams), start, start + length, length // TIMELINE_PX))
    return out


async def time_http(port: int, queries: list[Query], token: str | None) -> list[int]:
    """µs per request, one at a time, on a kept-alive connection."""
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    out = []
    url = f"http://127.0.0.1:{port}/api/v1/recordings"
    async with aiohttp.ClientSession(headers=headers) as http:
        for q in queries[: min(20, len(queries))]:  # warm-up: connection, page cache
            async with http.get(url, params=_params(q)) as r:
                await r.read()
        for q in queries:
            t = time.perf_counter_ns()
            async with http.get(url, params=_params(q)) as r:
                body = await r.read()
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status}: {body[:200]!r}")
            out.append((time.perf_counter_ns() - t) // 1000)
    return out


def _params(q: Query) -> dict[str, str]:
    return {
        "camera": q.camera,
        "stream": "main",
        "start_us": str(q.start),
        "end_us": str(q.end),
        "resolution_us": str(q.res),
    }


def time_sqlite(path: Path, info: dict[str, Any], queries: list[Query]) -> dict[str, Any]:
    """The catalog's query alone (``Catalog.recorded_ranges``, as the handler calls it), then
    for comparison the first version's query (every segment row, merged in Python) with a lower
    bound on start_us and with a covering index."""
    catalog = Catalog(path)
    conn = sqlite3.connect(path)
    out: dict[str, Any] = {"current": [], "bounded": [], "cover": [], "bounded_cover": []}
    out |= {"merge": [], "rows": [], "ranges": []}
    mismatches = 0

    def timed(sql: str, key: str, params: dict[str, int], expect: list) -> None:
        nonlocal mismatches
        t = time.perf_counter_ns()
        got = conn.execute(sql, params).fetchall()
        out[key].append((time.perf_counter_ns() - t) // 1000)
        mismatches += got != expect

    try:
        for q in queries[:20]:  # warm-up
            catalog.recorded_ranges(info["stream_ids"][q.camera], q.start, q.end, q.res)
        spans_of = []
        for q in queries:
            sid = catalog.stream_id(q.camera, "main")
            t = time.perf_counter_ns()
            ranges = catalog.recorded_ranges(sid, q.start, q.end, q.res)
            out["current"].append((time.perf_counter_ns() - t) // 1000)
            spans = conn.execute(CURRENT_SQL, (sid, q.end, q.start)).fetchall()
            mismatches += [tuple(r) for r in merge(spans, q.start, q.end, q.res)] != ranges
            spans_of.append(spans)
            out["rows"].append(len(spans))
            t = time.perf_counter_ns()
            out["ranges"].append(len(merge(spans, q.start, q.end, q.res)))
            out["merge"].append((time.perf_counter_ns() - t) // 1000)
        out["plan"] = [r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + CURRENT_SQL, (1, 2, 1))]
        named = CURRENT_SQL.replace("stream_id = ?", "stream_id = :sid")
        named = named.replace("start_us < ?", "start_us < :end").replace("> ?", "> :start")
        params = [
            {"sid": info["stream_ids"][q.camera], "start": q.start, "end": q.end} for q in queries
        ]
        for p, spans in zip(params, spans_of, strict=True):
            timed(BOUNDED_SQL, "bounded", p, spans)
        t = time.perf_counter()
        conn.execute(COVER_INDEX)
        out["cover_index_build_s"] = round(time.perf_counter() - t, 2)
        for p, spans in zip(params, spans_of, strict=True):
            timed(named, "cover", p, spans)
            timed(BOUNDED_SQL, "bounded_cover", p, spans)
        plan = [named, BOUNDED_SQL]
        out["plans_with_cover"] = [
            [r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params[0])] for sql in plan
        ]
    finally:
        conn.close()
        catalog.close()
    out["mismatches"] = mismatches
    return out


def run_api(
    children: Children, cameras: int, days: int, per_kind: int, work: Path
) -> dict[str, Any]:
    """Generate the catalog, time the timeline query over HTTP, then on SQLite."""
    data = DataDir(work / "api-data")
    data.root.mkdir(parents=True)
    data.create()
    print(f"   generating {cameras} cameras x {days} days of 60 s segments", flush=True)
    info = generate_catalog(data.catalog, cameras, days)
    print(
        f"   {info['segments']:,} segments, {info['db_mb']:.0f} MB, in {info['generate_s']:.1f} s",
        flush=True,
    )
    token = add_api_token(data.catalog)
    port_path = work / "api.port"
    proc = children.popen(
        [sys.executable, str(Path(__file__).resolve()), "--api", str(data.root), str(port_path)],
        work / "api.log",
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    queries = make_queries(info, per_kind)
    result: dict[str, Any] = {"catalog": {k: v for k, v in info.items() if k != "stream_ids"}}
    result["auth"] = token is not None
    try:
        _wait(port_path.exists, 60, "the API server", [proc])
        port = int(port_path.read_text())
        http = asyncio.run(time_http(port, queries, token))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    sql = time_sqlite(data.catalog, info, queries)
    rows = []
    for kind in dict.fromkeys(q.kind for q in queries):
        idx = [i for i, q in enumerate(queries) if q.kind == kind]
        rows.append(
            {
                "window": kind,
                "requests": len(idx),
                "resolution_s": queries[idx[0]].res / US,
                "http_ms": stats([http[i] for i in idx]),
                "sqlite_ms": stats([sql["current"][i] for i in idx]),
                "bounded_ms": stats([sql["bounded"][i] for i in idx]),
                "merge_ms": stats([sql["merge"][i] for i in idx]),
                "cover_ms": stats([sql["cover"][i] for i in idx]),
                "bounded_cover_ms": stats([sql["bounded_cover"][i] for i in idx]),
                "segments_mean": round(float(np.mean([sql["rows"][i] for i in idx])), 1),
                "ranges_mean": round(float(np.mean([sql["ranges"][i] for i in idx])), 1),
            }
        )
    result["windows"] = rows
    result["plan"] = sql["plan"]
    result["cover_index_build_s"] = sql["cover_index_build_s"]
    result["plans_with_cover"] = sql["plans_with_cover"]
    result["variant_mismatches"] = sql["mismatches"]
    return result


# --- report -------------------------------------------------------------------------------


def _ms(s: dict[str, Any], key: str) -> str:
    return f"{s[key]:.1f}" if key in s else "n/a"


def live_table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'scenario':<26} | {'recv fps':>8} | {'lost':>4} | {'decoded':>7} | "
        f"{'p50':>6} | {'p99':>6} | {'max':>6} | {'arrive p50/p99':>14} | "
        f"{'local p50/p99':>13} | {'dec ms':>6} | {'probe p50/p99':>13} | ok"
    )
    lines = ["Live latency, header DTS (~ recorder receipt) -> frame decoded in the subscriber, ms",
             head, "-" * len(head)]  # fmt: skip
    for r in rows:
        s = r.get("subscriber", {})
        if "decoded_ms" not in s:
            lines.append(f"{r['title']:<26} | ERROR: {r.get('error', '?')}")
            continue
        d, a, loc, c, p = (s[k] for k in ("decoded_ms", "arrival_ms", "local_ms",
                                          "decode_call_ms", "probe_ms"))  # fmt: skip
        fps = s["received"] / s["window_s"] if s["window_s"] else 0
        lines.append(
            f"{r['title']:<26} | {fps:>8.0f} | {s['seq_gaps']:>4} | {s['decoded']:>7} | "
            f"{_ms(d, 'p50'):>6} | {_ms(d, 'p99'):>6} | {_ms(d, 'max'):>6} | "
            f"{_ms(a, 'p50') + ' / ' + _ms(a, 'p99'):>14} | "
            f"{_ms(loc, 'p50') + ' / ' + _ms(loc, 'p99'):>13} | {_ms(c, 'p50'):>6} | "
            f"{_ms(p, 'p50') + ' / ' + _ms(p, 'p99'):>13} | "
            f"{'yes' if r['keeps_up'] else 'NO'}"
        )
    lines += ["", "CPU over the window, % of one core; busy% is of all cores:"]
    lines.append(
        f"{'scenario':<26} | {'vigia':>5} | {'nats':>5} | {'cameras':>7} | {'subscr.':>7} | "
        f"{'other':>5} | {'busy%':>5} | {'Mbit/s':>6} | p50 by fifth of the window"
    )
    for r in rows:
        cpu, s = r.get("cpu_pct_of_core"), r.get("subscriber", {})
        if not cpu:
            continue
        lines.append(
            f"{r['title']:<26} | {cpu['server']:>5.0f} | {cpu['nats']:>5.0f} | "
            f"{cpu['cameras']:>7.0f} | {cpu['subscriber']:>7.0f} | "
            f"{r['other_cpu_pct_of_core']:>5.0f} | {r['system_busy_pct']:>5.0f}"
            f" | {s.get('received_mbit_s', 0):>6.1f} | {s.get('decoded_p50_by_fifth_ms')}"
        )
    return "\n".join(lines)


def api_table(api: dict[str, Any]) -> str:
    c = api["catalog"]
    lines = [
        f"Timeline query, {c['cameras']} cameras x {c['days']} days ({c['segments']:,} segments,"
        f" {c['db_mb']:.0f} MB catalog), ms p50 / p99",
    ]
    head = (
        f"{'window':<9} | {'req':>4} | {'HTTP':>13} | {'SQLite now':>13} | {'merge':>11} | "
        f"{'bounded':>11} | {'cover index':>11} | {'both':>11} | {'segments':>8} | ranges"
    )
    lines += [head, "-" * len(head)]
    for w in api["windows"]:
        keys = ("http_ms", "sqlite_ms", "merge_ms", "bounded_ms", "cover_ms", "bounded_cover_ms")
        cells = [_ms(w[k], "p50") + " / " + _ms(w[k], "p99") for k in keys]
        lines.append(
            f"{w['window']:<9} | {w['requests']:>4} | {cells[0]:>13} | {cells[1]:>13} | "
            f"{cells[2]:>11} | {cells[3]:>11} | {cells[4]:>11} | {cells[5]:>11} | "
            f"{w['segments_mean']:>8.0f} | {w['ranges_mean']:.1f}"
        )
    lines.append(
        "SQLite now: Catalog.recorded_ranges as the handler calls it; merge: a Python merge of "
        "every segment row (the first version);\n"
        "bounded: + start_us >= the last start <= window start; "
        "cover index: + index (stream_id, start_us, end_us),\nbuilt in "
        f"{api['cover_index_build_s']} s; both: bounded + cover. Queries whose variant results "
        f"differ: {api['variant_mismatches']}."
    )
    return "\n".join(lines)


def verdicts(report: dict[str, Any]) -> list[str]:
    out = []
    for r in report["live"]:
        d = r.get("subscriber", {}).get("decoded_ms", {})
        if "p50" in d:
            met = d["p50"] <= 50 and d["p99"] <= 150 and r["keeps_up"]
            note = "" if r["keeps_up"] else " (decoding did not keep up)"
            if r.get("requested", r["streams"]) != r["streams"]:
                note += f" (fallback: {r['requested']} requested)"
            out.append(
                f"live {r['title']}: p50 {d['p50']:.1f} ms (<= 50), p99 {d['p99']:.1f} ms "
                f"(<= 150): {'met' if met else 'NOT met'}{note}"
            )
    api = report.get("api")
    if api:
        worst = max(w["http_ms"]["p99"] for w in api["windows"])
        worst50 = max(w["http_ms"]["p50"] for w in api["windows"])
        out.append(
            f"timeline API: worst p50 {worst50:.1f} ms, worst p99 {worst:.1f} ms (<= 20): "
            f"{'met' if worst <= 20 else 'met at p50 only' if worst50 <= 20 else 'NOT met'}"
        )
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Live latency (recorder -> NATS -> decoded in a subscriber) for N 1080p "
        "main and M 640x360 sub streams, and timeline API latency on a generated catalog.",
    )
    p.add_argument("--quick", action="store_true", help="4 main, 8 sub, 10 s, 1 day (~1 min)")
    p.add_argument("--main", type=int, help="1080p cameras in scenario (a) (default 16)")
    p.add_argument("--sub", type=int, help="640x360 cameras in scenario (b) (default 64)")
    p.add_argument("--seconds", type=float, help="measurement window (default 60, quick 10)")
    p.add_argument("--days", type=int, help="days of catalog (default 30, quick 1)")
    p.add_argument("--api-cameras", type=int, default=64, help="cameras in the catalog (64)")
    p.add_argument("--requests", type=int, help="requests per window kind (default 200)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="decoder threads")
    p.add_argument("--only", choices=("live", "api"), help="run one part only")
    p.add_argument(
        "--no-fallback",
        dest="fallback",
        action="store_false",
        help="do not retry a scenario with 3/4 of the streams when decoding falls behind",
    )
    p.add_argument("--json", type=Path, help="JSON output (default bench/results/live-*.json)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (printed)")
    args = p.parse_args(argv)
    q = args.quick
    args.main = args.main if args.main is not None else (4 if q else 16)
    args.sub = args.sub if args.sub is not None else (8 if q else 64)
    args.seconds = args.seconds or (10.0 if q else 60.0)
    args.days = args.days or (1 if q else 30)
    args.requests = args.requests or (50 if q else 200)
    if min(args.main, args.sub) < 0 or args.seconds < 3 or args.days < 1:
        p.error("--main/--sub >= 0, --seconds >= 3, --days >= 1")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    args.json = args.json or RESULTS / f"live-{stamp}{'-quick' if q else ''}.json"
    return args


def _sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(143)  # unwinds through the finally blocks, which stop every child


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--subscriber"]:
        return subscriber_main(Path(argv[1]))
    if argv[:1] == ["--api"]:
        return api_main(Path(argv[1]), Path(argv[2]))
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    info = machine()
    print(
        f"machine: {info['cpu_count']} CPUs ({info['cpu_model']}), Python {info['python']}, "
        f"PyAV {info['pyav']}",
        flush=True,
    )
    report: dict[str, Any] = {
        "benchmark": "live",
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": info,
        "git": git_state(),
        "settings": {
            "main": args.main,
            "sub": args.sub,
            "window_s": args.seconds,
            "settle_s": SETTLE_S,
            "decoder_threads": args.threads,
            "days": args.days,
            "api_cameras": args.api_cameras,
            "requests_per_window": args.requests,
            "timeline_px": TIMELINE_PX,
        },
        "live": [],
    }
    children = Children()
    work = Path(tempfile.mkdtemp(prefix="vigia-bench-live-"))

    def save() -> None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")

    try:
        if args.only != "api":
            reason = gst_available()
            if reason:
                print(f"live.py: {reason}; run packaging/system-deps.sh bench", file=sys.stderr)
                return 2
            print(f"clips: {RESULTS / 'clips'} (made once)", flush=True)
            pairs = demo_clips(RESULTS / "clips", SCENES)
            kinds = [("a", "1080p main", args.main, "main", 0)]
            kinds.append(("b", "640x360 sub", args.sub, "sub", 1))
            for key, label, count, mount, which in kinds:
                n = count
                while n > 0:
                    sc = Scenario(f"{key}{n}", f"({key}) {n} x {label}", n, mount)
                    print(f"\n== {sc.title}: {args.seconds:.0f} s window", flush=True)
                    clips = [p[which] for p in pairs]
                    row = run_live(children, sc, clips, args.seconds, args.threads, work)
                    row["requested"] = count
                    report["live"].append(row)
                    d = row.get("subscriber", {}).get("decoded_ms", {})
                    print(
                        f"   p50 {d.get('p50', float('nan')):.1f} ms, p99 "
                        f"{d.get('p99', float('nan')):.1f} ms, keeps up: {row['keeps_up']}"
                        + (f"  ERROR: {row['error']}" if row.get("error") else ""),
                        flush=True,
                    )
                    save()
                    if row["keeps_up"] or row.get("error") or not args.fallback or n <= 4:
                        break
                    n = max(4, n * 3 // 4 // 4 * 4)  # fewer streams, until decoding keeps up
                    print(f"   decoding fell behind: again with {n} streams", flush=True)
        if args.only != "live":
            print(f"\n== timeline API: {args.api_cameras} cameras x {args.days} days", flush=True)
            report["api"] = run_api(children, args.api_cameras, args.days, args.requests, work)
            save()
    finally:
        children.kill_all()
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print()
    if report["live"]:
        print(live_table(report["live"]))
        print()
    if report.get("api"):
        print(api_table(report["api"]))
        print()
    report["verdicts"] = verdicts(report)
    save()
    for line in report["verdicts"]:
        print(line)
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
