"""The workstation's saved state: recorders, user names, preferences; passwords in the keyring.

One JSON file, ``settings.json``, in the user's config dir (platformdirs; ``VIGIA_CONFIG_DIR``
or a path argument overrides it), written with ``server.protocol.files.write_atomic`` (temp file,
fsync, rename, directory fsync) so a crash never leaves half a file. Passwords never go to that
file: they go to the OS keyring when a usable backend exists, and are otherwise not kept at all
(the user types them again), which is logged.
An unreadable file is moved aside, not overwritten, so nothing the user had is lost.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import keyring
import keyring.errors
import platformdirs
from keyring.backend import KeyringBackend

from app.discovery import normalize_url
from app.signals import Signal
from server.protocol.files import move_aside, write_atomic

log = logging.getLogger(__name__)

APP_NAME = "vigia"
FILE_NAME = "settings.json"
VERSION = 1
KEYRING_SERVICE = "vigia"
DECODERS = ("auto", "software", "cuda", "vaapi", "qsv", "d3d11va", "videotoolbox")


def config_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The argument, else ``$VIGIA_CONFIG_DIR``, else the platform's user config dir."""
    if path is not None:
        return Path(path)
    env = os.environ.get("VIGIA_CONFIG_DIR")
    return Path(env) if env else Path(platformdirs.user_config_dir(APP_NAME))


@dataclass
class Preferences:
    language: str = ""  # "" follows the system; else a code like "en", "pt_BR"
    decoder: str = "auto"  # 'auto' (hardware when offered) or one of DECODERS
    tile_stream_threshold_px: int = 640  # tiles at least this wide show the main stream

    def validate(self) -> None:
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder {self.decoder!r} is not one of {', '.join(DECODERS)}")
        if not isinstance(self.tile_stream_threshold_px, int) or not (
            0 < self.tile_stream_threshold_px <= 16384
        ):
            raise ValueError("tile_stream_threshold_px must be an integer in 1..16384")
        if not isinstance(self.language, str) or len(self.language) > 16:
            raise ValueError(f"language {self.language!r} is not a language code")


@dataclass(frozen=True)
class SavedServer:
    base_url: str
    name: str = ""
    server_id: str = ""
    user: str = ""
    auto_connect: bool = True
    site: str = ""  # the site it belongs to: its other recorders log in with the same user

    @property
    def secret_key(self) -> str:
        """The keyring's user name for this server's password."""
        return f"{self.user}@{self.server_id or self.base_url}"


def _usable(backend: KeyringBackend) -> bool:
    from keyring.backends import chainer, fail, null

    if isinstance(backend, fail.Keyring | null.Keyring):
        return False
    if isinstance(backend, chainer.ChainerBackend):
        return bool(backend.backends)
    return True


class SecretStore:
    """Passwords in a keyring backend (the OS's by default); inert when none is usable."""

    def __init__(self, backend: KeyringBackend | None = None, service: str = KEYRING_SERVICE):
        self.backend = backend if backend is not None else keyring.get_keyring()
        self.service = service
        self.available = _usable(self.backend)
        if not self.available:
            log.warning(
                "no usable keyring (%s): passwords are not saved and must be typed again",
                type(self.backend).__module__,
            )

    def get(self, key: str) -> str | None:
        if not self.available:
            return None
        try:
            return self.backend.get_password(self.service, key)
        except keyring.errors.KeyringError as exc:
            log.warning("keyring read failed: %s", exc)
            return None

    def set(self, key: str, secret: str) -> bool:
        """True when kept; False (and logged) when there is nowhere safe to keep it."""
        if not self.available:
            log.info("password for %s not saved: no usable keyring", key)
            return False
        try:
            self.backend.set_password(self.service, key, secret)
            return True
        except keyring.errors.KeyringError as exc:
            log.warning("password for %s not saved: %s", key, exc)
            return False

    def delete(self, key: str) -> None:
        if not self.available:
            return
        try:
            self.backend.delete_password(self.service, key)
        except keyring.errors.PasswordDeleteError:
            pass  # was not there
        except keyring.errors.KeyringError as exc:
            log.warning("could not delete the password for %s: %s", key, exc)


