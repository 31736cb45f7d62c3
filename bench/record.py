#!/usr/bin/env python3
"""Recording benchmark: ``vigia-server`` against one ``ffmpeg -c copy`` process per camera.

For each camera count N, N simulated 1080p25 H.264 cameras (~4 Mbit/s CBR, GStreamer RTSP
server on 127.0.0.1) are recorded first by one ``vigia-server`` process and then by N
``ffmpeg -rtsp_transport tcp -i URL -c copy -f segment -segment_time 60`` processes (what
Frigate runs), or the other way round (the order alternates with N, see ``--help``). Over the
same steady window of S seconds each gets: CPU seconds (user + system) per camera-minute, peak
RSS (sampled every 0.5 s; ffmpeg summed over its processes), the recorded bit rate, and after a
clean stop the packets lost (expected from the recorded media timeline minus recorded). The
figures are printed as a table and written as JSON. See bench/README.md for the method.

    python bench/record.py [--quick] [--cameras 1,8,32] [--seconds 60] [--json OUT]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/record.py` from a checkout

import av  # noqa: E402
import psutil  # noqa: E402

from server.analytics.models import DEFAULT_MODEL_NAME, default_model  # noqa: E402
from server.catalog import Catalog  # noqa: E402
from server.sim.clips import ClipSpec, make_clip  # noqa: E402
from server.sim.rtsp_cameras import RtspCameraHost, gst_available  # noqa: E402

FPS = 25
BITRATE = 4_000_000
SCENES = 4  # distinct clips, shared round-robin by the cameras
SAMPLE_S = 0.5
PSS_EVERY = 4  # PSS (smaps) is dearer to read than RSS: every 4th sample
START_TIMEOUT_S = 90.0
SETTLE_S = 2.0  # after every stream records, before the window: connection set-up is not counted
RESULTS = ROOT / "bench" / "results"
MB = 1024 * 1024


@dataclass
class ToolRun:
    """One tool recording N cameras: what the window measured and what the files hold."""

    tool: str
    cameras: int
    window_s: float = 0.0
    start_s: float = 0.0  # launch until every camera records
    cpu_s: float = 0.0  # user + system over the window, all processes of the tool
    cpu_s_per_camera_minute: float = 0.0
    cpu_total_s: float = 0.0  # whole life, start-up included
    peak_rss_mb: float = 0.0  # max over window samples of the (summed) RSS
    peak_pss_mb: float = 0.0  # same with PSS: shared library pages counted once
    hwm_rss_mb: float = 0.0  # kernel's lifetime peak (VmHWM), summed
    window_mbit_per_camera: float = 0.0  # bytes written to disk during the window
    recorded_frames: int = 0
    expected_frames: int = 0
    lost_packets: int = 0  # sum over streams of max(0, expected - recorded)
    lost_per_camera: list[int] = field(default_factory=list)
    files: int = 0
    stop_s: float = 0.0  # signal until every process exited
    exit_codes: list[int | None] = field(default_factory=list)
    log_problems: list[str] = field(default_factory=list)
    camera_cpu_s: float = 0.0  # the simulated cameras' CPU over the same window
    bench_cpu_s: float = 0.0  # this script's own sampling over the window
    system_busy_pct: float = 0.0  # all cores, over the window
    other_cpu_s: float = 0.0  # busy CPU time no process of the benchmark accounts for
    system_cpu_s: dict[str, float] = field(default_factory=dict)  # per mode, all cores
    loadavg: tuple[float, float, float] = (0.0, 0.0, 0.0)  # at the end of the window
    error: str | None = None


class Children:
    """Every process this script starts, so that any exit path can kill them all."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        # Parent-death signal: even a SIGKILLed benchmark leaves no recorder running.
        self.prefix = ["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv") else []

    def popen(
        self, cmd: list[str], log: Path, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [*self.prefix, *cmd],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal Ctrl-C reaches us only; we stop them
                cwd=cwd,
                env=env,
            )
        self.procs.append(proc)
        return proc

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        self.procs.clear()


# --- cameras ------------------------------------------------------------------------------


