"""The recorder: one ingest worker (and stream recorder) per configured camera stream.

It always runs from the catalog: ``sync()`` compares what the catalog says should run with
what runs, and starts, stops or restarts workers to match, so cameras can be added, changed
or removed while recording (the API does that) without touching the other cameras.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from server.catalog import Catalog
from server.clock import Clock
from server.config import RecordingConfig
from server.datadir import DataDir
from server.ingest.source import Timeouts, redact
from server.ingest.worker import (
    IngestWorker,
    State,
    StatusCallback,
    StreamStatus,
    reconnect_backoff,
)
from server.protocol.timeutil import US_PER_SECOND
from server.recording.packets import PacketSink
from server.recording.segmenter import RecordingSettings, SegmentWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Spec:
    camera_id: str
    stream: str
    url: str
    record: bool
    transport: str = "auto"


@dataclass
class _Running:
    spec: _Spec
    worker: IngestWorker
    recorder: SegmentWriter | None


class IngestSupervisor:
    def __init__(
        self,
        catalog: Catalog,
        data: DataDir,
        clock: Clock,
        config: RecordingConfig | None = None,
        on_status: StatusCallback | None = None,
        sinks_for: Callable[[str, str], list[PacketSink]] | None = None,
        record: bool = True,
    ) -> None:
        self.catalog = catalog
        self.data = data
        self.clock = clock
        self.config = config or RecordingConfig()
        self.on_status = on_status
        self.sinks_for = sinks_for  # other consumers of each stream (live distribution)
        self.record = record  # False: this process pulls for live only (the 'record' role)
        self._running: dict[tuple[str, str], _Running] = {}
        self._lock = threading.Lock()
        # more Prometheus metric families, read at scrape time (e.g. the storage state)
        self.collectors: list[Callable[[], Iterable[object]]] = []

    def _wanted(self) -> dict[tuple[str, str], _Spec]:
        enabled = {c.id for c in self.catalog.cameras() if c.enabled}
        return {
            (s.camera_id, s.name): _Spec(s.camera_id, s.name, s.url, s.record, s.transport)
            for s in self.catalog.streams()
            if s.camera_id in enabled
        }

    def sync(self) -> None:
        """Make the running workers match the catalog."""
        with self._lock:
            wanted = self._wanted()
            stale = [self._running.pop(k) for k, r in list(self._running.items())
                     if wanted.get(k) != r.spec]  # fmt: skip
            for r in stale:
                r.worker.request_stop()  # all at once: a worker in a connect attempt is slow
            for r in stale:
                self._stop_one(r)
            for key, spec in wanted.items():
                if key not in self._running:
                    self._running[key] = self._start_one(spec)

    def _start_one(self, spec: _Spec) -> _Running:
        cfg = self.config
        recorder = None
        if spec.record and self.record:
            settings = RecordingSettings(
                segment_us=int(cfg.segment_seconds * US_PER_SECOND),
                max_drift_ppm=cfg.max_drift_ppm,
            )
            recorder = SegmentWriter(
                self.catalog, self.data.root, spec.camera_id, spec.stream, settings
            )
        worker = IngestWorker(
            spec.camera_id,
            spec.stream,
            spec.url,
            # the recorder last: it rewrites packet timestamps in place
            [
                *(self.sinks_for(spec.camera_id, spec.stream) if self.sinks_for else []),
                *([recorder] if recorder else []),
            ],
            self.clock,
            timeouts=Timeouts(cfg.open_timeout_s, cfg.read_timeout_s),
            backoff=reconnect_backoff(cfg.reconnect_max_s),
            on_status=self.on_status,
            transport=spec.transport,
        )
        worker.start()
        log.info("started %s/%s (%s)", spec.camera_id, spec.stream, redact_url(spec.url))
        return _Running(spec, worker, recorder)

    @staticmethod
    def _stop_one(running: _Running) -> None:
        running.worker.stop()
        log.info("stopped %s/%s", running.spec.camera_id, running.spec.stream)

    def status(self) -> list[StreamStatus]:
        """Each stream's ingest state; for a stream that is online but cannot record (disk
        full, catalog not writable) ``reason`` says why, so status shows it."""
        with self._lock:
            return [_with_recording_error(r) for r in self._running.values()]

    def extra_metrics(self) -> Iterable[object]:
        for collect in self.collectors:
            yield from collect()

    def recorder(self, camera_id: str, stream: str) -> SegmentWriter | None:
        with self._lock:
            running = self._running.get((camera_id, stream))
            return running.recorder if running else None

    def stop(self) -> None:
        """Stop every worker; each closes its open segment on its own thread."""
        with self._lock:
            running, self._running = list(self._running.values()), {}
        for r in running:
            r.worker.request_stop()  # ask all first, so they wind down in parallel
        for r in running:
            self._stop_one(r)


def _with_recording_error(running: _Running) -> StreamStatus:
    st = running.worker.status
    error = running.recorder.stats.error if running.recorder else None
    if error and st.state == State.ONLINE and not st.reason:
        return replace(st, reason=error)
    return st


def redact_url(url: str) -> str:
    """Never log camera passwords (``server.ingest.source.redact``)."""
    return redact(url)
