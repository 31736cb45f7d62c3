"""Export client: start an export on the recorder, follow it, download it, verify it.

The recorder signs each export (``manifest.json`` listing every file's name, size and SHA-256,
``manifest.sig``, ``server.pub``); the download is checked with the same code the recorder's
``vigia-server verify`` runs, ``server.protocol.manifest.verify_export``: signature first, then
every listed file's size and hash, nothing missing, nothing extra.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from app.api import ApiClient, ApiError
from server.protocol.manifest import VerifyReport, verify_export
from server.protocol.models.exports import Export, ExportCamera, ExportInput

log = logging.getLogger(__name__)

__all__ = ["ExportClient", "ExportStatus", "Verification", "verify_export"]

FINISHED = ("done", "failed", "cancelled")
Verification = VerifyReport  # the name the export dialog uses


ExportStatus = Export  # the wire body (server/protocol/models/exports.py), decoded strictly


def _status(data: object) -> Export:
    try:
        return msgspec.convert(data, Export)
    except msgspec.ValidationError as exc:
        msg = f"the recorder sent an export status this client cannot read: {exc}"
        raise ApiError(0, "bad_answer", msg) from None


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
        body = ExportInput(
            [ExportCamera(c, s) for c, s in cameras], start_us, end_us, format=fmt, exact=exact
        )
        return _status(await self.api.post_json("/exports", msgspec.to_builtins(body)))

    async def status(self, export_id: str) -> ExportStatus:
        return _status(await self.api.get_json(f"/exports/{export_id}"))

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
