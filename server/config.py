"""Configuration: a TOML file and command-line flags, read into dataclasses.

Cameras listed in the file are written into the catalog at start (``source = 'config'``);
cameras added through the API live only in the catalog. The recorder always runs from the
catalog, so both kinds are handled alike and can be changed while it runs.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

_T = TypeVar("_T")

CAMERA_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class CameraConfig:
    id: str
    name: str
    main: str
    sub: str | None = None
    record_main: bool = True
    record_sub: bool = True
    retention_days: float | None = None
    enabled: bool = True

    def streams(self) -> dict[str, tuple[str, bool]]:
        out = {"main": (self.main, self.record_main)}
        if self.sub:
            out["sub"] = (self.sub, self.record_sub)
        return out


@dataclass(frozen=True)
class RecordingConfig:
    segment_seconds: float = 60.0
    max_drift_ppm: int = 500
    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0
    reconnect_max_s: float = 0.5


@dataclass(frozen=True)
class StorageConfig:
    max_bytes: int | None = None  # whole volume (all cameras); None: no limit
    min_free_bytes: int | None = 1_000_000_000  # keep this much free on the file system
    retention_interval_s: float = 10.0
    reserve_bytes: int = 16_000_000  # kept for the catalog; released when the volume is full
    audit_days: float | None = 365.0  # audit log entries older than this are purged
    purge_interval_s: float = 3600.0  # how often the audit log and expired tokens are purged
    export_days: float | None = 30.0  # finished exports older than this are deleted


@dataclass(frozen=True)
class NatsConfig:
    """Live distribution. With no ``url`` the recorder runs its own nats-server on ``listen``."""

    url: str | None = None  # an existing server or cluster; overrides the embedded one
    listen: str = "127.0.0.1:4222"  # embedded server; port 0 picks one (kept across restarts)
    enabled: bool = True


@dataclass(frozen=True)
class AnalyticsConfig:
    """Object detection for every camera unless its own settings (API) say otherwise."""

    enabled: bool = True
    model: str = ""  # ONNX file; "": YOLOv3-tiny (COCO) converted from Darknet on first start
    labels: str = ""  # labels file, one per line, for a model without names in its metadata
    providers: tuple[str, ...] = ()  # onnxruntime execution providers to try; (): best there is
    threads: int = 0  # inference threads; 0: onnxruntime's choice
    fps: float = 5.0  # analysed frames per second, for cameras without their own setting
    refresh_s: float = 2.0  # detect at least this often without motion (parked objects stay)
    motion_gate: bool = True  # detect only on frames with motion (and on refresh)
    batch: int = 4  # frames of several cameras run through the detector together
    queue: int = 16  # analysed frames waiting for the detector before new ones are dropped


@dataclass(frozen=True)
class WebRtcConfig:
    """Browser live view (WHEP). No STUN/TURN unless given: no third party learns of viewers."""

    ice_servers: tuple[str, ...] = ()  # 'stun:host:port', 'turn:host:port'
    turn_username: str | None = None
    turn_password: str | None = None
    max_sessions: int = 64  # WHEP viewers at once; more get 503


ROLES = frozenset({"ingest", "record", "live", "api", "ai"})


def parse_roles(text: str) -> frozenset[str]:
    """``all`` or a comma list of ingest, record, live, api, ai (record, live, ai need ingest)."""
    names = {r.strip() for r in text.split(",") if r.strip()}
    if names == {"all"}:
        return ROLES
    unknown = names - ROLES
    if unknown or not names:
        raise ConfigError(
            f"roles: unknown {', '.join(sorted(unknown)) or 'empty list'}; "
            f"use 'all' or some of {', '.join(sorted(ROLES))}"
        )
    if names & {"record", "live", "ai"} and "ingest" not in names:
        raise ConfigError("roles: record, live and ai need ingest (the process pulls the cameras)")
    return frozenset(names)


@dataclass(frozen=True)
class Config:
    data_dir: Path | None = None
    listen: str = "127.0.0.1:8480"  # HTTP API; port 0 picks one (logged)
    name: str = ""  # shown to workstations; default: the host name
    discovery: bool = True  # advertise on the interfaces of ``listen`` with zeroconf
    roles: frozenset[str] = ROLES  # what this process does; others may run elsewhere
    nats: NatsConfig = field(default_factory=NatsConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    analytics: AnalyticsConfig = field(default_factory=AnalyticsConfig)
    webrtc: WebRtcConfig = field(default_factory=WebRtcConfig)
    cameras: tuple[CameraConfig, ...] = ()


def _section(cls: type[_T], raw: dict, where: str) -> _T:
    known = set(cls.__dataclass_fields__)
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    try:
        return cls(**raw)  # type: ignore[call-arg]
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def parse_camera(raw: dict, where: str = "camera") -> CameraConfig:
    cam = _section(CameraConfig, raw, where)
    if not isinstance(cam.id, str) or not CAMERA_ID.match(cam.id):
        raise ConfigError(f"{where}: id {cam.id!r} must match {CAMERA_ID.pattern}")
    if not isinstance(cam.main, str) or "://" not in cam.main:
        raise ConfigError(f"{where}: main must be a URL (rtsp://, file://, ...)")
    if cam.retention_days is not None and cam.retention_days <= 0:
        raise ConfigError(f"{where}: retention_days must be positive")
    return cam


def load_config(path: Path | None) -> Config:
    if path is None:
        return Config()
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    server = raw.pop("server", {})
    recording = _section(RecordingConfig, raw.pop("recording", {}), f"{path} [recording]")
    storage = _section(StorageConfig, raw.pop("storage", {}), f"{path} [storage]")
    nats = _section(NatsConfig, raw.pop("nats", {}), f"{path} [nats]")
    analytics_raw = raw.pop("analytics", {})
    if "providers" in analytics_raw:
        analytics_raw["providers"] = tuple(analytics_raw["providers"])
    analytics = _section(AnalyticsConfig, analytics_raw, f"{path} [analytics]")
    webrtc_raw = raw.pop("webrtc", {})
    if "ice_servers" in webrtc_raw:
        webrtc_raw["ice_servers"] = tuple(webrtc_raw["ice_servers"])
    webrtc = _section(WebRtcConfig, webrtc_raw, f"{path} [webrtc]")
    cameras = tuple(
        parse_camera(c, f"{path} [[cameras]] #{i + 1}")
        for i, c in enumerate(raw.pop("cameras", []))
    )
    if raw:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(sorted(raw))}")
    ids = [c.id for c in cameras]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: camera ids must be unique")
    data_dir = server.pop("data_dir", None)
    cfg = Config(
        data_dir=Path(data_dir).expanduser() if data_dir else None,
        listen=server.pop("listen", Config.listen),
        name=server.pop("name", ""),
        discovery=bool(server.pop("discovery", True)),
        roles=parse_roles(server.pop("roles", "all")),
        nats=nats,
        recording=recording,
        storage=storage,
        analytics=analytics,
        webrtc=webrtc,
        cameras=cameras,
    )
    if server:
        raise ConfigError(f"{path} [server]: unknown key(s) {', '.join(sorted(server))}")
    return cfg
