"""Detections to draw over a camera's picture, matched to the frame being shown by time.

Live detections arrive on ``vigia.<sid>.ai.<camera>`` a little before or after the frame they
belong to reaches the tile (analysis and display decode separately), so they are buffered by
``ts_us`` and looked up with the shown frame's ``pts_us``: the nearest set within one frame
interval, or nothing (a box from another moment would sit in the wrong place). In playback the
same lookup runs over rows from ``GET /tracks``. Coordinates stay normalised (0..1); the view
scales them.
"""

from __future__ import annotations

import bisect
import concurrent.futures
import json
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from app.loop import AsyncRunner
from app.signals import Signal
from server.protocol.live import ai_subject
from server.protocol.live import events_subject as events_subject  # for ui (no server)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Detection:
    track_id: int
    label: str
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2, normalised


@dataclass(frozen=True, slots=True)
class Detections:
    """Everything detected in one analysed frame."""

    ts_us: int
    camera: str
    objects: tuple[Detection, ...]


def parse_detections(data: bytes | str) -> Detections:
    """One ai message: ``{"ts_us", "camera", "objects": [{track_id, label, score, box}]}``.

    ValueError (with what is wrong) for anything else; nothing half-parsed is returned.
    """
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"detections are not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError("detections must be a JSON object")
    ts_us, camera, objects = doc.get("ts_us"), doc.get("camera"), doc.get("objects")
    if not isinstance(ts_us, int) or isinstance(ts_us, bool):
        raise ValueError(f"ts_us must be an integer, got {ts_us!r}")
    if not isinstance(camera, str):
        raise ValueError(f"camera must be a string, got {camera!r}")
    if not isinstance(objects, list):
        raise ValueError("objects must be a list")
    return Detections(ts_us, camera, tuple(_detection(o) for o in objects))


def _detection(obj: Any) -> Detection:
    if not isinstance(obj, Mapping):
        raise ValueError(f"a detection must be an object, got {obj!r}")
    box = obj.get("box")
    if not isinstance(box, list | tuple) or len(box) != 4:
        raise ValueError(f"box must be [x1, y1, x2, y2], got {box!r}")
    return _make(obj.get("track_id"), obj.get("label"), obj.get("score"), box)


def _make(track_id: Any, label: Any, score: Any, box: Iterable[Any]) -> Detection:
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
        detection = Detection(int(track_id), str(label), float(score), (x1, y1, x2, y2))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad detection ({exc})") from None
    if not (x1 <= x2 and y1 <= y2):
        raise ValueError(f"box corners out of order: {detection.box}")
    return detection


class DetectionBuffer:
    """Detections of one camera ordered by ``ts_us``, the last ``keep_us`` of them.

    Thread-safe: the network loop adds, a view's thread matches. ``added`` fires on the adding
    thread with each new set.
    """

    def __init__(self, keep_us: int = 10_000_000, max_sets: int = 2000) -> None:
        self.keep_us = keep_us
        self.max_sets = max_sets
        self._lock = threading.Lock()
        self._times: list[int] = []
        self._sets: list[Detections] = []
        self.added: Signal[Detections] = Signal("overlays.added")

    def add(self, detections: Detections) -> None:
        with self._lock:
            i = bisect.bisect_right(self._times, detections.ts_us)
            if i and self._times[i - 1] == detections.ts_us:
                self._sets[i - 1] = detections  # a resend replaces
            else:
                self._times.insert(i, detections.ts_us)
                self._sets.insert(i, detections)
            cut = bisect.bisect_left(self._times, self._times[-1] - self.keep_us)
            cut = max(cut, len(self._times) - self.max_sets)
            if cut > 0:
                del self._times[:cut], self._sets[:cut]
        self.added.emit(detections)

    def extend(self, many: Iterable[Detections]) -> None:
        for d in many:
            self.add(d)

    def match(self, pts_us: int, frame_interval_us: int) -> Detections | None:
        """The set nearest to ``pts_us`` if within one frame interval of it, else None."""
        with self._lock:
            times = self._times
            i = bisect.bisect_left(times, pts_us)
            best: int | None = None
            for j in (i - 1, i):
                if 0 <= j < len(times) and (
                    best is None or abs(times[j] - pts_us) < abs(times[best] - pts_us)
                ):
                    best = j
            if best is None or abs(times[best] - pts_us) > frame_interval_us:
                return None
            return self._sets[best]

    def span_us(self) -> tuple[int, int] | None:
        with self._lock:
            return (self._times[0], self._times[-1]) if self._times else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._times)

    def clear(self) -> None:
        with self._lock:
            self._times.clear()
            self._sets.clear()


