"""The catalog schema: migrations, the rules it enforces, and its documentation."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.catalog import Catalog, SegmentRow
from server.catalog.analytics import AnalyticsCatalog, AnalyticsSettings, ZoneRow
from server.catalog.catalog import CatalogError
from server.catalog.report import TRIGGERS, inspect_catalog
from server.catalog.schema import MIGRATIONS, SCHEMA_VERSION


def test_migrates_once_and_reopens(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.db")
    cat.upsert_camera("cam-1", "Cam", {"main": ("rtsp://h/1", True)}, now_us=1)
    cat.close()
    cat = Catalog(tmp_path / "c.db")
    assert cat._one("PRAGMA user_version") == (SCHEMA_VERSION,)
    assert cat._one("PRAGMA journal_mode") == ("wal",)
    assert [c.id for c in cat.cameras()] == ["cam-1"]


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    Catalog(tmp_path / "c.db").close()
    conn = sqlite3.connect(tmp_path / "c.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(CatalogError, match="newer"):
        Catalog(tmp_path / "c.db")


def test_every_column_has_a_comment() -> None:
    for script in MIGRATIONS:
        for table in re.findall(r"CREATE TABLE \w+ \((.*?)\n\) STRICT;", script, re.S):
            for line in table.splitlines():
                line = line.strip()
                m = re.match(r"^([a-z_]+) (INTEGER|TEXT|REAL|BLOB)\b", line)
                if m:
                    assert "--" in line, f"column {m.group(1)} has no comment"


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO cameras (id, name, created_us, updated_us) VALUES ('Bad Id', 'x', 1, 1)",
        "INSERT INTO cameras (id, name, enabled, created_us, updated_us)"
        " VALUES ('c', 'x', 2, 1, 1)",
        "INSERT INTO streams (camera_id, name, url) VALUES ('ok', 'third', 'rtsp://x')",
        "INSERT INTO segments (stream_id, run_id, start_us, end_us, media_duration_us, path, bytes,"
        " codec, width, height, fragment_index, state) VALUES (1, 1, 100, 50, 0, 'p', 0, 'h264',"
        " 1, 1, x'00', 'open')",
        "INSERT INTO segments (stream_id, run_id, start_us, end_us, media_duration_us, path, bytes,"
        " codec, width, height, fragment_index, state) VALUES (1, 1, 100, 150, 0, 'p', 0, 'vp9',"
        " 1, 1, x'00', 'open')",
        "INSERT INTO segments (stream_id, run_id, start_us, end_us, media_duration_us, path, bytes,"
        " codec, width, height, fragment_index, state) VALUES (1, 1, 100, 150, 0, 'p', 0, 'h264',"
        " 1, 1, x'00', 'done')",
        "INSERT INTO segments (stream_id, run_id, start_us, end_us, media_duration_us, path, bytes,"
        " codec, width, height, fragment_index, state) VALUES (1, 99, 100, 150, 0, 'p', 0, 'h264',"
        " 1, 1, x'00', 'open')",
    ],
    ids=[
        "camera-slug",
        "enabled-bool",
        "stream-name",
        "end-before-start",
        "codec",
        "state",
        "run-fk",
    ],
)
def test_schema_refuses_rows_that_break_the_rules(tmp_path: Path, sql: str) -> None:
    cat = Catalog(tmp_path / "c.db")
    cat.upsert_camera("ok", "Ok", {"main": ("rtsp://h/1", True)}, now_us=1)
    cat.begin_run(cat.stream_id("ok", "main"), 1)
    with pytest.raises(sqlite3.IntegrityError), cat.transaction() as c:
        c.execute(sql)


def _merge(spans: list[tuple[int, int]], start: int, end: int, res: int) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for a, b in spans:
        if b <= start or a >= end:
            continue
        s, e = max(a, start), min(b, end)
        if out and a - out[-1][2] <= res:  # gap measured between whole segments
            out[-1][1], out[-1][2] = max(out[-1][1], e), b
        else:
            out.append([s, e, b])
    return [(s, e) for s, e, _ in out]


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.tuples(st.integers(0, 50), st.integers(1, 40)), min_size=0, max_size=30),
    window=st.tuples(st.integers(0, 1500), st.integers(1, 1500)),
    res=st.integers(0, 30),
)
def test_recorded_ranges_match_a_plain_merge(
    tmp_path_factory: pytest.TempPathFactory, gaps, window, res
) -> None:
    cat = Catalog(tmp_path_factory.mktemp("rr") / "c.db")
    cat.upsert_camera("c", "C", {"main": ("rtsp://h/1", True)}, now_us=1)
    sid = cat.stream_id("c", "main")
    run = cat.begin_run(sid, 1)
    t, spans = 1000, []
    for gap, length in gaps:
        t += gap
        spans.append((t, t + length))
        t += length
    with cat.transaction() as c:
        for i, (a, b) in enumerate(spans):
            c.execute(
                "INSERT INTO segments (stream_id, run_id, start_us, end_us, media_duration_us,"
                " path, bytes, codec, width, height, fragment_index, state) VALUES"
                " (?, ?, ?, ?, 0, ?, 0, 'h264', 1, 1, x'00', 'closed')",
                (sid, run, a, b, f"p{i}"),
            )
    start = 1000 + window[0]
    end = start + window[1]
    assert cat.recorded_ranges(sid, start, end, res) == _merge(spans, start, end, res)
    cat.close()


def _counted(cat: Catalog) -> dict[tuple[str, str], tuple[int, int]]:
    """Segments and bytes per stream by a full scan: what the kept totals must equal."""
    rows = cat._all(
        "SELECT st.camera_id, st.name, count(*), sum(s.bytes) FROM segments s"
        " JOIN streams st ON st.id = s.stream_id GROUP BY s.stream_id"
    )
    return {(c, n): (k, b) for c, n, k, b in rows}


def _kept(cat: Catalog) -> dict[tuple[str, str], tuple[int, int]]:
    return {
        (t.camera_id, t.stream): (t.segments, t.bytes) for t in cat.stream_totals() if t.segments
    }


def _segment(sid: int, run: int, i: int, nbytes: int) -> SegmentRow:
    start = 1_000_000 + i * 10_000
    return SegmentRow(0, sid, run, start, start + 5_000, 5_000, f"s{i}.mp4.part", nbytes, 1,
                      "h264", 64, 64, b"\0", "open")  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["add", "grow", "close", "delete", "retain", "reopen"]),
            st.integers(0, 1),
            st.integers(0, 10**9),
        ),
        max_size=40,
    )
)
def test_storage_totals_equal_the_real_sum(tmp_path_factory: pytest.TempPathFactory, ops) -> None:
    """Kept by triggers through adds, growth, closes, deletes, retention and reopening."""
    path = tmp_path_factory.mktemp("tot") / "c.db"
    cat = Catalog(path)
    for cam in ("a", "b"):
        cat.upsert_camera(cam, cam, {"main": ("rtsp://h/1", True)}, now_us=1)
    sids = [cat.stream_id("a", "main"), cat.stream_id("b", "main")]
    runs = [cat.begin_run(s, 1) for s in sids]
    n = 0
    for op, which, value in ops:
        mine = [s for s in cat.segments() if s.stream_id == sids[which]]
        if op == "add":
            cat.insert_segment(_segment(sids[which], runs[which], n, value))
            n += 1
        elif op in ("grow", "close") and mine:
            s = mine[value % len(mine)]
            cat.update_segment(s.id, start_us=s.start_us, end_us=s.end_us,
                               media_duration_us=s.media_duration_us, bytes_=value,
                               frames=s.frames + 1, fragment_index=s.fragment_index,
                               state="closed" if op == "close" else s.state)  # fmt: skip
        elif op == "delete" and mine:
            cat.delete_segment(mine[value % len(mine)].id)
        elif op == "retain":
            cat.move_to_garbage(cat.deletable_segments(limit=1 + value % 3), "volume-bytes", 1)
        elif op == "reopen":
            cat.close()
            cat = Catalog(path)
        assert _kept(cat) == _counted(cat), op
        assert cat.total_bytes() == sum(b for _, b in _counted(cat).values())
    assert cat.recount_totals() == []
    cat.close()


def test_totals_are_seeded_from_an_older_catalog_and_repaired_by_check(tmp_path: Path) -> None:
    """A catalog made before the totals existed gets them from its segments once, at migration;
    ``recount_totals`` finds and repairs totals that no longer match (a hand edit)."""
    path = tmp_path / "c.db"
    conn = sqlite3.connect(path)
    for version, script in enumerate(MIGRATIONS[:5]):  # as 0.1.0 left it: before the totals (6)
        conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {version + 1}")
    conn.executescript(
        "INSERT INTO cameras VALUES ('a', 'A', 1, NULL, 'api', 1, 1);"
        "INSERT INTO streams VALUES (1, 'a', 'main', 'rtsp://h/1', 1);"
        "INSERT INTO runs VALUES (1, 1, 1, NULL, NULL);"
        "INSERT INTO segments VALUES (1, 1, 1, 10, 20, 10, 'x.mp4', 700, 1, 'h264', 8, 8, x'00',"
        " 'closed'), (2, 1, 1, 20, 30, 10, 'y.mp4', 300, 1, 'h264', 8, 8, x'00', 'closed');"
    )
    conn.close()
    cat = Catalog(path)
    assert _kept(cat) == {("a", "main"): (2, 1000)} == _counted(cat)
    cat._conn.execute("UPDATE stream_totals SET bytes = 5")
    assert cat.recount_totals() == ["stream 1: kept (2, 5), counted (2, 1000) (segments, bytes)"]
    assert cat.recount_totals(repair=True) and cat.recount_totals() == []
    assert cat.total_bytes() == 1000
    cat.close()


def test_check_reports_the_catalogs_own_health(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.db")
    cat.upsert_camera("a", "A", {"main": ("rtsp://h/1", True)}, now_us=1)
    clean = inspect_catalog(cat)
    assert clean.findings == [] and clean.rows["cameras"] == 1 and clean.rows["streams"] == 1
    assert set(clean.rows) >= {"segments", "stream_totals", "layouts"}
    assert {"audit_log_append_only", "stream_totals_insert", "stream_totals_delete"} <= TRIGGERS
    cat._conn.executescript(
        "DROP TRIGGER stream_totals_grow; CREATE TABLE junk (x);"
        "PRAGMA foreign_keys = OFF; INSERT INTO streams (camera_id, name, url)"
        " VALUES ('gone', 'main', 'rtsp://h/2'); PRAGMA foreign_keys = ON;"
    )
    found = {(f.kind, f.detail) for f in inspect_catalog(cat).findings}
    assert found == {
        ("catalog-not-strict", "table junk"),
        ("catalog-trigger-missing", "stream_totals_grow"),
        ("catalog-foreign-key", "streams row 2 refers to a missing cameras row"),
    }
    cat.close()


def test_analytics_settings_and_zones_round_trip(tmp_path: Path) -> None:
    """The config-like tables written through sqlite-utils read back as written, replace
    whole rows, keep their JSON columns valid for the CHECKs, and leave no stray table."""
    cat = Catalog(tmp_path / "c.db")
    tables = set(cat.db.table_names())
    db = AnalyticsCatalog(cat)
    assert db.settings("a") is None and db.all_settings() == {}
    first = AnalyticsSettings("a", enabled=False, stream="main", fps=2, labels=("person",))
    db.set_settings(first, 1)
    db.set_settings(AnalyticsSettings("b", min_score=0.6), 1)
    assert db.settings("a") == first and set(db.all_settings()) == {"a", "b"}
    changed = AnalyticsSettings("a", fps=7.5, labels=("car", "bus"))
    db.set_settings(changed, 2)
    assert db.settings("a") == changed
    zone = ZoneRow("a", "door", "zone", "Door", ((0.1, 0.1), (0.9, 0.1), (0.5, 0.9)), ("person",))
    line = ZoneRow("a", "gate", "line", "Gate", ((0.0, 0.5), (1.0, 0.5)), min_dwell_us=5)
    db.put_zone(line, 1)
    db.put_zone(zone, 1)
    db.put_zone(ZoneRow("b", "door", "zone", "B", zone.points), 1)
    assert db.zones("a") == [zone, line] and len(db.zones()) == 3
    moved = ZoneRow("a", "door", "zone", "Door 2", ((0.2, 0.2), (0.8, 0.2), (0.5, 0.7)))
    db.put_zone(moved, 2)
    assert db.zones("a") == [moved, line]
    assert db.delete_zone("a", "door") and not db.delete_zone("a", "door")
    assert db.zones("a") == [line]
    assert cat._one("SELECT labels, updated_us FROM analytics WHERE camera_id = 'a'") == (
        '["car", "bus"]',
        2,
    )
    assert set(cat.db.table_names()) == tables
    cat.close()
