"""Versioned schema migrations. Each entry moves ``PRAGMA user_version`` from its index to +1.

Every column carries a comment and the rules the code relies on are ``CHECK`` constraints, so
the database itself refuses a row that would break the time model (for instance a segment that
ends before it starts). Never edit a released migration: append a new one.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 0 -> 1: recording core
    """
CREATE TABLE cameras (
    id TEXT PRIMARY KEY                   -- slug used in paths and subjects: [a-z0-9_-], 1..64
        CHECK (length(id) BETWEEN 1 AND 64 AND id NOT GLOB '*[^a-z0-9_-]*'),
    name TEXT NOT NULL,                   -- display name
    enabled INTEGER NOT NULL DEFAULT 1    -- 0: configured but not pulled or recorded
        CHECK (enabled IN (0, 1)),
    retention_days REAL                   -- days to keep; NULL: volume limits only
        CHECK (retention_days IS NULL OR retention_days > 0),
    source TEXT NOT NULL DEFAULT 'api'    -- who manages the row: 'config' (TOML file) or 'api'
        CHECK (source IN ('config', 'api')),
    created_us INTEGER NOT NULL,          -- when the row was made, µs since epoch UTC
    updated_us INTEGER NOT NULL           -- last change, µs since epoch UTC
) STRICT;

CREATE TABLE streams (
    id INTEGER PRIMARY KEY,               -- referenced by runs and segments
    camera_id TEXT NOT NULL REFERENCES cameras (id),  -- owning camera (rows outlive removal)
    name TEXT NOT NULL                    -- 'main' (full resolution) or 'sub' (small)
        CHECK (name IN ('main', 'sub')),
    url TEXT NOT NULL,                    -- rtsp://, rtsps://, http(s)://, file://
    record INTEGER NOT NULL DEFAULT 1     -- 1: record this stream; 0: live/analytics only
        CHECK (record IN (0, 1)),
    UNIQUE (camera_id, name)
) STRICT;

CREATE TABLE runs (
    id INTEGER PRIMARY KEY,               -- one uninterrupted session with the source
    stream_id INTEGER NOT NULL REFERENCES streams (id),  -- the stream recorded
    started_us INTEGER NOT NULL,          -- wall time the session delivered its first frame
    ended_us INTEGER                      -- wall time it ended; NULL while running or after a crash
        CHECK (ended_us IS NULL OR ended_us >= started_us),
    end_reason TEXT                       -- why it ended (source lost, shutdown, ...); NULL: open
) STRICT;

CREATE TABLE segments (
    id INTEGER PRIMARY KEY,               -- stable id used by the API (/segments/{id}/media)
    stream_id INTEGER NOT NULL REFERENCES streams (id),  -- stream the video came from
    run_id INTEGER NOT NULL REFERENCES runs (id),        -- session it belongs to
    start_us INTEGER NOT NULL             -- wall time of the first frame, µs since epoch UTC
        CHECK (start_us > 0),
    end_us INTEGER NOT NULL               -- wall end; a stream's segments never overlap
        CHECK (end_us >= start_us),
    media_duration_us INTEGER NOT NULL    -- by the camera's clock, before drift fix
        CHECK (media_duration_us >= 0),
    path TEXT NOT NULL UNIQUE,            -- relative to the data dir; '.part' while open
    bytes INTEGER NOT NULL                -- file size covered by the index (init + fragments)
        CHECK (bytes >= 0),
    frames INTEGER NOT NULL DEFAULT 0     -- video samples in the indexed fragments
        CHECK (frames >= 0),
    codec TEXT NOT NULL                   -- 'h264' or 'hevc'
        CHECK (codec IN ('h264', 'hevc')),
    width INTEGER NOT NULL CHECK (width > 0),    -- coded picture width in pixels
    height INTEGER NOT NULL CHECK (height > 0),  -- coded picture height in pixels
    fragment_index BLOB NOT NULL,         -- server.protocol.fragindex encoding
    state TEXT NOT NULL                   -- 'open': being written (.part); 'closed': final
        CHECK (state IN ('open', 'closed'))
) STRICT;
CREATE INDEX segments_stream_start ON segments (stream_id, start_us);
CREATE INDEX segments_start ON segments (start_us);

CREATE TABLE garbage (
    path TEXT PRIMARY KEY,                -- file to unlink, relative to the data dir
    reason TEXT NOT NULL,                 -- 'retention-days', 'volume-bytes', 'min-free', 'repair'
    added_us INTEGER NOT NULL             -- when its segment row was removed
) STRICT;

CREATE TABLE bookmarks (
    id INTEGER PRIMARY KEY,               -- stable id used by the API
    camera_id TEXT NOT NULL REFERENCES cameras (id),  -- camera the bookmark is on
    start_us INTEGER NOT NULL,            -- start of the marked range, µs since epoch UTC
    end_us INTEGER NOT NULL               -- end of the marked range
        CHECK (end_us >= start_us),
    name TEXT NOT NULL DEFAULT '',        -- short title
    description TEXT NOT NULL DEFAULT '', -- investigator's notes
    locked INTEGER NOT NULL DEFAULT 0     -- 1: retention keeps every segment touching the range
        CHECK (locked IN (0, 1)),
    created_us INTEGER NOT NULL,          -- when it was made
    created_by TEXT NOT NULL DEFAULT ''   -- user name of its author
) STRICT;
CREATE INDEX bookmarks_camera ON bookmarks (camera_id, start_us);
""",
]

SCHEMA_VERSION = len(MIGRATIONS)
