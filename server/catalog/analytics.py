"""Catalog access for analytics: per-camera settings, zones and lines, and events.

Kept apart from ``Catalog`` (segments and cameras) because it changes for other reasons; it
shares the catalog's one connection and lock through ``Catalog.transaction``/``_all``. The
config-like tables (settings, zones) go through sqlite-utils (row dicts, JSON columns encoded
for us); events, written by the pipelines and queried by time, stay raw SQL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from server.catalog.catalog import Catalog
from server.protocol.models.analytics import Event


@dataclass(frozen=True)
class AnalyticsSettings:
    camera_id: str
    enabled: bool = True
    stream: str = "sub"
    fps: float = 5.0
    labels: tuple[str, ...] = ()
    min_score: float = 0.4


@dataclass(frozen=True)
class ZoneRow:
    camera_id: str
    id: str
    kind: str  # 'zone' or 'line'
    name: str
    points: tuple[tuple[float, float], ...]
    labels: tuple[str, ...] = ()
    min_dwell_us: int = 0
    loiter_us: int = 0

    def to_json(self) -> dict:
        return {
            "camera_id": self.camera_id,
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "points": [list(p) for p in self.points],
            "labels": list(self.labels),
            "min_dwell_us": self.min_dwell_us,
            "loiter_us": self.loiter_us,
        }


@dataclass
class EventRow:
    camera_id: str
    kind: str
    start_us: int
    label: str = ""
    score: float = 0.0
    end_us: int | None = None
    track_id: int | None = None
    zone_id: str | None = None
    direction: str | None = None
    box: tuple[float, float, float, float] | None = None
    path: list = field(default_factory=list)
    snapshot: str | None = None
    id: int | None = None
    topic: str | None = None  # camera events: the ONVIF topic
    source: str | None = None  # camera events: what raised it on the device

    def to_event(self) -> Event:
        """The wire shape (``server.protocol.models.Event``), for the API and the events subject
        alike; a row not yet stored (no id) is not an event on the wire."""
        if self.id is None:
            raise ValueError("an event row without an id is not on the wire yet")
        return Event(
            id=self.id,
            camera_id=self.camera_id,
            kind=self.kind,  # type: ignore[arg-type]
            label=self.label,
            score=round(self.score, 4),
            start_us=self.start_us,
            end_us=self.end_us,
            track_id=self.track_id,
            zone_id=self.zone_id,
            direction=self.direction,  # type: ignore[arg-type]
            box=list(self.box) if self.box else None,
            path=self.path,
            snapshot=self.snapshot is not None,
            topic=self.topic,
            source=self.source,
        )


_EVENT = (
    "id, camera_id, kind, label, score, start_us, end_us, track_id, zone_id, direction, box,"
    " path, snapshot, topic, source"
)


def _event(row: tuple) -> EventRow:
    (eid, cam, kind, label, score, start, end, track, zone, direction, box, path, snap, topic,
     source) = row  # fmt: skip
    return EventRow(
        camera_id=cam,
        kind=kind,
        start_us=start,
        label=label,
        score=score,
        end_us=end,
        track_id=track,
        zone_id=zone,
        direction=direction,
        box=tuple(json.loads(box)) if box else None,
        path=json.loads(path),
        snapshot=snap,
        id=eid,
        topic=topic,
        source=source,
    )


class AnalyticsCatalog:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    # --- settings, zones and lines: small config-like tables, through sqlite-utils ------------
    # Rows are dicts and JSON columns are encoded by the library; each write replaces the
    # whole row (INSERT OR REPLACE: nothing references these tables and they have no triggers).

    def _rows(self, table: str, where: str | None = None, params: tuple = ()) -> list[dict]:
        with self.catalog._lock:  # one shared connection: read it whole under the lock
            order = "camera_id, id" if table == "zones" else "camera_id"
            return list(self.catalog.db.table(table).rows_where(where, params, order_by=order))

    def _replace(self, table: str, row: dict) -> None:
        with self.catalog.transaction():
            self.catalog.db.table(table).insert(row, replace=True)

    def settings(self, camera_id: str) -> AnalyticsSettings | None:
        rows = self._rows("analytics", "camera_id = ?", (camera_id,))
        return _settings(rows[0]) if rows else None

    def all_settings(self) -> dict[str, AnalyticsSettings]:
        return {r["camera_id"]: _settings(r) for r in self._rows("analytics")}

    def set_settings(self, s: AnalyticsSettings, now_us: int) -> None:
        row = {
            "camera_id": s.camera_id,
            "enabled": int(s.enabled),
            "stream": s.stream,
            "fps": float(s.fps),
            "labels": list(s.labels),
            "min_score": float(s.min_score),
            "updated_us": now_us,
        }
        self._replace("analytics", row)

    def zones(self, camera_id: str | None = None) -> list[ZoneRow]:
        if camera_id is None:
            return [_zone(r) for r in self._rows("zones")]
        return [_zone(r) for r in self._rows("zones", "camera_id = ?", (camera_id,))]

    def put_zone(self, z: ZoneRow, now_us: int) -> None:
        self._replace("zones", {**z.to_json(), "updated_us": now_us})

    def delete_zone(self, camera_id: str, zone_id: str) -> bool:
        with self.catalog.transaction() as c:
            cur = c.execute(
                "DELETE FROM zones WHERE camera_id = ? AND id = ?", (camera_id, zone_id)
            )
            return cur.rowcount > 0

    # --- events --------------------------------------------------------------------------

    def insert_event(self, ev: EventRow) -> int:
        with self.catalog.transaction() as c:
            cur = c.execute(
                "INSERT INTO events (camera_id, kind, label, score, start_us, end_us, track_id,"
                " zone_id, direction, box, path, snapshot, topic, source) VALUES (?, ?, ?, ?, ?,"
                " ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _event_values(ev),
            )
            ev.id = int(cur.lastrowid)
            return ev.id

    def update_event(self, ev: EventRow) -> None:
        if ev.id is None:
            raise ValueError("event has no id; insert it first")
        with self.catalog.transaction() as c:
            c.execute(
                "UPDATE events SET camera_id = ?, kind = ?, label = ?, score = ?, start_us = ?,"
                " end_us = ?, track_id = ?, zone_id = ?, direction = ?, box = ?, path = ?,"
                " snapshot = ?, topic = ?, source = ? WHERE id = ?",
                (*_event_values(ev), ev.id),
            )

    def event(self, event_id: int) -> EventRow | None:
        rows = self.catalog._all(f"SELECT {_EVENT} FROM events WHERE id = ?", (event_id,))
        return _event(rows[0]) if rows else None

    def events(
        self,
        start_us: int,
        end_us: int,
        *,
        cameras: list[str] | None = None,
        kinds: list[str] | None = None,
        labels: list[str] | None = None,
        zone_id: str | None = None,
        min_score: float = 0.0,
        limit: int = 1000,
        newest_first: bool = False,
    ) -> list[EventRow]:
        """Events overlapping [start_us, end_us) (an open event overlaps everything after it)."""
        sql = f"SELECT {_EVENT} FROM events WHERE start_us < ? AND (end_us IS NULL OR end_us >= ?)"
        params: list[object] = [end_us, start_us]
        for column, values in (("camera_id", cameras), ("kind", kinds), ("label", labels)):
            if values:
                sql += f" AND {column} IN ({', '.join('?' * len(values))})"
                params.extend(values)
        if zone_id is not None:
            sql += " AND zone_id = ?"
            params.append(zone_id)
        if min_score > 0:
            sql += " AND score >= ?"
            params.append(min_score)
        sql += f" ORDER BY start_us {'DESC' if newest_first else 'ASC'}, id LIMIT ?"
        params.append(limit)
        return [_event(r) for r in self.catalog._all(sql, params)]

    def close_open_events(self, end_us: int, kind: str | None = None) -> int:
        """At start-up: events a crash left open end where the recorder stopped knowing
        (of one kind only: camera events are closed by their subscribers' owner)."""
        sql, params = "UPDATE events SET end_us = max(start_us, ?) WHERE end_us IS NULL", [end_us]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        with self.catalog.transaction() as c:
            return c.execute(sql, params).rowcount

    def oldest_video_us(self, camera_id: str) -> int | None:
        """Start of the camera's oldest recorded video (any stream); metadata older than it
        has lost its video to retention."""
        row = self.catalog._one(
            "SELECT min((SELECT min(start_us) FROM segments WHERE stream_id = streams.id))"
            " FROM streams WHERE camera_id = ?",
            (camera_id,),
        )
        return row[0] if row and row[0] is not None else None

    def delete_events_before(self, camera_id: str, ts_us: int) -> list[str]:
        """Retention: drop ended events older than ``ts_us``; returns their snapshot paths."""
        with self.catalog.transaction() as c:
            snaps = [
                r[0]
                for r in c.execute(
                    "SELECT snapshot FROM events WHERE camera_id = ? AND end_us IS NOT NULL"
                    " AND end_us < ? AND snapshot IS NOT NULL",
                    (camera_id, ts_us),
                )
            ]
            c.execute(
                "DELETE FROM events WHERE camera_id = ? AND end_us IS NOT NULL AND end_us < ?",
                (camera_id, ts_us),
            )
        return snaps


def _settings(r: dict) -> AnalyticsSettings:
    return AnalyticsSettings(
        r["camera_id"],
        bool(r["enabled"]),
        r["stream"],
        float(r["fps"]),
        tuple(json.loads(r["labels"])),
        r["min_score"],
    )


def _zone(r: dict) -> ZoneRow:
    points = tuple((float(x), float(y)) for x, y in json.loads(r["points"]))
    return ZoneRow(
        r["camera_id"],
        r["id"],
        r["kind"],
        r["name"],
        points,
        tuple(json.loads(r["labels"])),
        r["min_dwell_us"],
        r["loiter_us"],
    )


def _event_values(ev: EventRow) -> tuple:
    return (
        ev.camera_id,
        ev.kind,
        ev.label,
        min(1.0, max(0.0, float(ev.score))),
        ev.start_us,
        ev.end_us,
        ev.track_id,
        ev.zone_id,
        ev.direction,
        json.dumps([round(v, 5) for v in ev.box]) if ev.box else None,
        json.dumps(ev.path),
        ev.snapshot,
        ev.topic,
        ev.source,
    )
