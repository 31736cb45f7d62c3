"""The two programs as a user starts them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from server.catalog import Catalog
from server.catalog.analytics import AnalyticsCatalog
from server.datadir import DataDir
from tests.conftest import ROOT, START_S, wait_until


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False,
    )  # fmt: skip


def test_demo_records_with_zero_setup(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # zero setup but the ports: any free ones, so that the test needs no quiet machine (the
    # defaults may be taken by a demo or another test run), and no advertising
    config = tmp_path / "ports.toml"
    config.write_text(
        '[server]\nlisten = "127.0.0.1:0"\ndiscovery = false\n[nats]\nlisten = "127.0.0.1:0"\n'
    )
    log_path = tmp_path / "server.log"  # a file: a pipe nobody reads fills and blocks it
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "--data-dir", str(data), "--config", str(config),
             "--demo", "1"],
            stdout=subprocess.DEVNULL, stderr=log_file, cwd=ROOT,
        )  # fmt: skip
    try:

        def recording() -> bool:
            if not (data / "catalog.db").exists():
                return False
            cat = Catalog(data / "catalog.db")
            try:
                return {s.stream_id for s in cat.segments() if s.frames > 0} == {1, 2}
            finally:
                cat.close()

        wait_until(recording, START_S, "demo camera main and sub recording")

        def people() -> bool:
            cat = Catalog(data / "catalog.db")
            try:
                events = AnalyticsCatalog(cat).events(0, 2**62, cameras=["demo1"], kinds=["object"])
                return any(e.label == "person" for e in events)
            finally:
                cat.close()

        # demo camera 1 is real footage: the default analytics find the people walking in it
        wait_until(people, START_S, "a person event on demo camera 1", poll=1)
        busy = _run("check", "--data-dir", str(data))
        assert busy.returncode == 2 and "in use" in busy.stderr, "check refuses a live data dir"
        proc.terminate()
        rc = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = log_path.read_text(errors="replace")
    assert rc == 0 and "stopped cleanly" in log, log[-3000:]
    cat = Catalog(data / "catalog.db")
    segs = cat.segments()
    assert segs and all(s.state == "closed" for s in segs)
    assert {(s.width, s.height) for s in segs} == {(768, 576), (384, 288)}  # vtest, and half
    cat.close()
    ok = _run("check", "--data-dir", str(data))
    assert ok.returncode == 0 and "0 problems" in ok.stdout, ok.stdout + ok.stderr


def test_bad_config_and_missing_catalog_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[recording]\nsegment_secs = 1\n")
    r = _run("--data-dir", str(tmp_path / "d"), "--config", str(bad))
    assert r.returncode == 2 and "[recording] segment_secs: unknown key" in r.stderr
    r = _run("check", "--data-dir", str(tmp_path / "empty"))
    assert r.returncode == 2 and "no catalog" in r.stderr


def test_a_bad_config_value_is_one_line_and_nothing_starts(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\ndiscovery = false\n[recording]\nsegment_seconds = "30"\n')
    data = tmp_path / "d"
    r = _run("--data-dir", str(data), "--config", str(bad))
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == [
        f"vigia-server: {bad}: [recording] segment_seconds: expected a number, got a string"
    ], r.stderr
    assert not data.exists(), "the recorder started (made its data directory)"


def test_check_finds_and_repairs_wrong_storage_totals(tmp_path: Path) -> None:
    cat = Catalog(DataDir(tmp_path).catalog)
    cat.upsert_camera("a", "A", {"main": ("rtsp://h/1", True)}, now_us=1)
    with cat.transaction() as c:  # what a hand edit (or a bug) could leave
        c.execute("INSERT INTO stream_totals (stream_id, segments, bytes) VALUES (1, 1, 99)")
    cat.close()
    r = _run("check", "--data-dir", str(tmp_path))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "catalog-totals: stream 1: kept (1, 99), counted (0, 0)" in r.stdout
    assert "catalog schema" in r.stdout and "1 cameras, 0 segments" in r.stdout
    r = _run("check", "--repair", "--data-dir", str(tmp_path))
    assert r.returncode == 0 and "(repaired)" in r.stdout, r.stdout + r.stderr
    r = _run("check", "--data-dir", str(tmp_path))
    assert r.returncode == 0 and "0 problems" in r.stdout, r.stdout + r.stderr


def test_data_dir_lock_is_exclusive(tmp_path: Path) -> None:
    d = DataDir(tmp_path)
    Catalog(d.catalog).close()
    fd = d.lock()
    try:
        r = _run("check", "--data-dir", str(tmp_path))
        assert r.returncode == 2 and "in use by another vigia-server" in r.stderr
    finally:
        os.close(fd)


def test_help_names_both_programs() -> None:
    r = _run("--help")
    assert r.returncode == 0 and "check" in r.stdout
    r = _run("run", "--help")
    assert "--demo" in r.stdout and "--data-dir" in r.stdout
    ws = subprocess.run([sys.executable, "-m", "ui.main", "--help"], capture_output=True,
                        text=True, timeout=60, cwd=ROOT, check=False)  # fmt: skip
    assert ws.returncode == 0 and "--server" in ws.stdout and "--wall" in ws.stdout


def test_server_id_is_stable_and_subject_safe(tmp_path: Path) -> None:
    d = DataDir(tmp_path)
    sid = d.server_id()
    assert len(sid) == 12 and sid.isalnum() and sid == sid.lower()
    assert DataDir(tmp_path).server_id() == sid
    (tmp_path / "server-id").write_text("garbage.with.dots\n")
    assert DataDir(tmp_path).server_id() != "garbage.with.dots"
