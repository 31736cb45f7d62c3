"""Export jobs: exports run in worker threads while the API polls their state.

Nothing here knows asyncio: ``submit``, ``status`` and ``cancel`` are quick, thread-safe calls,
so an aiohttp handler can call them directly and poll. Each job writes into its own directory
``<exports>/<job id>/`` (video files, then the signed manifest); a failed or cancelled job leaves
no directory behind.

Jobs are kept in the catalog (``export_jobs``): a finished export is still there after a
restart; one that was queued runs again; one that was running when the process died (kill -9,
power cut) is marked failed and its directory, temp file included, is removed.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server import __version__
from server.catalog import Catalog
from server.catalog.exports import INTERRUPTED_EXPORT, ExportRow, ExportStore
from server.clock import Clock, SystemClock
from server.datadir import DataDir
from server.export.cutter import (
    ExportCancelled,
    ExportError,
    RemoteSegments,
    check_request,
    cut_range,
)
from server.export.manifest import (
    MANIFEST,
    PUBLIC_KEY,
    SIGNATURE,
    Manifest,
    file_entry,
    load_or_create_signing_key,
    write_manifest,
)

log = logging.getLogger(__name__)

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"done", "failed", "cancelled"})
_CUT_SHARE = 0.98  # of the progress; hashing and signing take the rest


@dataclass(frozen=True, slots=True)
class ExportRequest:
    cameras: tuple[tuple[str, str], ...]
    start_us: int
    end_us: int
    fmt: str = "mp4"
    exact: bool = False
    exported_by: str = ""


@dataclass(frozen=True, slots=True)
class JobStatus:
    id: str
    state: JobState
    progress: float  # 0..1
    error: str | None
    files: tuple[str, ...]  # names in ``dir``, video files then the manifest's three
    dir: Path
    request: ExportRequest
    created_us: int
    finished_us: int | None

    @property
    def owner(self) -> str:
        """The user who asked for it: the API lets others than its owner (and admins) out."""
        return self.request.exported_by


INTERRUPTED = INTERRUPTED_EXPORT


class ExportQuotaError(ExportError):
    """A user's quota of queued or running exports is used up (the API answers 429)."""


@dataclass(slots=True)
class _Job:
    id: str
    request: ExportRequest
    dir: Path
    created_us: int
    state: JobState = "queued"
    progress: float = 0.0
    error: str | None = None
    files: tuple[str, ...] = ()
    finished_us: int | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    future: Future[None] | None = None