def make_clips(directory: Path) -> list[Path]:
    """1080p25 4 Mbit/s CBR main-stream clips (cached: ~5 s each the first time)."""
    clips = []
    for scene in range(1, SCENES + 1):
        spec = ClipSpec(
            1920, 1080, fps=FPS, seconds=20, bitrate=BITRATE, label=f"Bench {scene}", scene=scene
        )
        clips.append(make_clip(directory / f"bench-1080p25-4mbit-s{scene}.mp4", spec))
    return clips


def start_cameras(clips: list[Path], count: int) -> list[RtspCameraHost]:
    """``count`` camera processes serving only ``main``: a sub feeder would cost CPU for nothing."""
    hosts = [
        RtspCameraHost({"main": clips[i % len(clips)]}, name=f"camera{i + 1}") for i in range(count)
    ]
    try:
        for h in hosts:
            h.launch()
        for h in hosts:
            h.wait_ready(60)
    except BaseException:
        stop_cameras(hosts)
        raise
    return hosts


def stop_cameras(hosts: list[RtspCameraHost]) -> None:
    for h in hosts:
        proc = h._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for h in hosts:
        h.stop()


def camera_pids(hosts: list[RtspCameraHost]) -> list[int]:
    return [h._proc.pid for h in hosts if h._proc is not None]


# --- measurement --------------------------------------------------------------------------


def _cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _hwm_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total / MB


def dir_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(dirpath, name)).st_size
    return total


def measure_window(
    run: ToolRun, pids: list[int], cams: list[int], out_dir: Path, seconds: float
) -> None:
    """CPU deltas, RSS/PSS peaks and bytes written over ``seconds``; fills ``run``."""
    procs = [psutil.Process(pid) for pid in pids]
    cam_procs = [psutil.Process(pid) for pid in cams]
    self_ru = resource.getrusage(resource.RUSAGE_SELF)
    sys0, cam0, cpu0, bytes0 = psutil.cpu_times(), _cpu(cam_procs), _cpu(procs), dir_bytes(out_dir)
    t0 = time.monotonic()
    peak_rss = peak_pss = 0
    n = 0
    while True:
        rss = pss = 0
        for p in procs:
            try:
                if n % PSS_EVERY == 0:
                    info = p.memory_full_info()
                    pss += info.pss
                else:
                    info = p.memory_info()
                rss += info.rss
            except psutil.NoSuchProcess:
                run.error = run.error or f"{run.tool} process {p.pid} exited during the window"
        peak_rss = max(peak_rss, rss)
        peak_pss = max(peak_pss, pss)
        n += 1
        left = t0 + seconds - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(SAMPLE_S - (time.monotonic() - t0) % SAMPLE_S, left))
    elapsed = time.monotonic() - t0
    cpu1, cam1, bytes1, sys1 = _cpu(procs), _cpu(cam_procs), dir_bytes(out_dir), psutil.cpu_times()
    self_ru1 = resource.getrusage(resource.RUSAGE_SELF)
    busy0 = sys0.user + sys0.system + sys0.nice + sys0.irq + sys0.softirq + sys0.steal
    busy1 = sys1.user + sys1.system + sys1.nice + sys1.irq + sys1.softirq + sys1.steal
    total = sum(sys1) - sum(sys0)
    run.window_s = elapsed
    run.cpu_s = cpu1 - cpu0
    run.cpu_s_per_camera_minute = run.cpu_s / run.cameras / (elapsed / 60)
    run.peak_rss_mb = peak_rss / MB
    run.peak_pss_mb = peak_pss / MB
    run.window_mbit_per_camera = (bytes1 - bytes0) * 8 / elapsed / run.cameras / 1e6
    run.camera_cpu_s = cam1 - cam0
    run.bench_cpu_s = (self_ru1.ru_utime + self_ru1.ru_stime) - (
        self_ru.ru_utime + self_ru.ru_stime
    )
    run.system_busy_pct = 100 * (busy1 - busy0) / total if total > 0 else 0.0
    run.other_cpu_s = max(0.0, (busy1 - busy0) - run.cpu_s - run.camera_cpu_s - run.bench_cpu_s)
    run.system_cpu_s = {
        k: round(getattr(sys1, k) - getattr(sys0, k), 2)
        for k in ("user", "system", "iowait", "irq", "softirq", "steal")
    }
    run.loadavg = os.getloadavg()


