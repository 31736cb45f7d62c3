"""Signed manifest of an export, so that a copy handed to someone else can be checked later.

An export directory holds the video files, ``manifest.json`` (what was exported, by whom, from
which recorder, and each file's size and SHA-256), ``manifest.sig`` (an Ed25519 signature of the
manifest's exact bytes, base64) and ``server.pub`` (the recorder's public key, raw, base64).
The manifest is canonical JSON (sorted keys, no spaces, ASCII), so the same export always gives
the same bytes. The signature proves that the files are the ones the key's owner exported; that
the key is the recorder's is checked by comparing it with a key obtained from the recorder
itself (``verify_export(..., trusted_public_key=...)``, ``vigia-server verify``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from server.datadir import DataDir
from server.protocol.files import fsync_dir, write_atomic

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PUBLIC_KEY = "server.pub"
KEY_PATH = Path("keys") / "export-signing.pem"


@dataclass(frozen=True, slots=True)
class ManifestFile:
    """One exported file; camera, stream and times say what it shows (0/empty when unknown)."""

    name: str
    bytes: int
    sha256: str
    camera: str = ""
    stream: str = ""
    start_us: int = 0  # wall time of its first frame
    end_us: int = 0


@dataclass(frozen=True, slots=True)
class Manifest:
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
        return canonical_json(asdict(self))

    @classmethod
    def from_json(cls, data: dict) -> Manifest:
        """Read a manifest; fields a later version adds are ignored (the signature covers them)."""
        known = set(cls.__dataclass_fields__) - {"files"}
        file_fields = set(ManifestFile.__dataclass_fields__)
        files = [ManifestFile(**{k: v for k, v in f.items() if k in file_fields})
                 for f in data["files"]]  # fmt: skip
        return cls(files=files, **{k: v for k, v in data.items() if k in known})


@dataclass(slots=True)
class VerifyReport:
    ok: bool
    problems: list[str] = field(default_factory=list)
    key_id: str = ""  # SHA-256 of the signing public key, first 16 hex digits
    trusted: bool = False  # the key matched the trusted key given (not only the enclosed one)
    manifest: Manifest | None = None


def canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def public_raw(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def file_entry(path: Path, **info: object) -> ManifestFile:
    """Size and SHA-256 of an exported file, read back from disk (what the recipient gets)."""
    with path.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return ManifestFile(path.name, path.stat().st_size, digest, **info)  # type: ignore[arg-type]


def write_manifest(out_dir: Path, manifest: Manifest, private_key: Ed25519PrivateKey) -> Path:
    """Write manifest.json, its signature and the public key into ``out_dir``."""
    data = manifest.to_bytes()
    write_atomic(out_dir / PUBLIC_KEY, base64.b64encode(public_raw(private_key)) + b"\n")
    write_atomic(out_dir / MANIFEST, data)
    write_atomic(out_dir / SIGNATURE, base64.b64encode(private_key.sign(data)) + b"\n")
    fsync_dir(out_dir)
    return out_dir / MANIFEST


def load_or_create_signing_key(data_dir: DataDir | Path) -> Ed25519PrivateKey:
    """The recorder's export signing key, made on first use (PEM, owner-only, in the data dir).

    It lives with the data so that a moved or restored data dir keeps signing with the same key.
    """
    root = data_dir.root if isinstance(data_dir, DataDir) else Path(data_dir)
    path = root / KEY_PATH
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        pass
    else:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            log.warning("%s is readable by other users; it should be mode 0600", path)
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return key
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # never replaces a key another process made meanwhile
    except FileExistsError:
        tmp.unlink()
        return load_or_create_signing_key(root)
    tmp.unlink()
    fsync_dir(path.parent)
    log.info("created export signing key %s (id %s)", path, key_id(public_raw(key)))
    return key


def load_public_key(data_dir: DataDir | Path) -> bytes | None:
    """The raw public key of a data dir's signing key, or None (never creates one)."""
    root = data_dir.root if isinstance(data_dir, DataDir) else Path(data_dir)
    try:
        pem = (root / KEY_PATH).read_bytes()
    except FileNotFoundError:
        return None
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{root / KEY_PATH} is not an Ed25519 private key")
    return public_raw(key)


def read_public_key_file(path: Path) -> bytes:
    """A raw public key from a ``server.pub`` file (base64), e.g. one fetched from the recorder."""
    raw = _b64(path)
    if len(raw) != 32:
        raise ValueError(f"{path} does not hold an Ed25519 public key")
    return raw


def _b64(path: Path) -> bytes:
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
        signature = _b64(export_dir / SIGNATURE)
        enclosed = _b64(export_dir / PUBLIC_KEY)
    except FileNotFoundError as exc:
        problems.append(f"{Path(exc.filename).name} is missing")
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
        manifest = Manifest.from_json(json.loads(data))
    except (ValueError, TypeError, KeyError) as exc:
        problems.append(f"{MANIFEST} is not a valid manifest: {exc}")
        return report
    report.manifest = manifest
    if manifest.version > MANIFEST_VERSION:
        problems.append(f"manifest version {manifest.version} is newer than this program's")
    listed = set()
    for f in manifest.files:
        if f.name in (MANIFEST, SIGNATURE, PUBLIC_KEY) or Path(f.name).name != f.name:
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
        elif file_entry(path).sha256 != f.sha256:
            problems.append(f"{f.name} was modified (SHA-256 differs)")
    for extra in sorted(set(os.listdir(export_dir)) - listed - {MANIFEST, SIGNATURE, PUBLIC_KEY}):
        problems.append(f"{extra} is not part of the export")
    report.ok = not problems
    return report
