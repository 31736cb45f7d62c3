"""Configuration: a TOML file and command-line flags, read into typed, frozen msgspec Structs.

Each table of the file is one Struct below (``ConfigFile`` lists them; ``SECTIONS`` maps table
names to them, for the generated configuration reference). The file is decoded strictly: a
string where a number belongs, ``"false"`` for a boolean, a value out of its range or an unknown
key is refused at start with one line naming the file, the table and the key, instead of failing
later on an ingest thread.

Cameras listed in the file are written into the catalog at start (``source = 'config'``);
cameras added through the API live only in the catalog. The recorder always runs from the
catalog, so both kinds are handled alike and can be changed while it runs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

CAMERA_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}(?!\n)$")
LISTEN = r"^.*:[0-9]{1,5}(?!\n)$"  # HOST:PORT, also [v6]:PORT
URL = r"^[A-Za-z][A-Za-z0-9+.-]*://"
URL_OR_EMPTY = r"^(?![\s\S])|^[A-Za-z][A-Za-z0-9+.-]*://"  # empty: nothing follows ^
API_LISTEN = "127.0.0.1:8480"

_PATTERN_HINTS = {
    # (?!\n) keeps $ from matching before a trailing newline (issue 19); msgspec shows the
    # pattern with its backslashes doubled
    CAMERA_ID.pattern.replace("\\", "\\\\"): "must match ^[a-z0-9][a-z0-9_-]{0,63}$",
    LISTEN.replace("\\", "\\\\"): "must be HOST:PORT",
    URL: "must be a URL (rtsp://, file://, ...)",
    URL_OR_EMPTY.replace("\\", "\\\\"): "must be a URL (rtsp://, file://, ...) or empty",
}


class ConfigError(ValueError):
    pass


def _doc(description: str, **bounds: Any) -> Meta:
    return Meta(description=description, **bounds)


Transport = Literal["auto", "tcp", "udp", "multicast", "http"]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One table of the file: immutable, and an unknown key is an error, not ignored."""


class CameraConfig(_Section):
    """One ``[[cameras]]`` entry (also the body of a camera made through the API)."""

    id: Annotated[
        str,
        _doc("slug used in paths and NATS subjects: [a-z0-9_-], 1..64", pattern=CAMERA_ID.pattern),
    ]
    name: Annotated[str, _doc("display name")]
    main: Annotated[
        str, _doc("full-resolution stream: rtsp://, rtsps://, http(s)://, file://", pattern=URL)
    ]
    sub: Annotated[
        Annotated[str, Meta(pattern=URL_OR_EMPTY)] | None,
        _doc("small stream for walls and analytics; none or empty: the main stream serves"),
    ] = None
    record_main: Annotated[bool, _doc("record the main stream")] = True
    record_sub: Annotated[bool, _doc("record the sub stream")] = True
    retention_days: Annotated[
        Annotated[float, Meta(gt=0)] | None, _doc("days of video to keep; none: volume limits only")
    ] = None
    enabled: Annotated[bool, _doc("false: configured but neither pulled nor recorded")] = True
    transport_main: Annotated[
        Transport, _doc("RTSP transport of main; auto: TCP, then UDP (docs/design/cameras.md)")
    ] = "auto"
    transport_sub: Annotated[Transport, _doc("RTSP transport of sub")] = "auto"

    def transports(self) -> dict[str, str]:
        return {"main": self.transport_main, "sub": self.transport_sub}

    def streams(self) -> dict[str, tuple[str, bool]]:
        out = {"main": (self.main, self.record_main)}
        if self.sub:
            out["sub"] = (self.sub, self.record_sub)
        return out


