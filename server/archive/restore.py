"""``vigia-server archive restore --data-dir NEW``: a catalog rebuilt from the bucket alone.

Cameras come from ``catalog/cameras/``, segments (times, codec, fragment index, SHA-256) from
the manifests next to the media, events from ``catalog/events/``. Media and snapshots are
downloaded into the new data directory and checked against their SHA-256 before their rows are
written, so the restored recorder plays and exports them like its own. Segment and event ids
are kept; each stream gets one run spanning its restored segments."""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server.archive import manifest as m
from server.archive.ledger import insert_archived
from server.archive.store import ArchiveStore, StoreError
from server.catalog import Catalog, SegmentRow
from server.datadir import DataDir
from server.export.manifest import KEY_PATH, key_id, public_raw
from server.protocol.files import makedirs_durable, write_atomic
from server.protocol.timeutil import now_us

log = logging.getLogger(__name__)


class RestoreError(RuntimeError):
    pass


@dataclass
class RestoreSummary:
    cameras: int = 0
    segments: int = 0
    bytes: int = 0
    events: int = 0
    metadata_files: int = 0  # hourly track and motion files
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        last = (
            f"restored {self.cameras} camera(s), {self.segments} segment(s) ({self.bytes} bytes),"
            f" {self.events} event(s), {self.metadata_files} track/motion file(s)"
        )
        return "\n".join([*self.problems, *self.notes, last])


def restore(store: ArchiveStore, data: DataDir, signing_key: Path | None = None) -> RestoreSummary:
    """``signing_key``: the original recorder's ``keys/export-signing.pem`` (from the
    operator's own backup; it is never in the bucket), so that the restored recorder's
    exports verify with the original's public key."""
    if data.catalog.exists():
        raise RestoreError(f"{data.catalog} exists: restore only into an empty data directory")
    key = _read_key(signing_key) if signing_key is not None else None
    server = _server_manifest(store)
    if key is not None and server is not None and public_raw(key) != server.signing_public_key:
        raise RestoreError(
            f"{signing_key} is key {key_id(public_raw(key))}, not the archived recorder's key"
            f" {key_id(server.signing_public_key)}"
        )
    data.create()
    data.lock()
    summary = RestoreSummary()
    if server is not None:
        write_atomic(data.root / "server-id", f"{server.server_id}\n".encode())
        summary.notes.append(f"recorder id {server.server_id}")
    if signing_key is not None:
        target = data.root / KEY_PATH
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copyfile(signing_key, target)
        target.chmod(0o600)
        summary.notes.append(f"exports signed with key {key_id(public_raw(key))}")  # type: ignore[arg-type]
    elif server is not None:
        summary.notes.append(
            f"exports will be signed with a new key, not the original's"
            f" {key_id(server.signing_public_key)}: give --signing-key with the original's"
            f" {KEY_PATH} to keep it"
        )
    catalog = Catalog(data.catalog)
    try:
        return _restore(store, data, catalog, summary)
    finally:
        catalog.close()


