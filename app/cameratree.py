"""Several recorders' cameras as one tree: (sites →) recorders → cameras, with live status.

Recorders of one site (``[site] name``, docs/design/site.md) are grouped under it by ``sites()``;
a recorder without a site stands on its own, as before sites existed.

Fed by ``Sessions`` (``GET /cameras`` after each login, and the JSON status messages of
``vigia.<sid>.status``); read by the UI through ``recorders()``/``filtered()`` and the signals.
Cameras are keyed by (server_id, camera_id): two recorders may both have a camera "door".
Thread-safe: updates come from the network loop, reads from the UI thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from app.signals import Signal

CameraKey = tuple[str, str]  # (server_id, camera_id)


@dataclass(frozen=True)
class StreamState:
    name: str  # 'main' | 'sub'
    state: str  # 'connecting' | 'online' | 'offline' | 'error' | 'stopped'
    reason: str = ""
    since_us: int = 0


@dataclass(frozen=True)
class CameraNode:
    server_id: str
    camera_id: str
    name: str
    enabled: bool = True
    streams: tuple[StreamState, ...] = ()

    @property
    def key(self) -> CameraKey:
        return (self.server_id, self.camera_id)

    @property
    def status(self) -> str:
        """One word for the tree: the main stream's state (the one recorded), else the best."""
        if not self.enabled:
            return "disabled"
        states = {s.name: s.state for s in self.streams}
        if "main" in states:
            return states["main"]
        return next(iter(states.values()), "unknown")

    @property
    def reason(self) -> str:
        return next((s.reason for s in self.streams if s.name == "main"), "")

    def stream(self, name: str) -> StreamState | None:
        return next((s for s in self.streams if s.name == name), None)


@dataclass(frozen=True)
class RecorderNode:
    server_id: str
    name: str
    state: str  # the session's: 'online', 'reconnecting', ...
    cameras: tuple[CameraNode, ...] = field(default=())
    site: str = ""  # the site it belongs to; "" for a recorder on its own


@dataclass(frozen=True)
class SiteNode:
    """A site's recorders, in the tree's order; ``name`` "" holds one recorder on its own."""

    name: str
    recorders: tuple[RecorderNode, ...]


def group_sites(recorders: Iterable[RecorderNode]) -> list[SiteNode]:
    """Recorders grouped by site, in the order given (a site goes where its first recorder
    stood); each recorder without a site is a group of its own, named ""."""
    out: list[SiteNode] = []
    index: dict[str, int] = {}
    for rec in recorders:
        if not rec.site:
            out.append(SiteNode("", (rec,)))
            continue
        at = index.get(rec.site)
        if at is None:
            index[rec.site] = len(out)
            out.append(SiteNode(rec.site, (rec,)))
        else:
            out[at] = SiteNode(rec.site, (*out[at].recorders, rec))
    return out


def camera_from_json(server_id: str, data: dict[str, Any]) -> CameraNode:
    """A camera of ``GET /cameras``."""
    streams = tuple(
        StreamState(
            name=str(s.get("name", "")),
            state=str(s.get("state", "unknown")),
            reason=str(s.get("reason") or ""),
        )
        for s in data.get("streams") or ()
        if isinstance(s, dict)
    )
    cid = str(data["id"])
    return CameraNode(
        server_id=server_id,
        camera_id=cid,
        name=str(data.get("name") or cid),
        enabled=bool(data.get("enabled", True)),
        streams=streams,
    )


def _matches(text: str, *fields: str) -> bool:
    return any(text in f.casefold() for f in fields)