class ServerSection(_Section):
    """``[server]``: the process itself."""

    data_dir: Annotated[
        str | None, _doc("recordings and catalog; none: --data-dir or the platform's default")
    ] = None
    listen: Annotated[
        str, _doc("HTTP API address HOST:PORT; port 0 picks one (logged)", pattern=LISTEN)
    ] = API_LISTEN
    name: Annotated[str, _doc("shown to workstations; empty: the host name")] = ""
    discovery: Annotated[bool, _doc("advertise on the interfaces of listen with zeroconf")] = True
    metrics_token: Annotated[
        str,
        _doc(
            "bearer token a Prometheus scrape sends for /metrics; empty: /metrics answers"
            " loopback clients only",
            max_length=256,
        ),
    ] = ""
    allowed_hosts: Annotated[
        tuple[str, ...],
        _doc(
            "Host names the web viewer answers to besides IP addresses, localhost and this"
            " machine's names (DNS rebinding)"
        ),
    ] = ()
    roles: Annotated[
        str,
        _doc(
            "'all' or a comma list of ingest, record, live, api, ai (record, live, ai need ingest)"
        ),
    ] = "all"


class RecordingConfig(_Section):
    """``[recording]``: how streams become segments."""

    segment_seconds: Annotated[
        float, _doc("rotation period, on the next key frame, staggered per stream", ge=1, le=3600)
    ] = 60.0
    max_drift_ppm: Annotated[
        int, _doc("bound of the camera clock correction", ge=0, le=100_000)
    ] = 500
    open_timeout_s: Annotated[float, _doc("time allowed to open a source", gt=0, le=300)] = 10.0
    read_timeout_s: Annotated[
        float, _doc("silence after which a source counts as lost", gt=0, le=300)
    ] = 5.0
    reconnect_max_s: Annotated[
        float, _doc("longest wait between reconnect attempts", gt=0, le=3600)
    ] = 0.5


class StorageConfig(_Section):
    """``[storage]``: volume limits enforced by retention."""

    max_bytes: Annotated[
        Annotated[int, Meta(gt=0)] | None, _doc("bytes of recordings, all cameras; none: no limit")
    ] = None
    min_free_bytes: Annotated[
        Annotated[int, Meta(ge=0)] | None,
        _doc("keep this much free on the file system; none: no floor"),
    ] = 1_000_000_000
    retention_interval_s: Annotated[float, _doc("how often retention runs", gt=0, le=86_400)] = 10.0
    reserve_bytes: Annotated[
        int, _doc("kept for the catalog; released when the volume is full", ge=0)
    ] = 16_000_000
    audit_days: Annotated[
        Annotated[float, Meta(gt=0)] | None,
        _doc("audit log entries older than this are purged; none: kept"),
    ] = 365.0
    purge_interval_s: Annotated[
        float, _doc("how often the audit log and expired tokens are purged", gt=0, le=86_400)
    ] = 3600.0
    export_days: Annotated[
        Annotated[float, Meta(gt=0)] | None,
        _doc("finished exports older than this are deleted; none: kept"),
    ] = 30.0


class NatsConfig(_Section):
    """``[nats]``: live distribution. With no ``url`` the recorder runs its own nats-server on
    ``listen``."""

    url: Annotated[
        str | None, _doc("an existing server or cluster; overrides the embedded one")
    ] = None
    listen: Annotated[
        str,
        _doc("embedded server HOST:PORT; port 0 picks one (kept across restarts)", pattern=LISTEN),
    ] = "127.0.0.1:4222"
    enabled: Annotated[bool, _doc("false: no live distribution")] = True
    cluster_listen: Annotated[
        str,
        _doc(
            "the embedded nats-server's route port HOST:PORT for the site's cluster; empty: none",
            pattern=r"^$|^.*:[0-9]{1,5}(?!\n)$",
        ),
    ] = ""
    routes: Annotated[
        tuple[Annotated[str, Meta(pattern=r"^nats(-route)?://[^\s@/]+:[0-9]{1,5}(?!\n)$")], ...],
        _doc("route URLs of the site's other recorders: nats://HOST:PORT (credentials added)"),
    ] = ()
    cluster_tls_cert: Annotated[str, _doc("PEM certificate for route TLS; empty: no TLS")] = ""
    cluster_tls_key: Annotated[str, _doc("PEM key of cluster_tls_cert")] = ""
    cluster_tls_ca: Annotated[str, _doc("PEM CA that signed the other recorders' certificates")] = (
        ""
    )