class LiveOverlays(DetectionBuffer):
    """Detections of one camera from ``vigia.<sid>.ai.<camera>``.

    ``session_or_nats``: a ``Session`` (its ``nats`` client) or a connected nats-py client.
    """

    def __init__(
        self,
        session_or_nats: Any,
        runner: AsyncRunner,
        server_id: str,
        camera_id: str,
        keep_us: int = 10_000_000,
    ) -> None:
        super().__init__(keep_us)
        self.subject = ai_subject(server_id, camera_id)
        self.camera_id = camera_id
        self._source = session_or_nats
        self._runner = runner
        self._sub: Any = None
        self.rejected = 0  # messages that were not valid detections

    def start(self, timeout: float = 5.0) -> LiveOverlays:
        """Subscribe (blocking until the server has the subscription)."""
        source = self._source

        async def on_msg(msg: Any) -> None:
            try:
                detections = parse_detections(msg.data)
            except ValueError as exc:
                self.rejected += 1
                log.debug("%s: %s", self.subject, exc)
                return
            self.add(detections)

        async def subscribe() -> None:
            if hasattr(source, "nats") and hasattr(source, "subscribe"):  # a Session
                self._sub = await source.subscribe(self.subject, on_msg)
                nc = source.nats
            else:
                self._sub = await source.subscribe(self.subject, cb=on_msg)
                nc = source
            if nc is not None:
                await nc.flush()  # the server has the subscription when start() returns

        self._runner.call(subscribe(), timeout)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                self._runner.call(sub.unsubscribe(), timeout)
            except Exception:
                log.debug("%s: unsubscribe failed", self.subject, exc_info=True)


def detections_from_tracks(rows: Iterable[Mapping[str, Any]], camera: str) -> list[Detections]:
    """``GET /tracks`` rows (``ts_us, track_id, label, score, x1, y1, x2, y2``) grouped by time.

    ValueError names the first bad row; nothing is returned half-read.
    """
    by_ts: dict[int, list[Detection]] = {}
    for n, row in enumerate(rows):
        try:
            ts_us = row["ts_us"]
            if not isinstance(ts_us, int) or isinstance(ts_us, bool):
                raise ValueError(f"ts_us must be an integer, got {ts_us!r}")
            d = _make(
                row["track_id"],
                row["label"],
                row["score"],
                (row["x1"], row["y1"], row["x2"], row["y2"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"track row {n}: {exc!s}") from None
        by_ts.setdefault(ts_us, []).append(d)
    return [Detections(ts, camera, tuple(objs)) for ts, objs in sorted(by_ts.items())]


class PlaybackOverlays(DetectionBuffer):
    """Detections for playback from ``GET /tracks``; the same matching as live.

    Holds whatever window was loaded (``keep_us`` large enough for it); load the next window
    as playback moves.
    """

    def __init__(self, camera_id: str, keep_us: int = 3_600_000_000) -> None:
        super().__init__(keep_us, max_sets=1_000_000)
        self.camera_id = camera_id

    def load_rows(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Add rows of ``GET /tracks``; returns the number of detection sets added."""
        sets = detections_from_tracks(rows, self.camera_id)
        self.extend(sets)
        return len(sets)

    async def fetch(self, api: Any, start_us: int, end_us: int) -> int:
        """Load ``GET /tracks?camera=&start_us=&end_us=`` (on the runner's loop)."""
        rows = await api.get_json(
            "/tracks", {"camera": self.camera_id, "start_us": start_us, "end_us": end_us}
        )
        if isinstance(rows, Mapping):  # tolerate {"tracks": [...]}
            rows = rows.get("tracks", [])
        if not isinstance(rows, list):
            raise ValueError("GET /tracks did not return a list")
        return self.load_rows(rows)

    def load(self, session: Any, start_us: int, end_us: int) -> concurrent.futures.Future[int]:
        """``fetch`` through ``session`` (a renewed token on a 401) on its network loop; the
        playback widgets call this and never the HTTP client."""
        return session.runner.submit(session.call(lambda api: self.fetch(api, start_us, end_us)))
