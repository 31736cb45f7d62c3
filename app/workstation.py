"""Everything a workstation window needs, wired together once and without widgets.

One ``AsyncRunner`` carries all network I/O; ``Sessions`` keep the recorders logged in and feed
one ``CameraTree``; ``Discovery`` finds recorders (saved ones with a kept password are logged
in to as they appear). Live tiles, overlays, fetchers and timelines are made here so that they
all share the runner, the byte cache and the user's decoder preference, and so that ``close``
can stop whatever a window forgot. The UI marshals the Signals to its own thread.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from app.api import ApiError
from app.cameratree import CameraTree
from app.discovery import Discovery, ServerEntry, normalize_url
from app.live.tile import LiveTile, TileConfig
from app.loop import AsyncRunner
from app.overlays import LiveOverlays
from app.playback.fetcher import ByteCache, SegmentFetcher
from app.session import Session, Sessions
from app.settings import SavedServer, Settings
from app.timeline import TimelineModel

log = logging.getLogger(__name__)

__all__ = ["Workstation", "decoder_prefer", "tile_config"]

# Preferences.tile_stream_threshold_px is a width; LiveTile switches on height (16:9 views)
_ASPECT = 9 / 16


def decoder_prefer(decoder: str) -> list[str] | None:
    """Preferences.decoder -> LiveTile's ``decoder_prefer`` ('auto': every hardware kind)."""
    return None if decoder == "auto" else [decoder]


def tile_config(threshold_px: int) -> TileConfig:
    """Tiles at least ``threshold_px`` wide (16:9) show the main stream."""
    return TileConfig(main_min_height=max(1, round(threshold_px * _ASPECT)))


