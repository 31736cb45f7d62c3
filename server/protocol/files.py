"""Durable file-system steps shared by recorder and workstation: fsync a directory after its
entries change, write a file whole, keep an unreadable file aside (standard library only)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a directory's entry changes (create, rename, unlink) durable.

    Where directories cannot be opened (Windows, for the workstation) this does nothing: the
    rename in ``write_atomic`` is still atomic there, only its durability is the system's.
    """
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def makedirs_durable(path: Path) -> None:
    """Create ``path`` and parents, fsyncing each parent whose entries changed."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            continue
        fsync_dir(d.parent)


def rename_durable(src: Path, dst: Path) -> None:
    os.rename(src, dst)
    fsync_dir(dst.parent)


def unlink_durable(paths: list[Path]) -> None:
    """Unlink files (missing ones are fine) and fsync each directory touched once."""
    dirs = set()
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            continue
        dirs.add(p.parent)
    for d in dirs:
        fsync_dir(d)


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, rename, directory fsync: readers (and a
    restart after a crash) see the old file or the new one, never part of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def create_private(path: Path, data: bytes) -> bool:
    """Write a new private file (0600) whole, or leave the one another process made meanwhile:
    keys are made once and never replaced (the temp file is linked into place, not renamed).
    True if this call made it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
        made = True
    except FileExistsError:
        made = False
    finally:
        tmp.unlink()
    fsync_dir(path.parent)
    return made


def move_aside(path: Path) -> Path:
    """Rename an unreadable file to ``<name>.bad-<unix time>`` so that the next write does not
    destroy what the user had; returns the new path."""
    aside = path.with_name(f"{path.name}.bad-{int(time.time())}")
    path.replace(aside)
    return aside


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in 1 MiB pieces (hashlib releases the GIL on each)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
