"""One export as the export dialog runs it: start, follow, download, verify; or cancel.

``app.export.ExportClient`` speaks the export routes; this model runs a whole job through a
session (a renewed token on a 401) on the network loop and reports its progress and phases
through callbacks (called on the loop: a widget marshals them to its own thread).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Sequence
from pathlib import Path

from app.api import ApiClient, ApiError
from app.export import ExportClient, ExportStatus, Verification, verify_export
from app.remote import RemoteModel

PHASES = ("downloading", "verifying")


class ExportFailed(ApiError):
    """The recorder finished the job without a result (``state`` failed or cancelled)."""

    def __init__(self, state: str, error: str) -> None:
        super().__init__(0, "export_failed", f"export {state}: {error}")
        self.state, self.error = state, error


class ExportJob(RemoteModel):
    """Exports of one recorder, one job at a time per call of ``run``."""

    def run(
        self,
        cameras: Sequence[tuple[str, str]],
        start_us: int,
        end_us: int,
        folder: Path,
        *,
        fmt: str = "mp4",
        exact: bool = False,
        on_progress: Callable[[ExportStatus], None] | None = None,
        on_phase: Callable[[str], None] | None = None,
    ) -> concurrent.futures.Future[tuple[Path, Verification]]:
        """Start the export of ``(camera, stream)`` pairs, follow it (``on_progress`` gets
        every status seen, the first one carrying the job id), download its files into
        ``folder / <id>`` and verify its signature. Cancelling the Future stops following and
        downloading (``cancel`` asks the recorder to drop the job)."""
        cams = list(cameras)

        def phase(name: str) -> None:
            if on_phase is not None:
                on_phase(name)

        async def work(api: ApiClient) -> tuple[Path, Verification]:
            client = ExportClient(api)
            st = await client.start(cams, start_us, end_us, fmt=fmt, exact=exact)
            if on_progress is not None:
                on_progress(st)
            st = await client.wait(st.id, on_progress=on_progress)
            if st.state != "done":
                raise ExportFailed(st.state, st.error or "")
            phase("downloading")
            out = await client.download(st, folder)
            phase("verifying")
            return out, await asyncio.to_thread(verify_export, out)

        return self._call(work)

    def cancel(self, export_id: str) -> concurrent.futures.Future[None]:
        """``DELETE /exports/{id}``: the recorder cancels the job and drops its files."""
        return self._call(lambda api: api.delete(f"/exports/{export_id}"))
