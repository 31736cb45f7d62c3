"""The recorder's data directory: its layout, and the lock that lets one process own it."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from server.protocol.files import write_atomic


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("vigia-server", appauthor=False))


class DataDirBusy(RuntimeError):
    pass


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.db"

    @property
    def recordings(self) -> Path:
        return self.root / "recordings"

    @property
    def lost_found(self) -> Path:
        """Files found on disk that the catalog does not know: kept, never deleted."""
        return self.root / "lost+found"

    @property
    def clips(self) -> Path:
        return self.root / "demo-clips"

    def create(self) -> None:
        """Make the layout, private to the recorder's user (0700): the catalog holds password
        hashes and camera credentials, the recordings are evidence (issue 19)."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.recordings.mkdir(mode=0o700, exist_ok=True)
        for path in (self.root, self.recordings):
            os.chmod(path, 0o700)  # also a data dir made by an older version
        self.private_files()

    def private_files(self) -> None:
        """0600 for the catalog and its WAL files (SQLite creates them with the umask)."""
        for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(self.root / name, 0o600)

    def server_id(self) -> str:
        """This recorder's stable id (12 hex digits): in NATS subjects, discovery and exports.

        Made once and kept in the data dir, so it survives restarts and moves with the data.
        """
        path = self.root / "server-id"
        try:
            sid = path.read_text().strip()
        except FileNotFoundError:
            sid = ""
        if len(sid) == 12 and all(c in "0123456789abcdef" for c in sid):
            return sid
        sid = secrets.token_hex(6)
        write_atomic(path, f"{sid}\n".encode())  # durable: the id names this recorder for good
        return sid

    def lock(self) -> int:
        """Take the exclusive lock (released by the kernel when the process dies, kill -9 too)."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.root / "vigia.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise DataDirBusy(
                    f"{self.root} is in use by another vigia-server process"
                ) from None
            raise
        try:  # the pid is for people; a full volume must not stop the start
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass
        return fd
