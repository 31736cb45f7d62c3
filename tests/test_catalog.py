"""The catalog schema: migrations, the rules it enforces, and its documentation."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.catalog import Catalog
from server.catalog.catalog import CatalogError
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
