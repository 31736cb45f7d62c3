"""Signing of export manifests: the recorder's Ed25519 key and the signed files it writes.

The manifest's format and its check live in ``server.protocol.manifest`` (one code path for the
recorder's ``vigia-server verify`` and the workstation); this module adds what only the recorder
does: keep the signing key in the data dir and write ``manifest.json``, ``manifest.sig`` and
``server.pub`` into an export directory.
"""

from __future__ import annotations

import base64
import logging
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from server.datadir import DataDir
from server.protocol.files import create_private, fsync_dir, write_atomic
from server.protocol.manifest import (
    MANIFEST,
    MANIFEST_VERSION,
    PUBLIC_KEY,
    SIGNATURE,
    Manifest,
    ManifestFile,
    VerifyReport,
    file_entry,
    key_id,
    read_b64,
    verify_export,
)

__all__ = [
    "KEY_PATH",
    "MANIFEST",
    "MANIFEST_VERSION",
    "PUBLIC_KEY",
    "SIGNATURE",
    "Manifest",
    "ManifestFile",
    "VerifyReport",
    "file_entry",
    "key_id",
    "load_or_create_signing_key",
    "load_public_key",
    "public_raw",
    "read_public_key_file",
    "verify_export",
    "write_manifest",
]

log = logging.getLogger(__name__)

KEY_PATH = Path("keys") / "export-signing.pem"


def public_raw(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


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
    if not create_private(path, pem):  # another process made one meanwhile: that one
        return load_or_create_signing_key(root)
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
    raw = read_b64(path)
    if len(raw) != 32:
        raise ValueError(f"{path} does not hold an Ed25519 public key")
    return raw
