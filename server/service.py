"""``vigia-server`` as a long-running process: wires the parts and runs until signalled.

Start-up order matters for crash safety: lock the data dir, open and migrate the catalog,
recover what a crash left (before any new segment is written), then start recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass

from server.catalog import Catalog
from server.clock import Clock, SystemClock
from server.config import CameraConfig, Config
from server.datadir import DataDir
from server.ingest.worker import State
from server.recorder import Recorder
from server.recording.recovery import recover
from server.recording.retention import Retention, VolumeLimits

log = logging.getLogger(__name__)


@dataclass
class Services:
    data: DataDir
    catalog: Catalog
    recorder: Recorder
    retention: Retention
    lock_fd: int


def open_services(config: Config, data: DataDir, clock: Clock | None = None) -> Services:
    clock = clock or SystemClock()
    lock_fd = data.lock()
    data.create()
    catalog = Catalog(data.catalog)
    report = recover(catalog, data)
    if report.problems:
        log.warning("start-up recovery: %d problems handled", len(report.problems))
    for cam in config.cameras:
        apply_camera(catalog, cam, clock, source="config")
    recorder = Recorder(catalog, data, clock, config.recording)
    storage = config.storage
    retention = Retention(
        catalog, data, VolumeLimits(storage.max_bytes, storage.min_free_bytes), clock
    )
    return Services(data, catalog, recorder, retention, lock_fd)


def apply_camera(catalog: Catalog, cam: CameraConfig, clock: Clock, source: str) -> None:
    catalog.upsert_camera(
        cam.id,
        cam.name,
        cam.streams(),
        enabled=cam.enabled,
        retention_days=cam.retention_days,
        source=source,
        now_us=clock.now_us(),
    )


SUMMARY_INTERVAL_S = 60.0


def log_summary(recorder: Recorder) -> None:
    """One line on how recording goes, and one per stream that is not well."""
    statuses = recorder.status()
    online = sum(1 for s in statuses if s.state == State.ONLINE)
    log.info("%d/%d streams online", online, len(statuses))
    for st in statuses:
        rec = recorder.recorder(st.camera_id, st.stream)
        problem = st.reason if st.state != State.ONLINE else (rec.stats.error if rec else None)
        if problem:
            log.warning("%s/%s %s: %s", st.camera_id, st.stream, st.state, problem)


async def serve(config: Config, services: Services) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    services.recorder.sync()
    log.info(
        "recording %d streams into %s",
        len(services.recorder.status()),
        services.data.root,
    )
    interval = config.storage.retention_interval_s
    next_summary = loop.time()
    try:
        while not stop.is_set():
            # retention and garbage collection touch disk and SQLite: keep them off the loop
            await asyncio.to_thread(services.retention.run_once)
            if loop.time() >= next_summary:
                log_summary(services.recorder)
                next_summary = loop.time() + SUMMARY_INTERVAL_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
    finally:
        log.info("stopping")
        await asyncio.to_thread(services.recorder.stop)
        services.catalog.close()
        log.info("stopped cleanly")
