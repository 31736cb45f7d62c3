"""The catalog schema: migrations, the rules it enforces, and its documentation."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

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