def _read_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise RestoreError(f"signing key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise RestoreError(f"{path} is not an Ed25519 private key")
    return key


def _server_manifest(store: ArchiveStore) -> m.ServerManifest | None:
    try:
        return msgspec.json.decode(store.get(m.SERVER), type=m.ServerManifest)
    except StoreError as exc:
        if exc.code == "NoSuchKey":
            return None
        raise


def _restore(
    store: ArchiveStore, data: DataDir, catalog: Catalog, summary: RestoreSummary
) -> RestoreSummary:
    now = now_us()
    for key, _size in store.list(m.CAMERAS):
        if not key.endswith(".json"):
            continue
        cam = msgspec.json.decode(store.get(key), type=m.CameraManifest)
        catalog.upsert_camera(
            cam.id, cam.name, {s.name: (s.url, s.record) for s in cam.streams},
            enabled=cam.enabled, retention_days=cam.retention_days, source="api", now_us=now,
        )  # fmt: skip
        with catalog.transaction() as c:
            c.execute(
                "UPDATE cameras SET archive_mode = ?, archive_days = ? WHERE id = ?",
                (cam.archive_mode, cam.archive_days, cam.id),
            )
        summary.cameras += 1
    manifests = [
        (k.removesuffix(".json"), msgspec.json.decode(store.get(k), type=m.SegmentManifest))
        for k, _ in store.list(m.RECORDINGS)
        if k.endswith(".mp4.json")
    ]
    manifests.sort(key=lambda ks: (ks[1].camera_id, ks[1].stream, ks[1].start_us))
    runs: dict[tuple[str, str], int] = {}
    known = {c.id for c in catalog.cameras()}
    for key, seg in manifests:
        body = store.get(key)
        if hashlib.sha256(body).hexdigest() != seg.sha256:
            summary.problems.append(f"{key}: SHA-256 differs from its manifest; not restored")
            continue
        if seg.camera_id not in known:  # its camera row never reached the bucket
            catalog.upsert_camera(seg.camera_id, seg.camera_id, {seg.stream: ("file:///dev/null",
                                  False)}, enabled=False, source="api", now_us=now)  # fmt: skip
            known.add(seg.camera_id)
        stream_id = _stream(catalog, seg.camera_id, seg.stream)
        run = runs.get((seg.camera_id, seg.stream))
        if run is None:
            run = runs[(seg.camera_id, seg.stream)] = catalog.begin_run(stream_id, seg.start_us)
        path = data.root / key
        makedirs_durable(path.parent)
        write_atomic(path, body)
        with catalog.transaction() as c:
            c.execute(
                "INSERT INTO segments (id, stream_id, run_id, start_us, end_us, media_duration_us,"
                " path, bytes, frames, codec, width, height, fragment_index, state, sha256)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'closed', ?)",
                (seg.segment_id, stream_id, run, seg.start_us, seg.end_us, seg.media_duration_us,
                 key, seg.size, seg.frames, seg.codec, seg.width, seg.height,
                 seg.fragment_index, seg.sha256),
            )  # fmt: skip
            row = SegmentRow(
                seg.segment_id, stream_id, run, seg.start_us, seg.end_us, seg.media_duration_us,
                key, seg.size, seg.frames, seg.codec, seg.width, seg.height, seg.fragment_index,
                "closed", seg.sha256,
            )  # fmt: skip
            insert_archived(c, row, seg.camera_id, seg.stream, key, seg.sha256, now)
        summary.segments += 1
        summary.bytes += len(body)
    for (cam, stream), run in runs.items():
        last = catalog.last_end_us(_stream(catalog, cam, stream))
        catalog.end_run(run, last or 0, "restored from archive")
    for key, _size in store.list(m.METADATA):
        target = data.root / key
        makedirs_durable(target.parent)
        write_atomic(target, store.get(key))
        summary.metadata_files += 1
    for key, _size in store.list(m.EVENTS):
        if not key.endswith(".json"):
            continue
        ev = msgspec.json.decode(store.get(key), type=m.EventManifest)
        snapshot = None
        if ev.snapshot:
            snapshot = f"snapshots/restored/{ev.id}.jpg"
            target = data.root / snapshot
            makedirs_durable(target.parent)
            write_atomic(target, store.get(key.removesuffix(".json") + ".jpg"))
        with catalog.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO events (id, camera_id, kind, label, score, start_us,"
                " end_us, track_id, zone_id, direction, box, path, snapshot)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (ev.id, ev.camera_id, ev.kind, ev.label, ev.score, ev.start_us, ev.end_us,
                 ev.track_id, ev.zone_id, ev.direction, ev.box, ev.path, snapshot),
            )  # fmt: skip
            c.execute(
                "INSERT OR REPLACE INTO archive_events (event_id, archived_us, camera_id, end_us)"
                " VALUES (?, ?, ?, ?)",
                (ev.id, now, ev.camera_id, ev.end_us if ev.end_us is not None else ev.start_us),
            )
        summary.events += 1
    return summary


def _stream(catalog: Catalog, camera_id: str, stream: str) -> int:
    try:
        return catalog.stream_id(camera_id, stream)
    except Exception:
        catalog.upsert_camera(camera_id, camera_id, {stream: ("file:///dev/null", False)},
                              enabled=False, source="api", now_us=now_us())  # fmt: skip
        return catalog.stream_id(camera_id, stream)