class SiteConfig(_Section):
    """``[site]``: several recorders as one site on a NATS cluster (docs/design/site.md). Without
    it a recorder is a site of its own, exactly as before."""

    name: Annotated[
        str,
        _doc(
            "the site's name: same name + same cluster = one site; empty: no site",
            pattern=r"^$|^[a-z0-9][a-z0-9_-]{0,63}(?!\n)$",
        ),
    ] = ""
    secret_file: Annotated[
        str, _doc("file holding the site's secret (else VIGIA_SITE_SECRET), the same everywhere")
    ] = ""


class AnalyticsConfig(_Section):
    """``[analytics]``: object detection for every camera unless its own settings (API) say
    otherwise."""

    enabled: Annotated[bool, _doc("run analytics (role ai)")] = True
    model: Annotated[str, _doc("ONNX file; empty: YOLOv3-tiny (COCO) converted on first start")] = (
        ""
    )
    labels: Annotated[
        str, _doc("labels file, one per line, for a model without names in its metadata")
    ] = ""
    providers: Annotated[
        tuple[str, ...], _doc("onnxruntime execution providers to try; empty: the best there is")
    ] = ()
    threads: Annotated[int, _doc("inference threads; 0: onnxruntime's choice", ge=0, le=256)] = 0
    fps: Annotated[
        float,
        _doc("analysed frames per second, for cameras without their own setting", gt=0, le=30),
    ] = 5.0
    refresh_s: Annotated[
        float,
        _doc("detect at least this often without motion (parked objects stay)", gt=0, le=3600),
    ] = 2.0
    motion_gate: Annotated[bool, _doc("detect only on frames with motion (and on refresh)")] = True
    batch: Annotated[
        int, _doc("frames of several cameras run through the detector together", ge=1, le=64)
    ] = 4
    queue: Annotated[
        int,
        _doc(
            "analysed frames waiting for the detector before new ones are dropped", ge=1, le=100_000
        ),
    ] = 16
    main_key_frames_only: Annotated[
        bool,
        _doc("a camera without a sub stream is analysed on its main stream's key frames only "
             "(nothing else decoded); false: at the analysis rate, decoding every frame"),
    ] = True  # fmt: skip
    shed_load: Annotated[
        bool,
        _doc("analyse less (half rate, key frames only, fewer key frames) while over "
             "max_cpu or max_busy, in threads of lower priority (nice 10)"),
    ] = True  # fmt: skip
    max_cpu: Annotated[
        float, _doc("analytics' own CPU, share of all cores, above which it sheds load", gt=0, le=1)
    ] = 0.4
    max_busy: Annotated[
        float,
        _doc("the machine's busy share of all cores above which analytics sheds load", gt=0, le=1),
    ] = 0.6


class WebRtcConfig(_Section):
    """``[webrtc]``: browser live view (WHEP). No STUN/TURN unless given: no third party learns of
    viewers."""

    ice_servers: Annotated[tuple[str, ...], _doc("'stun:host:port', 'turn:host:port'")] = ()
    turn_username: Annotated[str | None, _doc("user name for the TURN servers")] = None
    turn_password: Annotated[str | None, _doc("password for the TURN servers")] = None
    max_sessions: Annotated[int, _doc("WHEP viewers at once; more get 503", ge=0, le=10_000)] = 64


class SrtConfig(_Section):
    """``[srt]``: live streams out over SRT, MPEG-TS, never re-encoded (docs/design/live.md). A
    caller picks a stream with the stream id ``CAMERA/STREAM?token=TOKEN`` (an API token whose
    user has the camera's live right)."""

    listen: Annotated[
        str, _doc("HOST:PORT of the SRT listener (UDP); empty: none", pattern=r"^$|^.*:[0-9]{1,5}$")
    ] = ""
    passphrase: Annotated[
        str,
        _doc("encrypt with this passphrase (10 to 79 characters); empty: unencrypted",
             pattern=r"^$|^.{10,79}$"),
    ] = ""  # fmt: skip
    latency_ms: Annotated[
        int, _doc("SRT latency floor; a caller may ask for more (the larger wins)", ge=0, le=10_000)
    ] = 40
    max_viewers: Annotated[int, _doc("SRT callers at once; more are refused", ge=0, le=10_000)] = 64