class Workstation:
    """Everything a window needs, without widgets: runner, discovery, sessions, tree, settings."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        discovery_interfaces: Sequence[str] | None = None,
        start_discovery: bool = True,
    ) -> None:
        """``discovery_interfaces``: zeroconf's interfaces (None: all; tests pass
        ``["127.0.0.1"]``). Saved servers marked auto-connect with a kept password are logged
        in to in the background."""
        self.settings = settings if settings is not None else Settings()
        self.runner = AsyncRunner().start()
        self.tree = CameraTree()
        self.sessions = Sessions(self.runner, self.tree)
        self.cache = ByteCache()
        self._lock = threading.Lock()
        self._overlays: dict[tuple[str, str], LiveOverlays] = {}
        self._fetchers: dict[tuple[str, str, str], SegmentFetcher] = {}
        self._tiles: weakref.WeakSet[LiveTile] = weakref.WeakSet()
        self._unfollow: Any = None
        self.sessions.removed.connect(self._forget_server)
        self._closed = False
        self.discovery: Discovery | None = None
        if start_discovery:
            kwargs = {} if discovery_interfaces is None else {"interfaces": discovery_interfaces}
            self.discovery = Discovery(self.runner, **kwargs)
            try:
                self.discovery.start()
            except OSError as exc:  # no multicast-capable interface: manual addresses still work
                log.warning("zeroconf discovery unavailable: %s", exc)
                self.discovery = None
        for saved in self.settings.servers:
            if saved.auto_connect and saved.user:
                password = self.settings.password(saved)
                if password is not None:
                    self.sessions.connect_later(saved.base_url, saved.user, password)
        if self.discovery is not None:
            self._unfollow = self.sessions.follow(self.discovery, self._credentials)

    def _credentials(self, entry: ServerEntry) -> tuple[str, str] | None:
        """A saved recorder's login; for a recorder not saved itself, that of a saved recorder
        of its site (a saved site reconnects all its recorders by itself)."""
        saved = self.settings.server(entry.server_id) if entry.server_id else None
        saved = saved or self.settings.server(entry.base_url)
        if saved is None and entry.site:
            saved = next(
                (s for s in self.settings.servers if s.site == entry.site and s.auto_connect),
                None,
            )
        if saved is None or not saved.user or not saved.auto_connect:
            return None
        password = self.settings.password(saved)
        return None if password is None else (saved.user, password)

    # --- recorders --------------------------------------------------------------------------

    def connect(
        self,
        base_url: str,
        user: str,
        password: str,
        timeout: float = 10,
        *,
        remember: bool = False,
    ) -> Session:
        """Log in now (ApiError when refused or unreachable, ValueError for a bad address).

        ``remember`` saves the server (and the password, when a keyring can keep it)."""
        url = normalize_url(base_url)
        session = self.sessions.connect(url, user, password, timeout)
        if self.discovery is not None:
            self.discovery.identify(url, session.server_id, session.name, site=session.site)
        if remember:
            saved = SavedServer(
                url, session.name, session.server_id, user, auto_connect=True, site=session.site
            )
            self.settings.save_server(saved, password)
        return session

    def session(self, server_id: str) -> Session | None:
        return self.sessions.get(server_id)

    def _require(self, server_id: str) -> Session:
        session = self.sessions.get(server_id)
        if session is None:
            raise KeyError(f"not connected to recorder {server_id!r}")
        return session

    # --- per camera -------------------------------------------------------------------------

    def live_tile(self, server_id: str, camera_id: str, stream: str = "auto") -> LiveTile:
        """A started live tile; the caller stops it (``close`` stops any left running)."""
        session = self._require(server_id)
        prefs = self.settings.preferences
        camera = next((c for c in session.cameras if c.get("id") == camera_id), None)
        # a camera without a sub stream shows its main stream in small tiles too
        have = tuple(
            s["name"] for s in (camera or {}).get("streams", ()) if s.get("name") in ("main", "sub")
        )
        tile = LiveTile(
            session,
            self.runner,
            server_id,
            camera_id,
            stream,
            decoder_prefer(prefs.decoder),
            streams=have or ("main", "sub"),
            config=tile_config(prefs.tile_stream_threshold_px),
        )
        tile.start()
        with self._lock:
            self._tiles.add(tile)
        return tile

    def overlays(self, server_id: str, camera_id: str) -> LiveOverlays:
        """The camera's live detections, subscribed once and shared by every view of it."""
        session = self._require(server_id)
        key = (server_id, camera_id)
        with self._lock:
            found = self._overlays.get(key)
            if found is not None:
                return found
            overlays = self._overlays[key] = LiveOverlays(
                session, self.runner, server_id, camera_id
            )
        try:
            overlays.start()
        except Exception:
            with self._lock:
                self._overlays.pop(key, None)
            raise
        return overlays

    def fetcher(self, server_id: str, camera_id: str, stream: str = "main") -> SegmentFetcher:
        """Recorded media of one camera stream; shared, with one byte cache for all."""
        session = self._require(server_id)
        key = (server_id, camera_id, stream)
        with self._lock:
            found = self._fetchers.get(key)
            if found is None:
                found = self._fetchers[key] = SegmentFetcher(
                    self.runner, session.api, camera_id, stream, self.cache
                )
            return found

    def timeline(self, server_id: str, camera_id: str) -> TimelineModel:
        """A new timeline model of the camera's main stream (its own window and view)."""
        session = self._require(server_id)
        return TimelineModel(
            self.runner,
            session.api,
            camera_id,
            "main",
            fetcher=self.fetcher(server_id, camera_id, "main"),
        )

    # --- end --------------------------------------------------------------------------------

    def _forget_server(self, session: Session) -> None:
        """A logged-out recorder's overlays and fetchers hold its old API client: drop them,
        so the next login makes new ones. Overlays unsubscribe on a thread of their own, since
        this may run on the network loop, which their stop waits for."""
        with self._lock:
            gone = [k for k in self._overlays if k[0] == session.server_id]
            overlays = [self._overlays.pop(k) for k in gone]
            for k in [k for k in self._fetchers if k[0] == session.server_id]:
                del self._fetchers[k]
        if overlays:
            threading.Thread(
                target=lambda: [o.stop() for o in overlays], name="overlays-stop", daemon=True
            ).start()

    def close(self) -> None:
        """Stop tiles and overlays left running, log out, stop discovery and the runner."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            tiles = list(self._tiles)
            overlays = list(self._overlays.values())
            self._overlays.clear()
            self._fetchers.clear()
        for tile in tiles:
            tile.stop()
        for overlay in overlays:
            overlay.stop()
        if self._unfollow is not None:
            self._unfollow()
        try:
            self.sessions.close()
        except (ApiError, TimeoutError) as exc:
            log.warning("closing sessions: %s", exc)
        if self.discovery is not None:
            try:
                self.discovery.stop()
            except (OSError, TimeoutError) as exc:
                log.warning("stopping discovery: %s", exc)
        self.runner.stop()

    def __enter__(self) -> Workstation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
