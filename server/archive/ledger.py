"""The archive's tables in the catalog (``archive_backlog``, ``archived``, ``archive_events``):
what waits for upload, what the store confirmed. Every closed segment enters the backlog by a
trigger in the same transaction that closes it, so a crash or kill -9 loses no work; a segment
counts as archived only once the store has confirmed the whole object."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from server.catalog import Catalog, SegmentRow

_SEG = ", ".join(f"s.{c}" for c in SegmentRow.__slots__)
# `{end}` lies more than the camera's archive_days (or the default: parameters 1 and 3) before
# now (parameter 2); a NULL number of days keeps it
_PAST_DAYS = (
    "coalesce(c.archive_days, ?) IS NOT NULL"
    " AND {end} < ? - CAST(coalesce(c.archive_days, ?) * 86400000000 AS INTEGER)"
)


@dataclass(frozen=True)
class Pending:
    segment: SegmentRow
    camera_id: str
    stream: str
    mode: str | None  # the camera's own policy; None: the [archive] default
    tries: int


@dataclass(frozen=True)
class Archived:
    segment_id: int
    camera_id: str
    stream: str
    start_us: int
    end_us: int
    key: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Backlog:
    segments: int
    bytes: int
    oldest_us: int | None


def insert_archived(
    c: sqlite3.Connection, s: SegmentRow, camera_id: str, stream: str, key: str, sha256: str,
    now_us: int,
) -> None:  # fmt: skip
    c.execute(
        "INSERT OR REPLACE INTO archived (segment_id, camera_id, stream, start_us, end_us, key,"
        " bytes, sha256, archived_us, media_duration_us, frames, codec, width, height,"
        " fragment_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (s.id, camera_id, stream, s.start_us, s.end_us, key, s.bytes, sha256, now_us,
         s.media_duration_us, s.frames, s.codec, s.width, s.height, s.fragment_index),
    )  # fmt: skip


class Ledger:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def next_due(self, now_us: int, busy: set[int]) -> Pending | None:
        """The oldest backlog segment due now that no upload thread holds."""
        skip = ",".join(str(i) for i in sorted(busy)) or "-1"
        rows = self.catalog.read(
            f"SELECT {_SEG}, st.camera_id, st.name, c.archive_mode, b.tries"
            " FROM archive_backlog b JOIN segments s ON s.id = b.segment_id"
            " JOIN streams st ON st.id = s.stream_id JOIN cameras c ON c.id = st.camera_id"
            f" WHERE b.next_try_us <= ? AND b.segment_id NOT IN ({skip})"
            " ORDER BY b.segment_id LIMIT 1",
            (now_us,),
        )
        if not rows:
            return None
        r = rows[0]
        n = len(SegmentRow.__slots__)
        return Pending(SegmentRow(*r[:n]), r[n], r[n + 1], r[n + 2], r[n + 3])

    def defer(self, segment_id: int, until_us: int, error: str | None, *, failed: bool) -> None:
        with self.catalog.transaction() as c:
            c.execute(
                "UPDATE archive_backlog SET next_try_us = ?, last_error = ?,"
                " tries = tries + ? WHERE segment_id = ?",
                (until_us, error, int(failed), segment_id),
            )

    def drop(self, segment_id: int) -> None:
        """Out of the backlog without a copy (policy says no, or the file is gone)."""
        with self.catalog.transaction() as c:
            c.execute("DELETE FROM archive_backlog WHERE segment_id = ?", (segment_id,))

    def set_sha256(self, segment_id: int, sha256: str) -> None:
        """For segments closed by start-up recovery (they had no hash yet)."""
        with self.catalog.transaction() as c:
            c.execute(
                "UPDATE segments SET sha256 = ? WHERE id = ? AND sha256 IS NULL",
                (sha256, segment_id),
            )

    def mark_archived(self, p: Pending, key: str, sha256: str, now_us: int) -> None:
        """After the store confirmed media and manifest: out of the backlog, into ``archived``,
        in one transaction (so it is counted once, whatever happens next)."""
        s = p.segment
        with self.catalog.transaction() as c:
            c.execute("DELETE FROM archive_backlog WHERE segment_id = ?", (s.id,))
            insert_archived(c, s, p.camera_id, p.stream, key, sha256, now_us)

    def backlog(self) -> Backlog:
        (n, nbytes, oldest), = self.catalog.read(
            "SELECT count(*), coalesce(sum(s.bytes), 0), min(b.added_us)"
            " FROM archive_backlog b JOIN segments s ON s.id = b.segment_id"
        )  # fmt: skip
        return Backlog(int(n), int(nbytes), oldest)

    def archived_totals(self) -> tuple[int, int]:
        (n, nbytes), = self.catalog.read(
            "SELECT count(*), coalesce(sum(bytes), 0) FROM archived"
        )  # fmt: skip
        return int(n), int(nbytes)

    def archived(self, segment_id: int) -> Archived | None:
        rows = self.catalog.read(
            "SELECT segment_id, camera_id, stream, start_us, end_us, key, bytes, sha256"
            " FROM archived WHERE segment_id = ?",
            (segment_id,),
        )
        return Archived(*rows[0]) if rows else None

    def all_archived(self, limit: int | None = None, *, random: bool = False) -> list[Archived]:
        sql = (
            "SELECT segment_id, camera_id, stream, start_us, end_us, key, bytes, sha256"
            " FROM archived ORDER BY " + ("random()" if random else "start_us, segment_id")
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [Archived(*r) for r in self.catalog.read(sql)]

    def expired(self, now_us: int, default_days: float | None, limit: int = 500) -> list[Archived]:
        """Archived segments older than their camera's ``archive_days`` (or the default; None:
        kept forever)."""
        rows = self.catalog.read(
            "SELECT a.segment_id, a.camera_id, a.stream, a.start_us, a.end_us, a.key, a.bytes,"
            " a.sha256 FROM archived a LEFT JOIN cameras c ON c.id = a.camera_id"
            f" WHERE {_PAST_DAYS.format(end='a.end_us')} ORDER BY a.end_us LIMIT ?",
            (default_days, now_us, default_days, limit),
        )
        return [Archived(*r) for r in rows]

    def expired_events(
        self, now_us: int, default_days: float | None, limit: int = 500
    ) -> list[int]:
        """Ids of events in the bucket older than their camera's ``archive_days``."""
        rows = self.catalog.read(
            "SELECT a.event_id FROM archive_events a LEFT JOIN cameras c ON c.id = a.camera_id"
            " WHERE a.expired_us IS NULL AND a.end_us IS NOT NULL"
            f" AND {_PAST_DAYS.format(end='a.end_us')} ORDER BY a.end_us LIMIT ?",
            (default_days, now_us, default_days, limit),
        )
        return [r[0] for r in rows]

    def forget_events(self, event_ids: list[int], now_us: int) -> None:
        with self.catalog.transaction() as c:
            c.executemany("UPDATE archive_events SET expired_us = ? WHERE event_id = ?",
                          [(now_us, i) for i in event_ids])  # fmt: skip

    def forget(self, segment_ids: list[int]) -> None:
        with self.catalog.transaction() as c:
            c.executemany("DELETE FROM archived WHERE segment_id = ?", [(i,) for i in segment_ids])

    def has_marks(self, camera_id: str, start_us: int, end_us: int) -> bool:
        """An event or a bookmark of the camera overlaps [start_us, end_us] (policy 'events')."""
        rows = self.catalog.read(
            "SELECT EXISTS (SELECT 1 FROM events WHERE camera_id = ? AND start_us <= ?"
            " AND coalesce(end_us, start_us) >= ?)"
            " OR EXISTS (SELECT 1 FROM bookmarks WHERE camera_id = ? AND start_us <= ?"
            " AND end_us >= ?)",
            (camera_id, end_us, start_us, camera_id, end_us, start_us),
        )
        return bool(rows[0][0])

    def open_event(self, camera_id: str, before_us: int) -> bool:
        """An event of the camera that began before ``before_us`` still goes on."""
        rows = self.catalog.read(
            "SELECT EXISTS (SELECT 1 FROM events WHERE camera_id = ? AND end_us IS NULL"
            " AND start_us <= ?)",
            (camera_id, before_us),
        )
        return bool(rows[0][0])

    def events_to_archive(self, limit: int = 50) -> list[tuple]:
        """Ended events not yet in the bucket, of cameras whose policy is not 'none'."""
        return self.catalog.read(
            "SELECT e.id, e.camera_id, e.kind, e.label, e.score, e.start_us, e.end_us,"
            " e.track_id, e.zone_id, e.direction, e.box, e.path, e.snapshot, c.archive_mode"
            " FROM events e JOIN cameras c ON c.id = e.camera_id"
            " WHERE e.end_us IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM archive_events a WHERE a.event_id = e.id)"
            " ORDER BY e.id LIMIT ?",
            (limit,),
        )

    def mark_event(
        self, event_id: int, now_us: int, camera_id: str | None = None, end_us: int | None = None
    ) -> None:
        with self.catalog.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO archive_events (event_id, archived_us, camera_id, end_us)"
                " VALUES (?, ?, ?, ?)",
                (event_id, now_us, camera_id, end_us),
            )

    def camera_mode(self, camera_id: str) -> str | None:
        rows = self.catalog.read("SELECT archive_mode FROM cameras WHERE id = ?", (camera_id,))
        return rows[0][0] if rows else None

    def camera_days(self, camera_id: str) -> float | None:
        rows = self.catalog.read("SELECT archive_days FROM cameras WHERE id = ?", (camera_id,))
        return rows[0][0] if rows else None

    def set_camera_mode(self, camera_id: str, mode: str | None) -> None:
        """A new policy applies to segments still in the backlog, not to those already sent."""
        with self.catalog.transaction() as c:
            c.execute("UPDATE cameras SET archive_mode = ? WHERE id = ?", (mode, camera_id))

    def set_camera_days(self, camera_id: str, days: float | None) -> None:
        """The camera's own ``archive_days`` (None: the ``[archive]`` default)."""
        with self.catalog.transaction() as c:
            c.execute("UPDATE cameras SET archive_days = ? WHERE id = ?", (days, camera_id))

    def archive_only(
        self, camera_id: str, stream: str, start_us: int, end_us: int, stream_id: int
    ) -> list[SegmentRow]:
        """Archived segments of a stream overlapping [start_us, end_us) whose local row is
        gone, as segment rows (``path`` is the object key)."""
        rows = self.catalog.read(
            "SELECT a.segment_id, a.start_us, a.end_us, a.media_duration_us, a.key, a.bytes,"
            " a.frames, a.codec, a.width, a.height, a.fragment_index, a.sha256 FROM archived a"
            " WHERE a.camera_id = ? AND a.stream = ? AND a.end_us > ? AND a.start_us < ?"
            " AND NOT EXISTS (SELECT 1 FROM segments s WHERE s.id = a.segment_id)"
            " ORDER BY a.start_us",
            (camera_id, stream, start_us, end_us),
        )
        return [SegmentRow(r[0], stream_id, 0, r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8],
                           r[9], r[10], "closed", r[11]) for r in rows]  # fmt: skip

    def archived_ids(self, ids: list[int]) -> set[int]:
        if not ids:
            return set()
        rows = self.catalog.read(
            f"SELECT segment_id FROM archived WHERE segment_id IN ({','.join('?' * len(ids))})",
            ids,
        )
        return {r[0] for r in rows}

    def locations(
        self, stream_id: int, camera_id: str, stream: str, start_us: int, end_us: int
    ) -> list[tuple[int, int, str]]:
        """(start, end, 'local' | 'both' | 'archived') of a stream's segments in a window."""
        return self.catalog.read(
            "SELECT s.start_us, s.end_us, CASE WHEN EXISTS (SELECT 1 FROM archived a"
            " WHERE a.segment_id = s.id) THEN 'both' ELSE 'local' END FROM segments s"
            " WHERE s.stream_id = ? AND s.end_us > ? AND s.start_us < ?"
            " UNION ALL SELECT a.start_us, a.end_us, 'archived' FROM archived a"
            " WHERE a.camera_id = ? AND a.stream = ? AND a.end_us > ? AND a.start_us < ?"
            " AND NOT EXISTS (SELECT 1 FROM segments s WHERE s.id = a.segment_id)"
            " ORDER BY 1",
            (stream_id, start_us, end_us, camera_id, stream, start_us, end_us),
        )

    def sent_files(self) -> dict[str, tuple[int, int]]:
        """path -> (size, mtime_ns) of the metadata files in the bucket."""
        return {r[0]: (r[1], r[2]) for r in self.catalog.read(
            "SELECT path, size, mtime_ns FROM archive_files")}  # fmt: skip

    def mark_file(self, path: str, size: int, mtime_ns: int, sha256: str, now_us: int) -> None:
        with self.catalog.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO archive_files (path, size, mtime_ns, sha256, archived_us)"
                " VALUES (?, ?, ?, ?, ?)",
                (path, size, mtime_ns, sha256, now_us),
            )
