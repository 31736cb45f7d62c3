"""The catalog rows kept next to the media in the bucket, one small JSON object each, so that
``archive restore`` rebuilds a catalog from the bucket alone. Keys, relative to the prefix:

- ``recordings/<camera>/<stream>/Y/M/D/<start_us>.mp4``: the segment, as recorded
- the same key + ``.json``: its ``SegmentManifest`` (times, codec, fragment index, SHA-256)
- ``catalog/cameras/<camera>.json``: ``CameraManifest``
- ``catalog/server.json``: ``ServerManifest`` (the recorder's id and export-signing public key)
- ``catalog/events/<id>.json`` and ``.jpg``: ``EventManifest`` and the event's snapshot
- ``metadata/tracks/<camera>/<YYYYMMDDHH>.parquet`` and ``metadata/motion/<camera>/
  <YYYYMMDDHH>.motion``: the hourly track and motion files, once their hour is over
"""

from __future__ import annotations

import msgspec

VERSION = 1
CAMERAS = "catalog/cameras/"
EVENTS = "catalog/events/"
SERVER = "catalog/server.json"
RECORDINGS = "recordings/"
METADATA = "metadata/"
HOURLY = (("tracks", ".parquet"), ("motion", ".motion"))  # under metadata/


class SegmentManifest(msgspec.Struct, forbid_unknown_fields=True):
    version: int
    segment_id: int
    camera_id: str
    stream: str
    start_us: int
    end_us: int
    media_duration_us: int
    size: int  # bytes of the media object
    frames: int
    codec: str
    width: int
    height: int
    fragment_index: bytes  # server.protocol.fragindex encoding (base64 in JSON)
    sha256: str


class StreamManifest(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    url: str  # credentials removed
    record: bool


class CameraManifest(msgspec.Struct, forbid_unknown_fields=True):
    version: int
    id: str
    name: str
    enabled: bool
    retention_days: float | None
    archive_mode: str | None
    streams: list[StreamManifest]
    archive_days: float | None = None  # the camera's own; None: the [archive] default


class ServerManifest(msgspec.Struct, forbid_unknown_fields=True):
    """Who recorded: a restore keeps the id, and checks a signing key it is given against the
    public key (the private key never goes to the bucket: whoever reads the bucket must not be
    able to sign exports)."""

    version: int
    server_id: str
    signing_public_key: bytes  # raw Ed25519 (base64 in JSON)


class EventManifest(msgspec.Struct, forbid_unknown_fields=True):
    version: int
    id: int
    camera_id: str
    kind: str
    label: str
    score: float
    start_us: int
    end_us: int | None
    track_id: int | None
    zone_id: str | None
    direction: str | None
    box: str | None  # JSON text, as in the catalog
    path: str  # JSON text, as in the catalog
    snapshot: bool  # a .jpg of the same name is next to it


def encode(obj: msgspec.Struct) -> bytes:
    return msgspec.json.encode(obj)


def manifest_key(media_key: str) -> str:
    return media_key + ".json"
