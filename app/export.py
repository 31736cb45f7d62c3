"""Export client: start an export on the recorder, follow it, download it, verify it.

The recorder signs each export: ``manifest.json`` (canonical JSON listing every file's name,
size and SHA-256), ``manifest.sig`` (Ed25519 signature of the manifest's exact bytes, base64)
and ``server.pub`` (the raw public key, base64). The check is re-implemented here from that wire
contract (the workstation does not import the recorder's code): signature first, then every
listed file's size and hash, nothing missing, nothing extra.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.api import ApiClient, ApiError

log = logging.getLogger(__name__)

MANIFEST, SIGNATURE, PUBLIC_KEY = "manifest.json", "manifest.sig", "server.pub"
MANIFEST_VERSION = 1
FINISHED = ("done", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class ExportStatus:
    id: str
    state: str  # queued | running | done | failed | cancelled
    progress: float  # 0..1
    error: str | None
    files: tuple[str, ...]

    @classmethod
    def from_json(cls, d: dict) -> ExportStatus:
        return cls(str(d["id"]), str(d["state"]), float(d.get("progress", 0.0)),
                   d.get("error"), tuple(d.get("files", ())))  # fmt: skip


@dataclass(slots=True)
class Verification:
    ok: bool
    problems: list[str] = field(default_factory=list)
    key_id: str = ""  # first 16 hex digits of SHA-256 of the signing key
    trusted: bool = False  # signed by the trusted key given, not only the enclosed one
    manifest: dict | None = None


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def verify_export(export_dir: Path, trusted_public_key: bytes | None = None) -> Verification:
    """Check a downloaded export directory; ``problems`` says what is wrong, in words."""
    report = Verification(ok=False)
    problems = report.problems
    try:
        data = (export_dir / MANIFEST).read_bytes()
        signature = base64.b64decode((export_dir / SIGNATURE).read_bytes().strip(), validate=True)
        enclosed = base64.b64decode((export_dir / PUBLIC_KEY).read_bytes().strip(), validate=True)
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
        manifest = json.loads(data)
        files = [(str(f["name"]), int(f["bytes"]), str(f["sha256"])) for f in manifest["files"]]
    except (ValueError, TypeError, KeyError) as exc:
        problems.append(f"{MANIFEST} is not a valid manifest: {exc}")
        return report
    report.manifest = manifest
    if int(manifest.get("version", 1)) > MANIFEST_VERSION:
        problems.append(f"manifest version {manifest['version']} is newer than this program's")
    listed = set()
    for name, size, digest in files:
        if name in (MANIFEST, SIGNATURE, PUBLIC_KEY) or Path(name).name != name:
            problems.append(f"manifest lists a bad file name {name!r}")
            continue
        listed.add(name)
        path = export_dir / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != size:
            problems.append(f"{name} has {path.stat().st_size} bytes, the manifest says {size}")
        elif _sha256(path) != digest:
            problems.append(f"{name} was modified (SHA-256 differs)")
    for extra in sorted(set(os.listdir(export_dir)) - listed - {MANIFEST, SIGNATURE, PUBLIC_KEY}):
        problems.append(f"{extra} is not part of the export")
    report.ok = not problems
    return report


class ExportClient:
    """Exports of one recorder. Coroutines: run them on the ``AsyncRunner`` loop."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api

    async def start(
        self,
        cameras: Sequence[tuple[str, str]],
        start_us: int,
        end_us: int,
        *,
        fmt: str = "mp4",
        exact: bool = False,
    ) -> ExportStatus:
        body = {
            "cameras": [{"camera": c, "stream": s} for c, s in cameras],
            "start_us": start_us,
            "end_us": end_us,
            "format": fmt,
            "exact": exact,
        }
        return ExportStatus.from_json(await self.api.post_json("/exports", body))

    async def status(self, export_id: str) -> ExportStatus:
        return ExportStatus.from_json(await self.api.get_json(f"/exports/{export_id}"))

    async def wait(
        self,
        export_id: str,
        *,
        poll_s: float = 0.25,
        timeout_s: float = 600.0,
        on_progress: Callable[[ExportStatus], None] | None = None,
    ) -> ExportStatus:
        """Poll until the export finishes; ``on_progress`` gets every status seen."""
        deadline = time.monotonic() + timeout_s
        while True:
            st = await self.status(export_id)
            if on_progress is not None:
                on_progress(st)
            if st.state in FINISHED:
                return st
            if time.monotonic() > deadline:
                raise ApiError(0, "timeout", f"export {export_id} still {st.state}")
            await asyncio.sleep(poll_s)

    async def download(self, st: ExportStatus, dest_dir: Path) -> Path:
        """Fetch every file of a finished export into ``dest_dir / st.id``."""
        if st.state != "done":
            raise ApiError(409, "not_ready", f"export {st.id} is {st.state}")
        out = dest_dir / st.id
        out.mkdir(parents=True, exist_ok=True)
        for name in st.files:
            if Path(name).name != name or name.startswith("."):
                raise ApiError(0, "bad_export", f"the recorder listed a bad file name {name!r}")
            await self.api.download(f"/exports/{st.id}/files/{name}", out / name)
        return out

    async def run(
        self,
        cameras: Sequence[tuple[str, str]],
        start_us: int,
        end_us: int,
        dest_dir: Path,
        *,
        fmt: str = "mp4",
        exact: bool = False,
        trusted_public_key: bytes | None = None,
        on_progress: Callable[[ExportStatus], None] | None = None,
    ) -> tuple[Path, Verification]:
        """Start, follow, download and verify one export."""
        st = await self.start(cameras, start_us, end_us, fmt=fmt, exact=exact)
        st = await self.wait(st.id, on_progress=on_progress)
        if st.state != "done":
            raise ApiError(0, "export_failed", f"export {st.id} {st.state}: {st.error}")
        out = await self.download(st, dest_dir)
        report = await asyncio.to_thread(verify_export, out, trusted_public_key)
        log.info("export %s: %s", st.id, "verified" if report.ok else report.problems)
        return out, report