class OnvifConfig(_Section):
    """``[onvif]``: finding ONVIF cameras, their events (docs/design/cameras.md)."""

    discovery_interfaces: Annotated[
        tuple[str, ...],
        _doc("IPv4 addresses to probe from (WS-Discovery); empty: all but loopback"),
    ] = ()
    discovery_timeout_s: Annotated[
        float, _doc("how long a discovery waits for answers", gt=0, le=10)
    ] = 1.5
    events: Annotated[
        bool,
        _doc(
            "subscribe to the events of cameras added from an ONVIF device (motion, tamper,"
            " digital inputs, their own analytics): events of kind camera"
        ),
    ] = True


class MqttConfig(_Section):
    """``[mqtt]``: the embedded nats-server's own MQTT 3.1.1 listener (docs/design/rules.md).
    Clients log in with the NATS credentials a Vigia login hands out and see their cameras."""

    listen: Annotated[
        str, _doc("HOST:PORT of the MQTT listener; empty: none", pattern=r"^$|^.*:[0-9]{1,5}$")
    ] = ""
    topic_prefix: Annotated[
        str,
        _doc("topics go under it: <prefix>/available, ...", pattern=r"^[a-z0-9_-]{1,32}$"),
    ] = "vigia"
    discovery_prefix: Annotated[
        str,
        _doc(
            "Home Assistant discovery topics go under it; empty: none",
            pattern=r"^$|^[a-z0-9_-]{1,32}$",
        ),
    ] = "homeassistant"


class SmtpConfig(_Section):
    """``[smtp]``: the mail server of e-mail actions (STARTTLS whenever it offers it)."""

    host: Annotated[str, _doc("SMTP server; empty: no e-mail")] = ""
    port: Annotated[int, _doc("SMTP port", ge=1, le=65535)] = 587
    username: Annotated[str, _doc("login; empty: none")] = ""
    password: Annotated[str, _doc("password of the login")] = ""
    sender: Annotated[str, _doc("From: address")] = "vigia@localhost"
    ca_file: Annotated[
        str, _doc("CA certificates (PEM) to trust for STARTTLS; empty: the system's")
    ] = ""
    timeout_s: Annotated[float, _doc("per message", gt=0, le=300)] = 20.0


ARCHIVE_MODES = ("all", "events", "none")


class ArchiveConfig(_Section):
    """``[archive]``: copies of closed segments, event snapshots and the catalog rows that rebuild
    them in an S3-compatible bucket (docs/design/archive.md). Keys come from the environment
    (``VIGIA_ARCHIVE_ACCESS_KEY``, ``VIGIA_ARCHIVE_SECRET_KEY``) or ``credentials_file``."""

    endpoint: Annotated[
        str, _doc("S3-compatible endpoint URL; empty: no archive", pattern=URL_OR_EMPTY)
    ] = ""
    bucket: Annotated[str, _doc("bucket, made beforehand")] = "vigia"
    prefix: Annotated[str, _doc("key prefix for this recorder, e.g. 'site-hq/'")] = ""
    mode: Annotated[
        str,
        _doc("default policy of cameras: 'all', 'events' (event and bookmark ranges) or 'none'",
             pattern="^(all|events|none)$"),
    ] = "all"  # fmt: skip
    archive_days: Annotated[
        Annotated[float, Meta(gt=0)] | None, _doc("days kept in the bucket; none: forever")
    ] = 365.0
    max_bytes_per_s: Annotated[
        int, _doc("upload bandwidth cap in bytes per second; 0: no cap", ge=0)
    ] = 0
    region: Annotated[str, _doc("region name used in request signatures")] = "us-east-1"
    credentials_file: Annotated[
        str, _doc("file with 'access_key = ...' and 'secret_key = ...' (TOML); empty: environment")
    ] = ""
    concurrency: Annotated[int, _doc("uploads at once", ge=1, le=64)] = 4
    events_pre_s: Annotated[
        float, _doc("policy 'events': video kept before an event or bookmark", ge=0, le=3600)
    ] = 10.0
    events_post_s: Annotated[
        float, _doc("policy 'events': video kept after an event or bookmark", ge=0, le=3600)
    ] = 10.0
    retry_max_s: Annotated[
        float, _doc("longest wait between tries while the store fails", gt=0, le=3600)
    ] = 60.0

    @property
    def enabled(self) -> bool:
        return bool(self.endpoint)