class ExportJobs:
    """Runs exports in a thread pool (one at a time by default: recording keeps the disk)."""

    def __init__(
        self,
        catalog: Catalog,
        data_dir: DataDir,
        *,
        exports_dir: Path | None = None,
        signing_key: Ed25519PrivateKey | None = None,
        clock: Clock | None = None,
        max_workers: int = 1,
        max_pending_per_user: int = 4,
        max_span_us: int = 24 * 3600 * 1_000_000,
        remote: RemoteSegments | None = None,
    ) -> None:
        """``max_pending_per_user``: queued or running jobs one user may have (one user must
        not queue the disk full); ``max_span_us``: the longest window one export may cover;
        ``remote``: where footage whose local copy is gone is read (the archive)."""
        self.catalog = catalog
        self.remote = remote
        self.data_dir = data_dir
        self.exports_dir = exports_dir or data_dir.root / "exports"
        self._key = signing_key or load_or_create_signing_key(data_dir)
        self._server_id = data_dir.server_id()
        self._clock = clock or SystemClock()
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="export")
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self.max_pending_per_user = max_pending_per_user
        self.max_span_us = max_span_us
        self._store = ExportStore(catalog)
        self._restore()

    def _restore(self) -> None:
        """Load the jobs of earlier runs: finished ones as they were, queued ones run again,
        running ones failed (their output is incomplete) with their directory removed."""
        for row in self._store.all():
            job = _Job(row.id, _request(row), self.exports_dir / row.id, row.created_us,
                       row.state, 1.0 if row.state == "done" else 0.0, row.error, row.files,
                       row.finished_us)  # type: ignore[arg-type]  # fmt: skip
            if row.state == "running" or (row.state == "done" and not job.dir.is_dir()):
                shutil.rmtree(job.dir, ignore_errors=True)
                error = INTERRUPTED if row.state == "running" else "files missing"
                self._finish(job, "failed", error)
                log.warning("export %s: %s", row.id, error)
            self._jobs[row.id] = job
            if row.state == "queued":
                job.future = self._pool.submit(self._run, job)
        if self.exports_dir.is_dir():  # temp files of exports cut short (no export runs yet)
            for tmp in self.exports_dir.glob("*/.*.tmp"):
                tmp.unlink(missing_ok=True)

    def expire(self, before_us: int) -> int:
        """Delete finished exports older than ``before_us`` (the age limit); returns how many."""
        n = 0
        for row in self._store.finished_before(before_us):
            try:
                self.remove(row.id)
                n += 1
            except (KeyError, ExportError):
                continue
        if n:
            log.info("removed %d exports past their age limit", n)
        return n

    def submit(
        self,
        cameras: Sequence[tuple[str, str]],
        start_us: int,
        end_us: int,
        *,
        fmt: str = "mp4",
        exact: bool = False,
        exported_by: str = "",
    ) -> str:
        """Queue an export; return its id. Raises ExportError at once for a hopeless request
        (unknown camera, nothing recorded in the range, bad format), so the API can say 4xx."""
        request = ExportRequest(tuple((c, s) for c, s in cameras), start_us, end_us, fmt, exact,
                                exported_by)  # fmt: skip
        if end_us - start_us > self.max_span_us:
            hours = self.max_span_us / 3_600_000_000
            raise ExportError(f"an export covers at most {hours:g} hours; split the request")
        check_request(self.catalog, request.cameras, start_us, end_us, fmt, self.remote)
        with self._lock:
            pending = sum(
                1
                for j in self._jobs.values()
                if j.request.exported_by == exported_by and j.state not in FINISHED
            )
        if pending >= self.max_pending_per_user:
            raise ExportQuotaError(
                f"{exported_by or 'this user'} already has {pending} exports queued or running;"
                " wait for one to finish or cancel one"
            )  # fmt: skip
        job_id = secrets.token_hex(8)
        job = _Job(job_id, request, self.exports_dir / job_id, self._clock.now_us())
        self._store.add(job_id, exported_by, _request_json(request), job.created_us)
        with self._lock:
            self._jobs[job_id] = job
            job.future = self._pool.submit(self._run, job)
        log.info("export %s queued: %s", job_id, request)
        return job_id

    def status(self, job_id: str) -> JobStatus:
        """The job's state now; KeyError for an unknown id."""
        with self._lock:
            j = self._jobs[job_id]
            return JobStatus(j.id, j.state, j.progress, j.error, j.files, j.dir, j.request,
                             j.created_us, j.finished_us)  # fmt: skip

    def jobs(self, owner: str | None = None) -> list[JobStatus]:
        """Every job, or those of ``owner``."""
        with self._lock:
            ids = [i for i, j in self._jobs.items()
                   if owner is None or j.request.exported_by == owner]  # fmt: skip
        return [self.status(i) for i in ids]

    def cancel(self, job_id: str) -> bool:
        """Stop a queued or running job; False when it had already finished."""
        with self._lock:
            job = self._jobs[job_id]
            if job.state in FINISHED:
                return False
            job.cancel.set()
            if job.future is not None and job.future.cancel():
                self._finish(job, "cancelled")  # never started
        return True

    def remove(self, job_id: str) -> None:
        """Forget a finished job and delete its files (cancel it first if it runs)."""
        with self._lock:
            job = self._jobs[job_id]
            if job.state not in FINISHED:
                raise ExportError(f"export {job_id} is still {job.state}; cancel it first")
            del self._jobs[job_id]
        shutil.rmtree(job.dir, ignore_errors=True)
        self._store.delete(job_id)

    def close(self) -> None:
        """Cancel everything and wait for the workers (at shutdown)."""
        with self._lock:
            for job in self._jobs.values():
                job.cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for job in self._jobs.values():
                if job.state not in FINISHED:
                    self._finish(job, "cancelled")

    def _finish(self, job: _Job, state: JobState, error: str | None = None) -> None:
        """Under the lock."""
        job.state, job.error, job.finished_us = state, error, self._clock.now_us()
        size = 0
        if state == "done":
            job.progress = 1.0
            size = sum((job.dir / f).stat().st_size for f in job.files)
        self._store.update(job.id, state, error=error, files=job.files, bytes_=size,
                           finished_us=job.finished_us)  # fmt: skip

    def _set_progress(self, job: _Job, fraction: float) -> None:
        job.progress = max(job.progress, fraction * _CUT_SHARE)  # a float store: atomic

    def _run(self, job: _Job) -> None:
        with self._lock:
            if job.cancel.is_set():
                self._finish(job, "cancelled")
                return
            job.state = "running"
            self._store.update(job.id, "running")
        r = job.request
        try:
            files = cut_range(
                self.catalog, self.data_dir, r.cameras, r.start_us, r.end_us, job.dir, r.fmt,
                r.exact, lambda f: self._set_progress(job, f), job.cancel, self.remote,
            )  # fmt: skip
            if job.cancel.is_set():
                raise ExportCancelled("export cancelled")
            entries = [file_entry(f.path, camera=f.camera, stream=f.stream,
                                  start_us=f.start_us, end_us=f.end_us) for f in files]  # fmt: skip
            manifest = Manifest(
                files=entries, cameras=[f"{c}/{s}" for c, s in r.cameras], start_us=r.start_us,
                end_us=r.end_us, exact=r.exact, format=r.fmt, exported_by=r.exported_by,
                server_id=self._server_id, created_us=self._clock.now_us(),
                software=f"vigia-server {__version__}",
            )  # fmt: skip
            write_manifest(job.dir, manifest, self._key)
        except ExportCancelled:
            shutil.rmtree(job.dir, ignore_errors=True)
            with self._lock:
                self._finish(job, "cancelled")
            log.info("export %s cancelled", job.id)
            return
        except ExportError as exc:
            shutil.rmtree(job.dir, ignore_errors=True)
            with self._lock:
                self._finish(job, "failed", str(exc))
            log.warning("export %s failed: %s", job.id, exc)
            return
        except Exception as exc:  # a worker must report every failure, not lose it in a Future
            log.exception("export %s failed", job.id)
            shutil.rmtree(job.dir, ignore_errors=True)
            with self._lock:
                self._finish(job, "failed", f"internal error: {exc}")
            return
        with self._lock:
            job.files = (*(e.name for e in entries), MANIFEST, SIGNATURE, PUBLIC_KEY)
            self._finish(job, "done")
        log.info("export %s done: %d file(s) in %s", job.id, len(entries), job.dir)


def _request_json(r: ExportRequest) -> dict:
    return {"cameras": [list(c) for c in r.cameras], "start_us": r.start_us, "end_us": r.end_us,
            "fmt": r.fmt, "exact": r.exact}  # fmt: skip


def _request(row: ExportRow) -> ExportRequest:
    q = row.request
    return ExportRequest(tuple((c, s) for c, s in q["cameras"]), q["start_us"], q["end_us"],
                         q["fmt"], q["exact"], row.owner)  # fmt: skip
