"""``vigia-server doctor`` names what is wrong: a dead camera and a full disk, and what works."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.sim.clips import ClipSpec, make_clip
from tests.conftest import ROOT, camera_toml
from tests.helpers import refused_port, small_tmpfs


@pytest.fixture
def full_volume(tmp_path: Path) -> Iterator[Path]:
    """A real 16 MiB file system (tmpfs), filled up to its last blocks."""
    with small_tmpfs(tmp_path, 16) as vol:
        (vol / "data").mkdir()
        with (vol / "ballast").open("wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass  # ENOSPC: full
        yield vol


def doctor(config: Path, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", "doctor", "--config", str(config), "--data-dir",
         str(data)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip


def test_doctor_names_a_dead_camera_and_a_full_disk(
    full_volume: Path, clip_dir: Path, tmp_path: Path
) -> None:
    clip = make_clip(clip_dir / "doctor.mp4", ClipSpec(320, 180, fps=25, seconds=2, label="doc"))
    dead = refused_port()  # nothing listens there while the test runs
    dead_port = dead.__enter__()
    config = tmp_path / "vigia.toml"
    config.write_text(
        camera_toml(
            [("dead", f"rtsp://admin:secret@127.0.0.1:{dead_port}/stream", None),
             ("alive", clip.resolve().as_uri(), None)],
        ).replace("min_free_bytes = 0", "min_free_bytes = 8_000_000")
    )  # fmt: skip
    out = doctor(config, full_volume / "data")
    dead.__exit__(None, None, None)
    lines = out.stdout.splitlines()
    assert out.returncode == 1, out.stdout + out.stderr
    failed = [line for line in lines if line.startswith("FAIL")]
    assert any(
        line.startswith("FAIL camera dead/main") and f"127.0.0.1:{dead_port}" in line
        and "refused" in line for line in failed
    ), out.stdout  # fmt: skip
    assert any(line.startswith("FAIL free space") for line in failed), out.stdout
    assert any(line.startswith("FAIL data dir") for line in failed), out.stdout  # can't write
    assert any(line.startswith("OK   camera alive/main: h264 320x180") for line in lines)
    assert "secret" not in out.stdout, "camera passwords never printed"
    # every failure says what to do
    for i, line in enumerate(lines):
        if line.startswith("FAIL"):
            assert lines[i + 1].strip().startswith("fix: "), line


def test_doctor_passes_on_a_healthy_setup(tmp_path: Path, clip_dir: Path) -> None:
    clip = make_clip(clip_dir / "doctor.mp4", ClipSpec(320, 180, fps=25, seconds=2, label="doc"))
    config = tmp_path / "vigia.toml"
    config.write_text(camera_toml([("alive", clip.resolve().as_uri(), None)]))
    out = doctor(config, tmp_path / "data")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines()[-1] == "all checks passed"
    assert "SKIP archive" in out.stdout


def test_doctor_reports_a_bad_config_as_a_failure(tmp_path: Path) -> None:
    config = tmp_path / "vigia.toml"
    config.write_text("[storage]\nno_such_key = 1\n")
    out = doctor(config, tmp_path / "data")
    assert out.returncode == 1
    assert out.stdout.startswith("FAIL config:") and "no_such_key" in out.stdout, out.stdout


def test_doctor_names_an_unreachable_nats_server(tmp_path: Path) -> None:
    config = tmp_path / "vigia.toml"
    with refused_port() as dead:
        config.write_text(camera_toml([]).replace(
            '[nats]\n', f'[nats]\nurl = "nats://app:secret@127.0.0.1:{dead}"\n'
        ).replace('listen = "127.0.0.1:0"\n[analytics]', "[analytics]"))  # fmt: skip
        out = doctor(config, tmp_path / "data")
    assert out.returncode == 1, out.stdout + out.stderr
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("FAIL nats")]
    assert f"127.0.0.1:{dead}" in line and "refused" in line, line
    assert "secret" not in out.stdout