class ConfigFile(_Section):
    """The whole file as written: one field per table."""

    server: ServerSection = ServerSection()
    recording: RecordingConfig = RecordingConfig()
    storage: StorageConfig = StorageConfig()
    nats: NatsConfig = NatsConfig()
    analytics: AnalyticsConfig = AnalyticsConfig()
    webrtc: WebRtcConfig = WebRtcConfig()
    srt: SrtConfig = SrtConfig()
    onvif: OnvifConfig = OnvifConfig()
    mqtt: MqttConfig = MqttConfig()
    smtp: SmtpConfig = SmtpConfig()
    archive: ArchiveConfig = ArchiveConfig()
    site: SiteConfig = SiteConfig()
    cameras: tuple[CameraConfig, ...] = ()


SECTIONS: dict[str, type[msgspec.Struct]] = {
    "server": ServerSection,
    "recording": RecordingConfig,
    "storage": StorageConfig,
    "nats": NatsConfig,
    "analytics": AnalyticsConfig,
    "webrtc": WebRtcConfig,
    "srt": SrtConfig,
    "onvif": OnvifConfig,
    "mqtt": MqttConfig,
    "smtp": SmtpConfig,
    "archive": ArchiveConfig,
    "site": SiteConfig,
    "cameras": CameraConfig,
}
"""Table name -> Struct: what the configuration reference lists (``[[cameras]]`` is an array)."""

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


class Config(msgspec.Struct, frozen=True):
    """What the process runs with: the file's tables, ``[server]`` flattened, command-line flags
    applied (``msgspec.structs.replace``)."""

    data_dir: Path | None = None
    listen: str = API_LISTEN  # HTTP API; port 0 picks one (logged)
    name: str = ""  # shown to workstations; default: the host name
    discovery: bool = True  # advertise on the interfaces of ``listen`` with zeroconf
    roles: frozenset[str] = ROLES  # what this process does; others may run elsewhere
    metrics_token: str = ""  # /metrics needs it as a bearer token; empty: loopback clients only
    allowed_hosts: tuple[str, ...] = ()  # web viewer Host names beyond the machine's own
    nats: NatsConfig = NatsConfig()
    recording: RecordingConfig = RecordingConfig()
    storage: StorageConfig = StorageConfig()
    analytics: AnalyticsConfig = AnalyticsConfig()
    webrtc: WebRtcConfig = WebRtcConfig()
    srt: SrtConfig = SrtConfig()
    onvif: OnvifConfig = OnvifConfig()
    mqtt: MqttConfig = MqttConfig()
    smtp: SmtpConfig = SmtpConfig()
    archive: ArchiveConfig = ArchiveConfig()
    site: SiteConfig = SiteConfig()
    cameras: tuple[CameraConfig, ...] = ()


# --- error lines ---------------------------------------------------------------------------

_TYPE_NAMES = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "array": "a list",
    "object": "a table",
    "datetime": "a date-time",
    "date": "a date",
    "time": "a time",
}
_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _type_name(spec: str) -> str:
    """msgspec's ``int | null`` -> ``an integer`` (TOML has no null: leaving a key out is it)."""
    names = [_TYPE_NAMES.get(t, t) for t in spec.split(" | ") if t != "null"]
    return " or ".join(names) or "nothing"


def _number(text: str) -> str:
    return text[:-2] if text.endswith(".0") else text