class CameraTree:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recorders: dict[str, RecorderNode] = {}
        # any structural or status change (the UI may simply re-read); then finer signals
        self.changed: Signal[CameraTree] = Signal("cameratree.changed")
        self.recorder_changed: Signal[RecorderNode] = Signal("cameratree.recorder_changed")
        self.recorder_removed: Signal[str] = Signal("cameratree.recorder_removed")
        self.camera_changed: Signal[CameraNode] = Signal("cameratree.camera_changed")

    # --- reading ----------------------------------------------------------------------------

    def recorders(self) -> list[RecorderNode]:
        with self._lock:
            return sorted(self._recorders.values(), key=lambda r: (r.name.casefold(), r.server_id))

    def sites(self, text: str = "") -> list[SiteNode]:
        """``filtered(text)`` grouped by site (see ``group_sites``); a site's name matching
        ``text`` keeps all its recorders."""
        needle = text.strip().casefold()
        if not needle:
            return group_sites(self.recorders())
        shown = {r.server_id: r for r in self.filtered(text)}
        for rec in self.recorders():
            if rec.site and needle in rec.site.casefold():
                shown[rec.server_id] = rec  # all its cameras
        return group_sites(sorted(shown.values(), key=lambda r: (r.name.casefold(), r.server_id)))

    def recorder(self, server_id: str) -> RecorderNode | None:
        with self._lock:
            return self._recorders.get(server_id)

    def cameras(self) -> list[CameraNode]:
        return [c for r in self.recorders() for c in r.cameras]

    def camera(self, key: CameraKey) -> CameraNode | None:
        rec = self.recorder(key[0])
        return next((c for c in rec.cameras if c.camera_id == key[1]), None) if rec else None

    def filtered(self, text: str) -> list[RecorderNode]:
        """Recorders with the cameras whose name or id contains ``text`` (any case); a recorder
        whose name matches keeps all its cameras; recorders left with none are dropped."""
        needle = text.strip().casefold()
        if not needle:
            return self.recorders()
        out = []
        for rec in self.recorders():
            if _matches(needle, rec.name, rec.server_id):
                out.append(rec)
                continue
            cams = tuple(c for c in rec.cameras if _matches(needle, c.name, c.camera_id))
            if cams:
                out.append(replace(rec, cameras=cams))
        return out

    # --- updating ---------------------------------------------------------------------------

    def set_recorder(self, server_id: str, name: str, state: str, site: str = "") -> None:
        with self._lock:
            old = self._recorders.get(server_id)
            new = (
                RecorderNode(server_id, name, state, site=site)
                if old is None
                else replace(old, name=name, state=state, site=site)
            )
            if new == old:
                return
            self._recorders[server_id] = new
        self.recorder_changed.emit(new)
        self.changed.emit(self)

    def set_cameras(self, server_id: str, cameras: Iterable[dict[str, Any]]) -> None:
        """Replace a recorder's cameras with a fresh ``GET /cameras`` answer."""
        nodes = tuple(
            sorted(
                (camera_from_json(server_id, c) for c in cameras if isinstance(c, dict)),
                key=lambda c: (c.name.casefold(), c.camera_id),
            )
        )
        with self._lock:
            old = self._recorders.get(server_id) or RecorderNode(server_id, server_id, "online")
            if old.cameras == nodes:
                return
            new = replace(old, cameras=nodes)
            self._recorders[server_id] = new
        self.recorder_changed.emit(new)
        self.changed.emit(self)

    def apply_status(self, server_id: str, message: dict[str, Any]) -> CameraNode | None:
        """A ``vigia.<sid>.status`` message (``{"type": "stream", "camera", "stream", "state",
        "reason", "since_us"}``); others are ignored. Returns the changed camera, if any."""
        if message.get("type") != "stream":
            return None
        cid, stream = str(message.get("camera", "")), str(message.get("stream", ""))
        fresh = StreamState(
            name=stream,
            state=str(message.get("state", "unknown")),
            reason=str(message.get("reason") or ""),
            since_us=int(message.get("since_us") or 0),
        )
        with self._lock:
            rec = self._recorders.get(server_id)
            if rec is None:
                return None
            cams = list(rec.cameras)
            idx = next((i for i, c in enumerate(cams) if c.camera_id == cid), None)
            if idx is None:
                return None  # a camera we have not listed (yet): the next refresh brings it
            cam = cams[idx]
            old = cam.stream(stream)
            if old is not None and old.since_us > fresh.since_us:
                return None  # an older message overtaken by a newer one
            if old is not None and (old.state, old.reason) == (fresh.state, fresh.reason):
                return None
            others = tuple(s for s in cam.streams if s.name != stream)
            streams = tuple(sorted((*others, fresh), key=lambda s: s.name))
            cams[idx] = new_cam = replace(cam, streams=streams)
            self._recorders[server_id] = replace(rec, cameras=tuple(cams))
        self.camera_changed.emit(new_cam)
        self.changed.emit(self)
        return new_cam

    def remove_recorder(self, server_id: str) -> None:
        with self._lock:
            if self._recorders.pop(server_id, None) is None:
                return
        self.recorder_removed.emit(server_id)
        self.changed.emit(self)