def wait_until(predicate, timeout: float, what: str, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"{what}: a process exited with {dead[0].returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


# --- vigia-server -------------------------------------------------------------------------


def vigia_config(urls: list[str], defaults: bool = False) -> str:
    """Recording only, like the ffmpeg reference: live distribution over NATS and analytics
    are off (pinned here, whatever the defaults become). ``defaults``: the shipped settings
    (live and analytics on), only the listeners on free ports."""
    lines = ["[recording]", "segment_seconds = 60", "[storage]", "min_free_bytes = 0"]
    if defaults:
        lines += ["[server]", 'listen = "127.0.0.1:0"', "discovery = false"]
        lines += ["[nats]", 'listen = "127.0.0.1:0"']
    else:
        lines += ["[nats]", "enabled = false", "[analytics]", "enabled = false"]
    for i, url in enumerate(urls, start=1):
        lines += ["[[cameras]]", f'id = "cam{i:02d}"', f'name = "Camera {i}"', f'main = "{url}"']
    return "\n".join(lines) + "\n"


def _streams_recording(db: Path, count: int) -> bool:
    """True once every stream has a segment with a complete fragment (frames > 0)."""
    if not db.exists():
        return False
    try:
        conn = sqlite3.connect(db, timeout=5)
        try:
            rows = conn.execute(
                "SELECT count(DISTINCT stream_id) FROM segments WHERE frames > 0"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return bool(rows) and rows[0] >= count


def vigia_losses(db: Path, run: ToolRun) -> None:
    """Frames recorded against frames the recorded media timeline holds, per stream.

    A segment's media duration is the sum of its sample durations, i.e. of the DTS steps the
    camera stamped; a packet lost anywhere on the way leaves a step of two frames, so the
    duration says how many frames there should be.
    """
    catalog = Catalog(db)
    try:
        streams = {s.id: s.camera_id for s in catalog.streams()}
        per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for seg in catalog.segments():
            acc = per[streams[seg.stream_id]]
            acc[0] += seg.frames
            acc[1] += seg.media_duration_us
            run.files += 1
    finally:
        catalog.close()
    _losses(run, {cam: (f, round(us * FPS / 1e6)) for cam, (f, us) in sorted(per.items())})


def _losses(run: ToolRun, per_camera: dict[str, tuple[int, int]]) -> None:
    """Fill the loss figures from (recorded, expected) frames per camera."""
    run.lost_per_camera = []
    for frames, expected in per_camera.values():
        run.recorded_frames += frames
        run.expected_frames += expected
        run.lost_per_camera.append(expected - frames)
    missing = run.cameras - len(per_camera)
    run.lost_per_camera += [0] * max(0, missing)
    run.lost_packets = sum(max(0, x) for x in run.lost_per_camera)
    if missing > 0:
        run.error = run.error or f"{missing} cameras recorded nothing"


def run_vigia(
    children: Children,
    urls: list[str],
    cams: list[int],
    seconds: float,
    work: Path,
    defaults: bool = False,
):
    run = ToolRun("defaults" if defaults else "vigia", len(urls))
    data = work / "vigia-data"
    cfg = work / "vigia.toml"
    cfg.write_text(vigia_config(urls, defaults))
    if defaults:  # the detector converted beforehand, as on a recorder past its first start
        (data / "models").mkdir(parents=True)
        shutil.copy(default_model(RESULTS / "models"), data / "models" / DEFAULT_MODEL_NAME)
    log = work / "vigia.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "server", "--data-dir", str(data), "--config", str(cfg)]
    t_start = time.monotonic()
    proc = children.popen([*cmd, "--log-level", "INFO"], log, cwd=ROOT, env=env)
    try:
        wait_until(
            lambda: _streams_recording(data / "catalog.db", len(urls)),
            START_TIMEOUT_S,
            f"vigia-server to record {len(urls)} streams",
            [proc],
        )
        run.start_s = time.monotonic() - t_start
        time.sleep(SETTLE_S)
        measure_window(run, [proc.pid], cams, data / "recordings", seconds)
        run.hwm_rss_mb = _hwm_mb([proc.pid])
        run.cpu_total_s = _cpu([psutil.Process(proc.pid)])
        t_stop = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # clean stop: every open segment is closed
        run.exit_codes = [proc.wait(60)]
        run.stop_s = time.monotonic() - t_stop
    except subprocess.TimeoutExpired:
        run.error = "vigia-server did not stop within 60 s of SIGTERM"
        proc.kill()
        proc.wait()
    except (RuntimeError, TimeoutError) as exc:
        run.error = str(exc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    run.log_problems = [
        line
        for line in log.read_text(errors="replace").splitlines()
        if " WARNING " in line or " ERROR " in line or "Traceback" in line
    ][:20]
    if (data / "catalog.db").exists():
        vigia_losses(data / "catalog.db", run)
    return run


# --- ffmpeg -------------------------------------------------------------------------------


def ffmpeg_cmd(url: str, out_dir: Path) -> list[str]:
    return [
        "ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url,
        "-c", "copy", "-f", "segment", "-segment_time", "60", "-reset_timestamps", "1",
        str(out_dir / "%05d.mp4"),
    ]  # fmt: skip


def _ffmpeg_writing(dirs: list[Path]) -> bool:
    """True once every ffmpeg has written media (its first file is past the header)."""
    return all(dir_bytes(d) > 64 * 1024 for d in dirs)


def ffprobe_count(path: Path) -> tuple[int, float]:
    """(video packets, video duration in seconds) of one output file."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
         "-show_entries", "stream=nb_read_packets,duration:format=duration", "-of", "json",
         str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"ffprobe {path}: {out.stderr.strip()[-300:]}")
    info = json.loads(out.stdout)
    stream = info["streams"][0]
    duration = stream.get("duration") or info.get("format", {}).get("duration") or 0
    return int(stream.get("nb_read_packets", 0)), float(duration)


def run_ffmpeg(children: Children, urls: list[str], cams: list[int], seconds: float, work: Path):
    run = ToolRun("ffmpeg", len(urls))
    root = work / "ffmpeg"
    dirs = [root / f"cam{i:02d}" for i in range(1, len(urls) + 1)]
    procs = []
    t_start = time.monotonic()
    for url, d in zip(urls, dirs, strict=True):
        d.mkdir(parents=True)
        procs.append(children.popen(ffmpeg_cmd(url, d), d / "ffmpeg.log"))
    try:
        wait_until(
            lambda: _ffmpeg_writing(dirs), START_TIMEOUT_S, f"{len(urls)} ffmpeg to write", procs
        )
        run.start_s = time.monotonic() - t_start
        time.sleep(SETTLE_S)
        pids = [p.pid for p in procs]
        measure_window(run, pids, cams, root, seconds)
        run.hwm_rss_mb = _hwm_mb(pids)
        run.cpu_total_s = _cpu([psutil.Process(pid) for pid in pids])
        t_stop = time.monotonic()
        for p in procs:
            p.send_signal(signal.SIGINT)  # ffmpeg finishes the file (moov) and exits
        deadline = time.monotonic() + 30
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                run.error = run.error or "an ffmpeg did not stop within 30 s of SIGINT"
        run.stop_s = time.monotonic() - t_stop
        run.exit_codes = [p.returncode for p in procs]
    except (RuntimeError, TimeoutError) as exc:
        run.error = str(exc)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    per: dict[str, tuple[int, int]] = {}
    for d in dirs:
        frames = expected = 0
        for i, f in enumerate(sorted(d.glob("*.mp4"))):
            try:
                n, s = ffprobe_count(f)
            except (RuntimeError, ValueError, KeyError, IndexError) as exc:
                run.log_problems.append(str(exc))
                continue
            frames += n
            # The first RTSP packet (the key frame) arrives without a timestamp; ffmpeg keeps it
            # and stamps it one tick before the second, so the first file holds one packet more
            # than its timeline (durations include the last packet's).
            expected += round(s * FPS) + (1 if i == 0 else 0)
            run.files += 1
        if frames:
            per[d.name] = (frames, expected)
        log = d / "ffmpeg.log"
        lines = [x for x in log.read_text(errors="replace").splitlines() if x.strip()]
        run.log_problems += [f"{d.name}: {x}" for x in lines[:5]]
    _losses(run, per)
    return run


# --- report -------------------------------------------------------------------------------


def machine() -> dict[str, object]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=False)
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "pyav": av.__version__,
        "pyav_ffmpeg": {k: ".".join(map(str, v)) for k, v in av.library_versions.items()},
        "ffmpeg": (ffmpeg.stdout.splitlines() or ["?"])[0],
        "psutil": psutil.__version__,
    }


def git_state() -> dict[str, object]:
    """The commit measured, and which recorder files differed from it (uncommitted work)."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        return out.stdout if out.returncode == 0 else ""

    changed = [line[3:] for line in git("status", "--porcelain", "--", "server").splitlines()]
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip() or None,
        "server_changes": changed,
    }


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'N':>3} | {'vigia CPU':>9} | {'ffmpeg CPU':>10} | {'ratio':>5} | "
        f"{'vigia RSS':>9} | {'ffmpeg RSS':>10} | {'RSS':>5} | {'lost vigia/ffmpeg':>17}"
    )
    unit = (
        f"{'':>3} | {'s/cam-min':>9} | {'s/cam-min':>10} | {'':>5} | "
        f"{'peak MB':>9} | {'sum MB':>10} | {'ratio':>5} | {'packets':>17}"
    )
    lines = [head, unit, "-" * len(head)]
    for r in rows:
        v, f = r["vigia"], r["ffmpeg"]
        lost = f"{v['lost_packets']} / {f['lost_packets']}"
        lines.append(
            f"{r['cameras']:>3} | {v['cpu_s_per_camera_minute']:>9.2f} | "
            f"{f['cpu_s_per_camera_minute']:>10.2f} | {_fmt(r['cpu_ratio']):>5} | "
            f"{v['peak_rss_mb']:>9.1f} | {f['peak_rss_mb']:>10.1f} | "
            f"{_fmt(r['rss_ratio']):>5} | {lost:>17}"
        )
    for r in rows:
        if "defaults" in r:
            d = r["defaults"]
            lines.append(
                f"{r['cameras']:>3} | defaults (live + analytics on): "
                f"{d['cpu_s_per_camera_minute']:.2f} CPU s/cam-min, "
                f"{_fmt(r.get('defaults_cpu_ratio'))}x ffmpeg, busy {d['system_busy_pct']:.0f} %, "
                f"lost {d['lost_packets']}"
            )
    lines += ["", "Context (same windows):"]
    lines.append(
        f"{'N':>3} {'tool':<8} | {'window':>6} | {'Mbit/s/cam':>10} | {'PSS MB':>7} | "
        f"{'cams CPU%':>9} | {'busy%':>5} | {'load1':>5} | {'start s':>7} | {'stop s':>6} | note"
    )
    for r in rows:
        for tool in r["order"]:
            x = r[tool]
            cams = 100 * x["camera_cpu_s"] / x["window_s"] if x["window_s"] else 0
            note = x["error"] or ("; ".join(x["log_problems"][:1]) if x["log_problems"] else "")
            lines.append(
                f"{r['cameras']:>3} {tool:<8} | {x['window_s']:>5.0f}s | "
                f"{x['window_mbit_per_camera']:>10.2f} | {x['peak_pss_mb']:>7.1f} | "
                f"{cams:>9.0f} | {x['system_busy_pct']:>5.0f} | {x['loadavg'][0]:>5.2f} | "
                f"{x['start_s']:>7.1f} | {x['stop_s']:>6.1f} | {note[:70]}"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="CPU and memory of vigia-server against one `ffmpeg -c copy` per camera, "
        "recording N simulated 1080p25 ~4 Mbit/s H.264 RTSP cameras. The order alternates: "
        "vigia first for the 1st, 3rd... camera count, ffmpeg first for the 2nd, 4th...",
    )
    p.add_argument("--quick", action="store_true", help="N = 1, 8 with 12 s windows (~1 min)")
    p.add_argument("--cameras", help="camera counts, e.g. 1,8,32,64 (default 1,8,32)")
    p.add_argument("--seconds", type=float, help="measurement window (default 60, quick 20)")
    p.add_argument("--json", type=Path, help="JSON output (default bench/results/record-*.json)")
    p.add_argument("--keep", action="store_true", help="keep the recordings (printed path)")
    p.add_argument(
        "--no-defaults",
        action="store_true",
        help="skip the third run, vigia with its default settings (live and analytics on)",
    )
    args = p.parse_args(argv)
    counts = args.cameras or ("1,8" if args.quick else "1,8,32")
    try:
        args.counts = [int(x) for x in counts.split(",") if x.strip()]
    except ValueError:
        p.error(f"--cameras: not a list of integers: {counts!r}")
    if not args.counts or min(args.counts) < 1:
        p.error("--cameras: positive integers")
    args.seconds = args.seconds or (12.0 if args.quick else 60.0)
    if args.seconds < 5:
        p.error("--seconds: at least 5")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    args.json = args.json or RESULTS / f"record-{stamp}{'-quick' if args.quick else ''}.json"
    return args


