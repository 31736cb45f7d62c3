"""``/metrics`` for Prometheus. Stream figures are read from the recorder at scrape time (a
custom collector), so the per-packet path pays nothing for them. Storage figures come from the
catalog's per-stream totals, kept by triggers as segments are written and deleted: a scrape reads
a few rows, never sums the archive under the lock the ingest threads need.

Only counters and current values are exported, no rates: a collector that kept the previous
scrape to compute one would be wrong as soon as two Prometheus servers scrape it. Rates are
``rate()`` in PromQL, e.g. ``rate(vigia_analytics_frames_analysed_total[1m])`` for analysed
frames per second."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from server.archive import Archiver
from server.catalog import Catalog
from server.datadir import DataDir
from server.supervisor import IngestSupervisor


class RecorderCollector(Collector):
    def __init__(self, recorder: IngestSupervisor, catalog: Catalog, data: DataDir) -> None:
        self.recorder, self.catalog, self.data = recorder, catalog, data

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        statuses = self.recorder.status()
        labels = ["camera", "stream"]
        up = GaugeMetricFamily(
            "vigia_stream_online", "1 when the stream delivers video", labels=labels
        )
        packets = CounterMetricFamily("vigia_stream_packets", "Packets received", labels=labels)
        nbytes = CounterMetricFamily("vigia_stream_bytes", "Bytes received", labels=labels)
        reconnects = CounterMetricFamily(
            "vigia_stream_reconnects", "Reconnect attempts", labels=labels
        )
        segments = CounterMetricFamily("vigia_segments_written", "Segments closed", labels=labels)
        for st in statuses:
            key = [st.camera_id, st.stream]
            up.add_metric(key, 1.0 if st.state == "online" else 0.0)
            packets.add_metric(key, st.packets)
            nbytes.add_metric(key, st.bytes)
            reconnects.add_metric(key, st.reconnects)
            rec = self.recorder.recorder(st.camera_id, st.stream)
            segments.add_metric(key, rec.stats.segments_closed if rec else 0)
        online = sum(1 for s in statuses if s.state == "online")
        yield GaugeMetricFamily("vigia_cameras_online", "Streams online", value=online)
        yield GaugeMetricFamily("vigia_cameras_offline", "Streams not online",
                                value=len(statuses) - online)  # fmt: skip
        yield from (up, packets, nbytes, reconnects, segments)
        stored_bytes = GaugeMetricFamily(
            "vigia_stream_recorded_bytes", "Bytes of the stream's segments in the catalog",
            labels=labels,
        )  # fmt: skip
        stored_segments = GaugeMetricFamily(
            "vigia_stream_recorded_segments", "The stream's segments in the catalog", labels=labels
        )
        totals = self.catalog.stream_totals()
        for t in totals:
            stored_bytes.add_metric([t.camera_id, t.stream], t.bytes)
            stored_segments.add_metric([t.camera_id, t.stream], t.segments)
        yield from (stored_bytes, stored_segments)
        yield from self.recorder.extra_metrics()  # type: ignore[misc]
        yield GaugeMetricFamily("vigia_recordings_bytes", "Bytes of recordings in the catalog",
                                value=sum(t.bytes for t in totals))  # fmt: skip
        usage = shutil.disk_usage(self.data.root)
        yield GaugeMetricFamily("vigia_volume_free_bytes", "Free bytes on the recordings volume",
                                value=usage.free)  # fmt: skip


class ArchiveCollector(Collector):
    """Replication to object storage (docs/design/archive.md): backlog, uploads, errors."""

    def __init__(self, archiver: Archiver) -> None:
        self.archiver = archiver

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        st = self.archiver.status()
        yield GaugeMetricFamily("vigia_archive_up", "1 when the object store answers",
                                value=1.0 if st.state == "ok" else 0.0)  # fmt: skip
        yield GaugeMetricFamily(
            "vigia_archive_backlog_segments",
            "Closed segments waiting for upload",
            value=st.backlog_segments,
        )
        yield GaugeMetricFamily(
            "vigia_archive_backlog_bytes", "Bytes waiting for upload", value=st.backlog_bytes
        )
        yield GaugeMetricFamily(
            "vigia_archive_backlog_oldest_age_seconds",
            "Age of the oldest segment waiting for upload",
            value=st.backlog_oldest_age_s,
        )
        yield CounterMetricFamily(
            "vigia_archive_uploaded_objects", "Objects stored", value=st.uploaded_objects
        )
        yield CounterMetricFamily(
            "vigia_archive_uploaded_bytes", "Bytes stored", value=st.uploaded_bytes
        )
        yield CounterMetricFamily(
            "vigia_archive_upload_errors", "Failed store requests", value=st.upload_errors
        )
        yield GaugeMetricFamily(
            "vigia_archive_segments", "Segments in the bucket", value=st.archived_segments
        )
        yield GaugeMetricFamily(
            "vigia_archive_bytes", "Bytes of segments in the bucket", value=st.archived_bytes
        )


class Metrics:
    def __init__(self, recorder: IngestSupervisor, catalog: Catalog, data: DataDir) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(RecorderCollector(recorder, catalog, data))
        self.latency = Histogram(
            "vigia_api_request_seconds", "API request latency", ["method", "route"],
            registry=self.registry,
        )  # fmt: skip

    @web.middleware
    async def middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        start = time.perf_counter()
        try:
            return await handler(request)
        finally:
            route = request.match_info.route.resource
            name = route.canonical if route is not None else "unmatched"
            self.latency.labels(request.method, name).observe(time.perf_counter() - start)

    async def handle(self, request: web.Request) -> web.Response:
        body = await asyncio.to_thread(generate_latest, self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
