"""The signed manifest of an export, and its check: one code path for recorder and workstation.

An export directory holds the video files, ``manifest.json`` (what was exported, by whom, from
which recorder, and each file's size and SHA-256), ``manifest.sig`` (an Ed25519 signature of the
manifest's exact bytes, base64) and ``server.pub`` (the signing public key, raw, base64).
The manifest is canonical JSON (sorted keys, no spaces, ASCII), so the same export always gives
the same bytes. The signature proves that the files are the ones the key's owner exported; that
the key is the recorder's is checked by comparing it with a key obtained from the recorder
itself (``trusted_public_key``: ``vigia-server verify`` reads it from the data dir, the
workstation from the recorder it exported from).

Evidence is checked by this module only, on both sides, so that a recorder and a workstation
can never disagree about whether an export is intact. Ed25519 comes from ``cryptography``, the
one third-party import of ``server.protocol`` besides msgspec (listed in ``pyproject.toml``'s
import contract); signing and key storage stay in ``server.export.manifest``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

MANIFEST_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PUBLIC_KEY = "server.pub"
SIDE_FILES = (MANIFEST, SIGNATURE, PUBLIC_KEY)


class ManifestFile(msgspec.Struct, frozen=True):
    """One exported file; camera, stream and times say what it shows (0/empty when unknown)."""

    name: str
    bytes: int
    sha256: str
    camera: str = ""
    stream: str = ""
    start_us: int = 0  # wall time of its first frame
    end_us: int = 0


class Manifest(msgspec.Struct, frozen=True):
    """What an export holds. Decoding ignores fields a later version adds (the signature still
    covers them) and refuses wrong types (``"30"`` is not a size)."""

    files: list[ManifestFile]
    cameras: list[str]  # "camera/stream"
    start_us: int
    end_us: int
    exact: bool
    format: str
    exported_by: str
    server_id: str
    created_us: int
    software: str = ""
    version: int = MANIFEST_VERSION

    def to_bytes(self) -> bytes:
        """Canonical JSON: the exact bytes that are signed."""
        return canonical_json(msgspec.to_builtins(self))

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Parse ``manifest.json``; ``msgspec.DecodeError`` (with the path) when it is not one."""
        return msgspec.json.decode(data, type=cls)


@dataclass(slots=True)
class VerifyReport:
    ok: bool
    problems: list[str] = field(default_factory=list)  # what is wrong, in words
    key_id: str = ""  # SHA-256 of the signing public key, first 16 hex digits
    trusted: bool = False  # the key matched the trusted key given (not only the enclosed one)
    manifest: Manifest | None = None


def canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def file_entry(path: Path, **info: object) -> ManifestFile:
    """Size and SHA-256 of an exported file, read back from disk (what the recipient gets)."""
    return ManifestFile(path.name, path.stat().st_size, file_sha256(path), **info)  # type: ignore[arg-type]


def read_b64(path: Path) -> bytes:
    """A base64 side file (``manifest.sig``, ``server.pub``); ``binascii.Error`` if it is not."""
    return base64.b64decode(path.read_bytes().strip(), validate=True)


def verify_export(export_dir: Path, trusted_public_key: bytes | None = None) -> VerifyReport:
    """Check an export: signature, every file's size and SHA-256, nothing missing or extra.

    Without ``trusted_public_key`` the enclosed ``server.pub`` is used, which proves only that
    the export is intact as signed (anyone can re-sign with a key of their own); the report's
    ``trusted`` says whether the signer was the trusted key.
    """
    report = VerifyReport(ok=False)
    problems = report.problems
    try:
        data = (export_dir / MANIFEST).read_bytes()
        signature = read_b64(export_dir / SIGNATURE)
        enclosed = read_b64(export_dir / PUBLIC_KEY)
    except FileNotFoundError as exc:
        problems.append(f"{Path(str(exc.filename)).name} is missing")
        return report
    except (binascii.Error, ValueError):
        problems.append(f"{SIGNATURE} or {PUBLIC_KEY} is not valid base64")
        return report
    if trusted_public_key is not None and enclosed != trusted_public_key:
        problems.append(
            f"signed by key {key_id(enclosed)}, not the trusted key {key_id(trusted_public_key)}"
        )
    signer = trusted_public_key if trusted_public_key is not None else enclosed
    report.key_id = key_id(signer)
    try:
        Ed25519PublicKey.from_public_bytes(signer).verify(signature, data)
        report.trusted = trusted_public_key is not None
    except (InvalidSignature, ValueError):
        problems.append(f"the signature does not match {MANIFEST} (edited, or another key)")
    try:
        manifest = Manifest.from_bytes(data)
    except msgspec.DecodeError as exc:
        problems.append(f"{MANIFEST} is not a valid manifest: {exc}")
        return report
    report.manifest = manifest
    if manifest.version > MANIFEST_VERSION:
        problems.append(f"manifest version {manifest.version} is newer than this program's")
    listed = set()
    for f in manifest.files:
        if f.name in SIDE_FILES or Path(f.name).name != f.name:
            problems.append(f"manifest lists a bad file name {f.name!r}")
            continue
        listed.add(f.name)
        path = export_dir / f.name
        if not path.is_file():
            problems.append(f"{f.name} is missing")
            continue
        size = path.stat().st_size
        if size != f.bytes:
            problems.append(f"{f.name} has {size} bytes, the manifest says {f.bytes}")
        elif file_sha256(path) != f.sha256:
            problems.append(f"{f.name} was modified (SHA-256 differs)")
    for extra in sorted(set(os.listdir(export_dir)) - listed - set(SIDE_FILES)):
        problems.append(f"{extra} is not part of the export")
    report.ok = not problems
    return report