def _sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(143)  # unwinds through the finally blocks, which stop every child


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("ffmpeg", "ffprobe"):
        if not shutil.which(tool):
            print(f"record.py: {tool} not found (apt-get install ffmpeg)", file=sys.stderr)
            return 2
    reason = gst_available()
    if reason:
        print(f"record.py: {reason}; run packaging/system-deps.sh bench", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _sigterm)
    print(f"clips: {RESULTS / 'clips'} (made once, ~5 s each)", flush=True)
    clips = make_clips(RESULTS / "clips")
    info = machine()
    print(
        f"machine: {info['cpu_count']} CPUs ({info['cpu_model']}), Python {info['python']}, "
        f"PyAV {info['pyav']}; {info['ffmpeg']}",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    report: dict[str, object] = {
        "benchmark": "record",
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": info,
        "git": git_state(),
        "settings": {
            "cameras": args.counts,
            "window_s": args.seconds,
            "settle_s": SETTLE_S,
            "sample_s": SAMPLE_S,
            "fps": FPS,
            "bitrate": BITRATE,
            "segment_s": 60,
            "clip_mbit": round(clips[0].stat().st_size * 8 / 20 / 1e6, 3),
            "ffmpeg_cmd": " ".join(ffmpeg_cmd("URL", Path("DIR"))),
        },
        "results": rows,
    }
    children = Children()
    hosts: list[RtspCameraHost] = []
    work = Path(tempfile.mkdtemp(prefix="vigia-bench-"))
    try:
        for index, n in enumerate(args.counts):
            print(f"\n== {n} cameras: starting camera processes", flush=True)
            hosts = start_cameras(clips, n)
            urls = [h.url("main") for h in hosts]
            cams = camera_pids(hosts)
            order = ["vigia", "ffmpeg"] if index % 2 == 0 else ["ffmpeg", "vigia"]
            if not args.no_defaults:
                order.append("defaults")  # vigia as shipped (live, analytics), beside the pair
            row: dict[str, Any] = {"cameras": n, "order": order}
            for tool in order:
                time.sleep(1)  # let the previous tool's sessions end at the cameras
                run_dir = work / f"n{n}-{tool}"
                run_dir.mkdir()
                print(f"   {tool}: recording {n} cameras, {args.seconds:.0f} s window", flush=True)
                if tool == "ffmpeg":
                    run = run_ffmpeg(children, urls, cams, args.seconds, run_dir)
                else:
                    run = run_vigia(children, urls, cams, args.seconds, run_dir, tool == "defaults")
                row[tool] = asdict(run)
                print(
                    f"   {tool}: {run.cpu_s_per_camera_minute:.2f} CPU s/cam-min, "
                    f"peak RSS {run.peak_rss_mb:.1f} MB, lost {run.lost_packets}"
                    + (f"  ERROR: {run.error}" if run.error else ""),
                    flush=True,
                )
                if not args.keep:
                    shutil.rmtree(run_dir, ignore_errors=True)
            stop_cameras(hosts)
            hosts = []
            v, f = row["vigia"], row["ffmpeg"]
            row["cpu_ratio"] = _ratio(v["cpu_s_per_camera_minute"], f["cpu_s_per_camera_minute"])
            row["rss_ratio"] = _ratio(v["peak_rss_mb"], f["peak_rss_mb"])
            if "defaults" in row:
                d = row["defaults"]
                row["defaults_cpu_ratio"] = _ratio(
                    d["cpu_s_per_camera_minute"], f["cpu_s_per_camera_minute"]
                )
            rows.append(row)
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2) + "\n")  # partial results survive
    finally:
        children.kill_all()
        stop_cameras(hosts)
        if args.keep:
            print(f"recordings kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(rows))
    goal = next((r for r in rows if r["cameras"] == 32), None)
    if goal is not None and goal["cpu_ratio"] is not None:
        verdict = "met" if goal["cpu_ratio"] <= 1.0 else "NOT met"
        print(f"\ngoal (CPU ratio <= 1.0 at 32 cameras): {verdict} ({goal['cpu_ratio']:.2f})")
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
