"""``/metrics`` storage figures: equal to the catalog's real sums, read without a scan."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from server.api.metrics import Metrics
from server.catalog import Catalog, SegmentRow
from server.clock import SystemClock
from server.datadir import DataDir
from server.supervisor import IngestSupervisor


def _scrape(metrics: Metrics) -> dict[tuple[str, tuple], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _segment(sid: int, run: int, i: int, nbytes: int) -> SegmentRow:
    start = 1_000_000 + i * 10_000
    return SegmentRow(0, sid, run, start, start + 5_000, 5_000, f"s{i}.mp4", nbytes, 1,
                      "h264", 64, 64, b"\0", "open")  # fmt: skip


def test_storage_metrics_follow_the_catalog_without_scanning_segments(tmp_path: Path) -> None:
    data = DataDir(tmp_path / "data")
    data.create()
    catalog = Catalog(data.catalog)
    clock = SystemClock()
    metrics = Metrics(IngestSupervisor(catalog, data, clock), catalog, data)
    catalog.upsert_camera("a", "A", {"main": ("rtsp://h/1", True), "sub": ("rtsp://h/2", True)},
                          now_us=1)  # fmt: skip
    main, sub = catalog.stream_id("a", "main"), catalog.stream_id("a", "sub")
    run = catalog.begin_run(main, 1)
    ids = [catalog.insert_segment(_segment(main, run, i, 1000 * (i + 1))) for i in range(3)]
    catalog.insert_segment(_segment(sub, run, 3, 70))
    s = catalog.segment(ids[0])
    assert s is not None
    catalog.update_segment(s.id, start_us=s.start_us, end_us=s.end_us, media_duration_us=5_000,
                           bytes_=5000, frames=2, fragment_index=b"\0", state="closed")  # fmt: skip
    catalog.delete_segment(ids[1])

    statements: list[str] = []
    catalog._conn.set_trace_callback(statements.append)
    got = _scrape(metrics)
    catalog._conn.set_trace_callback(None)

    main_key = (("camera", "a"), ("stream", "main"))
    sub_key = (("camera", "a"), ("stream", "sub"))
    assert got[("vigia_stream_recorded_bytes", main_key)] == 5000 + 3000
    assert got[("vigia_stream_recorded_segments", main_key)] == 2
    assert got[("vigia_stream_recorded_bytes", sub_key)] == 70
    real = catalog._one("SELECT sum(bytes) FROM segments")[0]
    assert got[("vigia_recordings_bytes", ())] == real == 8070
    assert statements and not any("FROM segments" in q for q in statements), statements
    catalog.close()