@dataclass
class _Document:
    version: int = VERSION
    preferences: Preferences = field(default_factory=Preferences)
    servers: list[SavedServer] = field(default_factory=list)


def _from_dict(cls: type, data: Any) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


class Settings:
    def __init__(
        self, path: str | os.PathLike[str] | None = None, secrets: SecretStore | None = None
    ) -> None:
        self.dir = config_dir(path)
        self.file = self.dir / FILE_NAME
        self.secrets = secrets if secrets is not None else SecretStore()
        self.preferences = Preferences()
        self.servers: list[SavedServer] = []
        self.changed: Signal[Settings] = Signal("settings.changed")
        self._lock = threading.RLock()
        self.load()

    # --- file -------------------------------------------------------------------------------

    def load(self) -> None:
        """Read the file; a missing one gives defaults, a bad one is moved aside first."""
        with self._lock:
            try:
                text = self.file.read_text(encoding="utf-8")
            except FileNotFoundError:
                return
            try:
                raw = json.loads(text)
                if not isinstance(raw, dict):
                    raise ValueError("not a JSON object")
                prefs = _from_dict(Preferences, raw.get("preferences", {}))
                prefs.validate()
                servers = [_from_dict(SavedServer, s) for s in raw.get("servers", [])]
                for s in servers:
                    normalize_url(s.base_url)
            except (ValueError, TypeError) as exc:
                aside = move_aside(self.file)
                log.error("settings file %s unreadable (%s); kept as %s", self.file, exc, aside)
                return
            self.preferences, self.servers = prefs, servers

    def save(self) -> None:
        with self._lock:
            doc = _Document(preferences=self.preferences, servers=list(self.servers))
            data = json.dumps(asdict(doc), indent=2, sort_keys=True) + "\n"
            write_atomic(self.file, data.encode("utf-8"))
        self.changed.emit(self)

    # --- preferences ------------------------------------------------------------------------

    def set_preferences(self, **changes: Any) -> Preferences:
        """Change some preferences (ValueError for bad values; nothing changes then) and save."""
        with self._lock:
            new = Preferences(**{**asdict(self.preferences), **changes})
            new.validate()
            self.preferences = new
            self.save()
            return new

    # --- servers ----------------------------------------------------------------------------

    def server(self, key: str) -> SavedServer | None:
        """By server id or URL."""
        with self._lock:
            for s in self.servers:
                if key and key == s.server_id:
                    return s
            try:
                url = normalize_url(key)
            except ValueError:
                return None
            return next((s for s in self.servers if s.base_url == url), None)

    def save_server(self, server: SavedServer, password: str | None = None) -> SavedServer:
        """Add or replace (same id or URL) a server; the password goes to the keyring only.

        Returns the server as saved; ``password_saved(server)`` tells whether the keyring kept it.
        """
        server = SavedServer(**{**asdict(server), "base_url": normalize_url(server.base_url)})
        with self._lock:
            old = self.server(server.server_id) if server.server_id else None
            old = old or self.server(server.base_url)
            if old is not None:
                if old.secret_key != server.secret_key and password is None:
                    password = self.secrets.get(old.secret_key)
                if old.secret_key != server.secret_key:
                    self.secrets.delete(old.secret_key)
                self.servers = [server if s is old else s for s in self.servers]
            else:
                self.servers.append(server)
            if password is not None:
                self.secrets.set(server.secret_key, password)
            self.save()
        return server

    def remove_server(self, key: str) -> bool:
        with self._lock:
            old = self.server(key)
            if old is None:
                return False
            self.servers = [s for s in self.servers if s is not old]
            self.secrets.delete(old.secret_key)
            self.save()
            return True

    def password(self, server: SavedServer) -> str | None:
        return self.secrets.get(server.secret_key)

    def password_saved(self, server: SavedServer) -> bool:
        return self.password(server) is not None