def _explain(message: str) -> tuple[str | None, str]:
    """A msgspec error message -> (key it names, if any; what is wrong, in the file's words)."""
    if m := re.fullmatch(r"Object contains unknown field `(.+)`", message):
        return m[1], "unknown key"
    if m := re.fullmatch(r"Object missing required field `(.+)`", message):
        return m[1], "required key missing"
    if m := re.fullmatch(r"Expected `(.+)`, got `(.+)`", message):
        return None, f"expected {_type_name(m[1])}, got {_type_name(m[2])}"
    if m := re.fullmatch(r"Expected `(.+)` matching regex '(.+)'", message):
        return None, _PATTERN_HINTS.get(m[2], f"must match {m[2]}")
    if m := re.fullmatch(r"Expected `(.+)` (<=|>=|<|>) (\S+)", message):
        return None, f"must be {m[2]} {_number(m[3])}"
    if m := re.fullmatch(r"Expected `(.+)` of length (.+)", message):
        return None, f"must have length {m[2]}"
    return None, message


def _where(path: str, key: str | None, table: str) -> tuple[str, str]:
    """``$.cameras[0].id`` -> ('[[cameras]] #1', 'id'); ``$.recording`` -> ('[recording]', '').

    With ``table`` the path is inside that one table (an API body): all of it is the key."""
    parts = [name or f"[{index}]" for name, index in _PATH_PART.findall(path)]
    if key is not None:
        parts.append(key)
    if not table:
        if not parts:
            return "", ""
        head, parts = parts[0], parts[1:]
        if head == "cameras" and parts and parts[0].startswith("["):
            table = f"[[cameras]] #{int(parts[0][1:-1]) + 1}"
            parts = parts[1:]
        else:
            table = f"[{head}]"
    return table, "".join(p if p.startswith("[") else f".{p}" for p in parts).lstrip(".")


def describe(exc: msgspec.ValidationError, source: str, table: str = "") -> str:
    """One line: ``vigia.toml: [recording] segment_seconds: expected a number, got a string``."""
    message, _, at = str(exc).partition(" - at `")
    key, what = _explain(message)
    if not at and not table and what == "unknown key":
        return f"{source}: unknown section [{key}]"
    place = " ".join(p for p in _where(at.rstrip("`"), key, table) if p)
    prefix = f"{source}: " if source else ""
    return f"{prefix}{place}: {what}" if place else f"{prefix}{what}"


# --- reading -------------------------------------------------------------------------------


def parse_camera(raw: dict, where: str = "camera") -> CameraConfig:
    """A camera from a TOML table or an API body, checked like the file's (strict types)."""
    try:
        return msgspec.convert(raw, CameraConfig, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(describe(exc, "", where)) from None


def load_config(path: Path | None) -> Config:
    if path is None:
        return Config()
    source = str(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    try:
        raw = msgspec.toml.decode(text, type=ConfigFile, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(describe(exc, source)) from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    seen: dict[str, int] = {}
    for number, cam in enumerate(raw.cameras, start=1):
        if cam.id in seen:
            raise ConfigError(
                f"{source}: [[cameras]] #{number} id: {cam.id!r} is already camera "
                f"#{seen[cam.id]}'s; camera ids must be unique"
            )
        seen[cam.id] = number
    server = raw.server
    try:
        roles = parse_roles(server.roles)
    except ConfigError as exc:
        raise ConfigError(f"{source}: [server] {exc}") from None
    return Config(
        data_dir=Path(server.data_dir).expanduser() if server.data_dir else None,
        listen=server.listen,
        name=server.name,
        discovery=server.discovery,
        metrics_token=server.metrics_token,
        allowed_hosts=server.allowed_hosts,
        roles=roles,
        nats=raw.nats,
        recording=raw.recording,
        storage=raw.storage,
        analytics=raw.analytics,
        webrtc=raw.webrtc,
        srt=raw.srt,
        onvif=raw.onvif,
        mqtt=raw.mqtt,
        smtp=raw.smtp,
        archive=raw.archive,
        site=raw.site,
        cameras=raw.cameras,
    )
