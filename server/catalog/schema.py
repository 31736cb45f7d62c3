"""Versioned schema migrations. Each entry moves ``PRAGMA user_version`` from its index to +1.

Every column carries a comment and the rules the code relies on are ``CHECK`` constraints, so
the database itself refuses a row that would break the time model (for instance a segment that
ends before it starts). Never edit a released migration: append a new one.

Migrations stay hand-written SQL rather than sqlite-utils' ``table.transform``: that rebuilds a
table from its column list and (sqlite-utils 4.2, checked on ``layouts``) drops the column
comments and the ``COLLATE NOCASE`` of ``layouts.owner``, which these conventions rely on.
sqlite-utils serves elsewhere: the config-like tables (``server/catalog/analytics.py``) and the
catalog's health report (``server/catalog/report.py``).
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
    # 1 -> 2: users, per-camera rights, API tokens, audit log (docs/design/auth.md)
    """
CREATE TABLE users (
    id INTEGER PRIMARY KEY,               -- referenced by user_cameras and tokens
    name TEXT NOT NULL UNIQUE COLLATE NOCASE  -- login name, case-insensitive: [A-Za-z0-9._@-]
        CHECK (length(name) BETWEEN 1 AND 64 AND name NOT GLOB '*[^A-Za-z0-9._@-]*'),
    password_hash TEXT NOT NULL           -- 'scrypt$n$r$p$salt_b64$hash_b64'; scheme first
        CHECK (password_hash GLOB '[a-z]*$*$*'),
    role TEXT NOT NULL                    -- 'admin' (all), 'operator' (no config), 'viewer'
        CHECK (role IN ('admin', 'operator', 'viewer')),
    all_cameras INTEGER NOT NULL DEFAULT 0  -- 1: every camera; 0: only those in user_cameras
        CHECK (all_cameras IN (0, 1)),
    created_us INTEGER NOT NULL,          -- when the account was made, µs since epoch UTC
    disabled INTEGER NOT NULL DEFAULT 0   -- 1: cannot log in, its tokens resolve to nobody
        CHECK (disabled IN (0, 1)),
    CHECK (role != 'admin' OR all_cameras = 1)
) STRICT;

CREATE TABLE user_cameras (
    user_id INTEGER NOT NULL              -- the user granted the right
        REFERENCES users (id) ON DELETE CASCADE,
    camera_id TEXT NOT NULL               -- camera slug; no foreign key, grants may precede it
        CHECK (length(camera_id) BETWEEN 1 AND 64 AND camera_id NOT GLOB '*[^a-z0-9_-]*'),
    PRIMARY KEY (user_id, camera_id)
) STRICT;

CREATE TABLE tokens (
    id INTEGER PRIMARY KEY,               -- row id, never shown to clients
    user_id INTEGER NOT NULL              -- whose session this is
        REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE       -- sha256 hex of the bearer token (never stored itself)
        CHECK (length(token_hash) = 64 AND token_hash NOT GLOB '*[^0-9a-f]*'),
    created_us INTEGER NOT NULL,          -- when it was issued, µs since epoch UTC
    expires_us INTEGER NOT NULL           -- refused from this time on
        CHECK (expires_us > created_us),
    last_used_us INTEGER                  -- last request seen (coarse); NULL: never used
        CHECK (last_used_us IS NULL OR last_used_us >= created_us)
) STRICT;
CREATE INDEX tokens_user ON tokens (user_id);
CREATE INDEX tokens_expires ON tokens (expires_us);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,               -- order of recording
    ts_us INTEGER NOT NULL,               -- when it happened, µs since epoch UTC
    user TEXT NOT NULL DEFAULT '',        -- user name (as typed for a failed login); '': none
    action TEXT NOT NULL                  -- 'login', 'login-failed', 'config-change', 'export', ...
        CHECK (length(action) BETWEEN 1 AND 64 AND action NOT GLOB '*[^a-z0-9.-]*'),
    target TEXT NOT NULL DEFAULT '',      -- what it acted on: camera id, user name, export id
    detail TEXT NOT NULL DEFAULT '{}'     -- JSON object with the specifics
        CHECK (json_valid(detail) AND json_type(detail) = 'object'),
    remote TEXT NOT NULL DEFAULT ''       -- client address; '': local (command line, the server)
) STRICT;
CREATE INDEX audit_log_ts ON audit_log (ts_us);
CREATE INDEX audit_log_user_ts ON audit_log (user, ts_us);
CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
""",
    # 2 -> 3: the timeline's window query reads start and end from the index alone
    """
CREATE INDEX segments_stream_span ON segments (stream_id, start_us, end_us);
DROP INDEX segments_stream_start;
""",
    # 3 -> 4: analytics (docs/design/analytics.md): per-camera settings, zones and lines, events
    """
CREATE TABLE analytics (
    camera_id TEXT PRIMARY KEY            -- camera slug; no foreign key, settings may precede it
        CHECK (length(camera_id) BETWEEN 1 AND 64 AND camera_id NOT GLOB '*[^a-z0-9_-]*'),
    enabled INTEGER NOT NULL DEFAULT 1    -- 1: decode, detect, track and raise events
        CHECK (enabled IN (0, 1)),
    stream TEXT NOT NULL DEFAULT 'sub'    -- stream analysed; 'sub' unless the camera has none
        CHECK (stream IN ('main', 'sub')),
    fps REAL NOT NULL DEFAULT 5           -- analysed frames per second
        CHECK (fps > 0 AND fps <= 30),
    labels TEXT NOT NULL DEFAULT '[]'     -- JSON array of labels to track; []: every label
        CHECK (json_valid(labels) AND json_type(labels) = 'array'),
    min_score REAL NOT NULL DEFAULT 0.4   -- a track starts only from detections this sure
        CHECK (min_score > 0 AND min_score < 1),
    updated_us INTEGER NOT NULL           -- last change, µs since epoch UTC
) STRICT;

CREATE TABLE zones (
    camera_id TEXT NOT NULL               -- camera slug the zone is drawn on
        CHECK (length(camera_id) BETWEEN 1 AND 64 AND camera_id NOT GLOB '*[^a-z0-9_-]*'),
    id TEXT NOT NULL                      -- slug, unique per camera
        CHECK (length(id) BETWEEN 1 AND 64 AND id NOT GLOB '*[^a-z0-9_-]*'),
    kind TEXT NOT NULL                    -- 'zone' (polygon) or 'line' (directed segment a->b)
        CHECK (kind IN ('zone', 'line')),
    name TEXT NOT NULL,                   -- display name
    points TEXT NOT NULL                  -- JSON [[x, y], ...] normalised 0..1; a line has 2
        CHECK (json_valid(points) AND json_type(points) = 'array'),
    labels TEXT NOT NULL DEFAULT '[]'     -- JSON array of labels it reacts to; []: every label
        CHECK (json_valid(labels) AND json_type(labels) = 'array'),
    min_dwell_us INTEGER NOT NULL DEFAULT 0  -- time inside before 'enter' fires
        CHECK (min_dwell_us >= 0),
    loiter_us INTEGER NOT NULL DEFAULT 0  -- time inside that raises 'loiter'; 0: never
        CHECK (loiter_us >= 0),
    updated_us INTEGER NOT NULL,          -- last change, µs since epoch UTC
    PRIMARY KEY (camera_id, id)
) STRICT;

CREATE TABLE events (
    id INTEGER PRIMARY KEY,               -- stable id used by the API (/events/{id}/snapshot)
    camera_id TEXT NOT NULL               -- camera slug the event happened on
        CHECK (length(camera_id) BETWEEN 1 AND 64 AND camera_id NOT GLOB '*[^a-z0-9_-]*'),
    kind TEXT NOT NULL                    -- 'object', 'enter', 'leave', 'loiter', 'line', 'motion'
        CHECK (kind IN ('object', 'enter', 'leave', 'loiter', 'line', 'motion')),
    label TEXT NOT NULL DEFAULT '',       -- object label ('person', ...); 'motion' for motion
    score REAL NOT NULL DEFAULT 0         -- best detection score of the object, 0..1
        CHECK (score >= 0 AND score <= 1),
    start_us INTEGER NOT NULL             -- when it began, µs since epoch UTC
        CHECK (start_us > 0),
    end_us INTEGER                        -- when it ended; NULL while it goes on
        CHECK (end_us IS NULL OR end_us >= start_us),
    track_id INTEGER,                     -- tracker id of the object; NULL for motion
    zone_id TEXT,                         -- zone or line id for enter/leave/loiter/line
    direction TEXT,                       -- line crossings: 'left_to_right' or 'right_to_left'
    box TEXT                              -- JSON [x1, y1, x2, y2] of the best snapshot, or NULL
        CHECK (box IS NULL OR json_valid(box)),
    path TEXT NOT NULL DEFAULT '[]'       -- JSON [[ts_us, x, y], ...] of the object's track
        CHECK (json_valid(path)),
    snapshot TEXT                         -- JPEG path relative to the data dir, or NULL
) STRICT;
CREATE INDEX events_camera_start ON events (camera_id, start_us);
CREATE INDEX events_start ON events (start_us);
""",
    # 4 -> 5: named wall layouts of the workstations, kept by the recorder so they follow users
    """
CREATE TABLE layouts (
    owner TEXT NOT NULL COLLATE NOCASE    -- user name of its author
        CHECK (length(owner) BETWEEN 1 AND 64),
    name TEXT NOT NULL                    -- title shown in the workstation, unique per owner
        CHECK (length(name) BETWEEN 1 AND 100),
    shared INTEGER NOT NULL DEFAULT 0     -- 1: every user sees it (set by admins)
        CHECK (shared IN (0, 1)),
    layout TEXT NOT NULL                  -- JSON object: the wall's grid, spans and cameras
        CHECK (json_valid(layout) AND json_type(layout) = 'object' AND length(layout) < 65536),
    updated_us INTEGER NOT NULL,          -- last change, µs since epoch UTC
    PRIMARY KEY (owner, name)
) STRICT;
""",
    # 5 -> 6: storage totals kept by triggers, so /metrics and retention read a few rows instead
    # of summing every segment under the lock the ingest threads need
    """
CREATE TABLE stream_totals (
    stream_id INTEGER PRIMARY KEY         -- the stream these figures are for
        REFERENCES streams (id),
    segments INTEGER NOT NULL DEFAULT 0   -- its rows in segments, open and closed
        CHECK (segments >= 0),
    bytes INTEGER NOT NULL DEFAULT 0      -- sum of those rows' segments.bytes
        CHECK (bytes >= 0)
) STRICT;
INSERT INTO stream_totals (stream_id, segments, bytes)
    SELECT stream_id, count(*), sum(bytes) FROM segments GROUP BY stream_id;
CREATE TRIGGER stream_totals_insert AFTER INSERT ON segments
BEGIN
    INSERT INTO stream_totals (stream_id, segments, bytes) VALUES (NEW.stream_id, 1, NEW.bytes)
        ON CONFLICT (stream_id) DO UPDATE
        SET segments = segments + 1, bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER stream_totals_grow AFTER UPDATE OF bytes ON segments
    WHEN NEW.stream_id = OLD.stream_id AND NEW.bytes != OLD.bytes
BEGIN
    UPDATE stream_totals SET bytes = bytes + NEW.bytes - OLD.bytes
        WHERE stream_id = NEW.stream_id;
END;
CREATE TRIGGER stream_totals_move AFTER UPDATE OF stream_id ON segments
    WHEN NEW.stream_id != OLD.stream_id
BEGIN
    UPDATE stream_totals SET segments = segments - 1, bytes = bytes - OLD.bytes
        WHERE stream_id = OLD.stream_id;
    INSERT INTO stream_totals (stream_id, segments, bytes) VALUES (NEW.stream_id, 1, NEW.bytes)
        ON CONFLICT (stream_id) DO UPDATE
        SET segments = segments + 1, bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER stream_totals_delete AFTER DELETE ON segments
BEGIN
    UPDATE stream_totals SET segments = segments - 1, bytes = bytes - OLD.bytes
        WHERE stream_id = OLD.stream_id;
END;
""",
    # 6 -> 7: export jobs, so that they survive restarts and count against the volume's limit
    """
CREATE TABLE export_jobs (
    id TEXT PRIMARY KEY                   -- 16 hex digits, the id in the API's URLs
        CHECK (length(id) = 16 AND id NOT GLOB '*[^0-9a-f]*'),
    owner TEXT NOT NULL DEFAULT ''        -- user name that asked for it ('': the server)
        CHECK (length(owner) <= 64),
    request TEXT NOT NULL                 -- JSON object: cameras, start_us, end_us, fmt, exact
        CHECK (json_valid(request) AND json_type(request) = 'object'),
    state TEXT NOT NULL                   -- where the job is; 'running' at start-up: cut short
        CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    error TEXT,                           -- why it failed; NULL otherwise
    files TEXT NOT NULL DEFAULT '[]'      -- JSON list of the file names in its directory
        CHECK (json_valid(files) AND json_type(files) = 'array'),
    bytes INTEGER NOT NULL DEFAULT 0      -- size of its files once done (counted by retention)
        CHECK (bytes >= 0),
    created_us INTEGER NOT NULL,          -- when it was asked for, µs since epoch UTC
    finished_us INTEGER                   -- when it ended; NULL while queued or running
) STRICT;
CREATE INDEX export_jobs_finished ON export_jobs (finished_us);
""",
    # 7 -> 8 (cameras, issue 15): the ONVIF device a camera was added from, kept for PTZ and
    # events, and each stream's RTSP lower transport
    """
CREATE TABLE camera_onvif (
    camera_id TEXT PRIMARY KEY            -- the camera added from the device
        REFERENCES cameras (id),
    address TEXT NOT NULL                 -- http://HOST:PORT/onvif/device_service
        CHECK (address GLOB 'http*://*'),
    username TEXT NOT NULL DEFAULT '',    -- WS-Security user name ('' for none)
    password TEXT NOT NULL DEFAULT '',    -- its password (the RTSP URLs carry it as well)
    main_profile TEXT NOT NULL DEFAULT '',  -- media profile token recorded as main
    sub_profile TEXT,                     -- profile token used as sub; NULL: none
    updated_us INTEGER NOT NULL           -- last change, µs since epoch UTC
) STRICT;
ALTER TABLE streams ADD COLUMN transport TEXT NOT NULL DEFAULT 'auto'
    -- RTSP lower transport: 'auto' (TCP, then UDP), 'tcp', 'udp', 'multicast', 'http'
    CHECK (transport IN ('auto', 'tcp', 'udp', 'multicast', 'http'));
""",
    # 8 -> 9: the archive (docs/design/archive.md): segment hashes, per-camera policy, backlog
    """
ALTER TABLE segments ADD COLUMN sha256 TEXT  -- hex SHA-256 of the closed file; NULL: not yet
    CHECK (sha256 IS NULL OR (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'));
ALTER TABLE cameras ADD COLUMN archive_mode TEXT  -- 'all', 'events', 'none'; NULL: [archive] mode
    CHECK (archive_mode IS NULL OR archive_mode IN ('all', 'events', 'none'));

CREATE TABLE archive_backlog (
    segment_id INTEGER PRIMARY KEY        -- closed segment waiting for its copy in the bucket
        REFERENCES segments (id) ON DELETE CASCADE,
    added_us INTEGER NOT NULL,            -- when it closed (or was queued), µs since epoch UTC
    tries INTEGER NOT NULL DEFAULT 0      -- failed uploads so far
        CHECK (tries >= 0),
    next_try_us INTEGER NOT NULL DEFAULT 0,  -- not tried again before this time
    last_error TEXT                       -- why the last try failed; NULL: not tried or no error
) STRICT;
CREATE INDEX archive_backlog_next ON archive_backlog (next_try_us, segment_id);

CREATE TABLE archived (
    segment_id INTEGER PRIMARY KEY,       -- the segment's id; no foreign key: the copy outlives
                                          -- the local file and its row
    camera_id TEXT NOT NULL,              -- camera slug
    stream TEXT NOT NULL                  -- 'main' or 'sub'
        CHECK (stream IN ('main', 'sub')),
    start_us INTEGER NOT NULL,            -- the segment's wall start, µs since epoch UTC
    end_us INTEGER NOT NULL               -- its wall end
        CHECK (end_us >= start_us),
    key TEXT NOT NULL UNIQUE,             -- object key of the media (the manifest is key + '.json')
    bytes INTEGER NOT NULL CHECK (bytes >= 0),  -- object size
    sha256 TEXT NOT NULL                  -- hex SHA-256 the store checked on upload
        CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
    archived_us INTEGER NOT NULL,         -- when the store confirmed it
    -- the rest of the segment's row, so footage whose local copy is gone still lists and plays
    media_duration_us INTEGER NOT NULL CHECK (media_duration_us >= 0),  -- camera clock
    frames INTEGER NOT NULL CHECK (frames >= 0),  -- video samples
    codec TEXT NOT NULL CHECK (codec IN ('h264', 'hevc')),  -- as in segments
    width INTEGER NOT NULL CHECK (width > 0),     -- coded picture width
    height INTEGER NOT NULL CHECK (height > 0),   -- coded picture height
    fragment_index BLOB NOT NULL          -- server.protocol.fragindex encoding
) STRICT;
CREATE INDEX archived_camera_start ON archived (camera_id, start_us);
CREATE INDEX archived_end ON archived (end_us);

CREATE TABLE archive_files (
    path TEXT PRIMARY KEY,                -- hourly track or motion file, relative to the data dir
    size INTEGER NOT NULL CHECK (size >= 0),  -- its size when sent
    mtime_ns INTEGER NOT NULL,            -- its modification time when sent (a rewrite resends)
    sha256 TEXT NOT NULL                  -- hex SHA-256 the store checked
        CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
    archived_us INTEGER NOT NULL          -- when the store confirmed it
) STRICT;

CREATE TABLE archive_events (
    event_id INTEGER PRIMARY KEY,         -- events.id whose row (and snapshot) is in the bucket
    archived_us INTEGER NOT NULL          -- when the store confirmed it
) STRICT;

-- every segment that closes joins the backlog (the uploader applies the camera's policy)
CREATE TRIGGER archive_backlog_close AFTER UPDATE OF state ON segments
    WHEN OLD.state = 'open' AND NEW.state = 'closed'
BEGIN
    INSERT OR IGNORE INTO archive_backlog (segment_id, added_us)
        VALUES (NEW.id, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER));
END;
INSERT INTO archive_backlog (segment_id, added_us)
    SELECT id, end_us FROM segments WHERE state = 'closed';
""",
]

# 9 -> 10: rules, alarms and failed notifications (docs/design/rules.md)
RULES_MIGRATION = """
CREATE TABLE rules (
    id INTEGER PRIMARY KEY,               -- stable id used by the API (/rules/{id})
    name TEXT NOT NULL                    -- shown with its alarms
        CHECK (length(name) BETWEEN 1 AND 100),
    rule TEXT NOT NULL                    -- JSON: the rule as the API takes it (RuleInput)
        CHECK (json_valid(rule)),
    updated_us INTEGER NOT NULL           -- last change, µs since epoch UTC
) STRICT;
CREATE TABLE arming (
    grp TEXT PRIMARY KEY,                 -- camera group named by rules ('' : no group)
    armed INTEGER NOT NULL                -- 0: its rules are silent
        CHECK (armed IN (0, 1)),
    updated_us INTEGER NOT NULL,          -- last change, µs since epoch UTC
    updated_by TEXT NOT NULL DEFAULT ''   -- who armed or disarmed it
) STRICT;
CREATE TABLE alarms (
    id INTEGER PRIMARY KEY,               -- stable id used by the API (/alarms/{id})
    rule_id INTEGER NOT NULL,             -- the rule that raised it (kept if the rule goes)
    rule TEXT NOT NULL,                   -- the rule's name then
    camera_id TEXT NOT NULL,              -- camera slug ('' for a trigger without a camera)
    priority INTEGER NOT NULL             -- 1 most urgent .. 5
        CHECK (priority BETWEEN 1 AND 5),
    state TEXT NOT NULL DEFAULT 'new'     -- 'new', 'acknowledged', 'closed'
        CHECK (state IN ('new', 'acknowledged', 'closed')),
    ts_us INTEGER NOT NULL                -- when the triggering event happened, µs UTC
        CHECK (ts_us > 0),
    trig TEXT NOT NULL,                   -- the trigger kind
    event TEXT NOT NULL DEFAULT '{}'      -- JSON: the triggering event as published
        CHECK (json_valid(event)),
    snapshot TEXT,                        -- event snapshot under the data dir, or NULL
    updated_us INTEGER NOT NULL,          -- last change of state, µs since epoch UTC
    by TEXT NOT NULL DEFAULT '',          -- who acknowledged or closed it
    comment TEXT NOT NULL DEFAULT ''      -- their comment
) STRICT;
CREATE INDEX alarms_state_ts ON alarms (state, ts_us);
CREATE TABLE failed_deliveries (
    id INTEGER PRIMARY KEY,               -- listed by GET /deliveries/failed
    rule_id INTEGER NOT NULL,             -- the rule whose action failed
    alarm_id INTEGER,                     -- its alarm, if it raised one
    kind TEXT NOT NULL                    -- 'webhook', 'email', 'mqtt'
        CHECK (kind IN ('webhook', 'email', 'mqtt')),
    target TEXT NOT NULL,                 -- URL or addresses
    attempts INTEGER NOT NULL,            -- tries made
    error TEXT NOT NULL,                  -- the last error
    ts_us INTEGER NOT NULL                -- when it was given up, µs since epoch UTC
) STRICT;
"""
MIGRATIONS.append(RULES_MIGRATION)

# camera events (issue 15, docs/design/cameras.md): events the cameras raise themselves (ONVIF
# pull point), kind 'camera', with the device's topic and source. SQLite cannot widen a CHECK in
# place: the table is rebuilt with the same ids (snapshots and archive_events name them).
CAMERA_EVENTS_MIGRATION = """
CREATE TABLE events_new (
    id INTEGER PRIMARY KEY,               -- stable id used by the API (/events/{id}/snapshot)
    camera_id TEXT NOT NULL               -- camera slug the event happened on
        CHECK (length(camera_id) BETWEEN 1 AND 64 AND camera_id NOT GLOB '*[^a-z0-9_-]*'),
    kind TEXT NOT NULL                    -- ours: 'object', 'enter', 'leave', 'loiter', 'line',
        -- 'motion'; raised by the camera itself: 'camera'
        CHECK (kind IN ('object', 'enter', 'leave', 'loiter', 'line', 'motion', 'camera')),
    label TEXT NOT NULL DEFAULT '',       -- object label ('person', ...); 'motion' for motion;
        -- camera events: 'motion', 'tamper', 'input', 'relay', 'analytics'
    score REAL NOT NULL DEFAULT 0         -- best detection score of the object, 0..1
        CHECK (score >= 0 AND score <= 1),
    start_us INTEGER NOT NULL             -- when it began, µs since epoch UTC
        CHECK (start_us > 0),
    end_us INTEGER                        -- when it ended; NULL while it goes on
        CHECK (end_us IS NULL OR end_us >= start_us),
    track_id INTEGER,                     -- tracker id of the object; NULL for motion
    zone_id TEXT,                         -- zone or line id for enter/leave/loiter/line
    direction TEXT,                       -- line crossings: 'left_to_right' or 'right_to_left'
    box TEXT                              -- JSON [x1, y1, x2, y2] of the best snapshot, or NULL
        CHECK (box IS NULL OR json_valid(box)),
    path TEXT NOT NULL DEFAULT '[]'       -- JSON [[ts_us, x, y], ...] of the object's track
        CHECK (json_valid(path)),
    snapshot TEXT,                        -- JPEG path relative to the data dir, or NULL
    topic TEXT,                           -- camera events: the ONVIF topic
        -- ('tns1:RuleEngine/CellMotionDetector/Motion'); NULL for ours
    source TEXT                           -- camera events: what raised it on the device
        -- ('InputToken=DI_0', 'Rule=MyMotionDetectorRule'); NULL when it does not say
) STRICT;
INSERT INTO events_new (id, camera_id, kind, label, score, start_us, end_us, track_id, zone_id,
    direction, box, path, snapshot)
    SELECT id, camera_id, kind, label, score, start_us, end_us, track_id, zone_id, direction,
        box, path, snapshot FROM events;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
CREATE INDEX events_camera_start ON events (camera_id, start_us);
CREATE INDEX events_start ON events (start_us);
"""
MIGRATIONS.append(CAMERA_EVENTS_MIGRATION)
# rule actions on camera devices (PTZ preset, relay output) fail like notifications do
# (docs/design/rules.md); SQLite changes a CHECK only by copying the table
DEVICE_DELIVERIES_MIGRATION = """
CREATE TABLE failed_deliveries_new (
    id INTEGER PRIMARY KEY,               -- listed by GET /deliveries/failed
    rule_id INTEGER NOT NULL,             -- the rule whose action failed
    alarm_id INTEGER,                     -- its alarm, if it raised one
    kind TEXT NOT NULL                    -- the action: notification or camera device
        CHECK (kind IN ('webhook', 'email', 'mqtt', 'ptz_preset', 'output')),
    target TEXT NOT NULL,                 -- URL, addresses, or '<camera> preset|output <x>'
    attempts INTEGER NOT NULL,            -- tries made
    error TEXT NOT NULL,                  -- the last error
    ts_us INTEGER NOT NULL                -- when it was given up, µs since epoch UTC
) STRICT;
INSERT INTO failed_deliveries_new SELECT * FROM failed_deliveries;
DROP TABLE failed_deliveries;
ALTER TABLE failed_deliveries_new RENAME TO failed_deliveries;
"""
MIGRATIONS.append(DEVICE_DELIVERIES_MIGRATION)

# the archive, continued (docs/design/archive.md): a camera's own archive_days; archived events
# remember their camera and end, so archive_days removes them from the bucket even after their
# local row is gone
ARCHIVE_DAYS_MIGRATION = """
ALTER TABLE cameras ADD COLUMN archive_days REAL  -- NULL: [archive] archive_days
    CHECK (archive_days IS NULL OR archive_days > 0);
ALTER TABLE archive_events ADD COLUMN camera_id TEXT;
ALTER TABLE archive_events ADD COLUMN end_us INTEGER;
ALTER TABLE archive_events ADD COLUMN expired_us INTEGER;  -- removed from the bucket then
UPDATE archive_events SET
    camera_id = (SELECT e.camera_id FROM events e WHERE e.id = archive_events.event_id),
    end_us = (SELECT coalesce(e.end_us, e.start_us) FROM events e
              WHERE e.id = archive_events.event_id);
"""
MIGRATIONS.append(ARCHIVE_DAYS_MIGRATION)

# MQTT logins with the Vigia password (docs/design/rules.md): nats-server checks bcrypt hashes,
# made when the password is set or next used to log in
MQTT_LOGIN_MIGRATION = """
ALTER TABLE users ADD COLUMN mqtt_hash TEXT  -- bcrypt of the password; NULL until made
    CHECK (mqtt_hash IS NULL OR mqtt_hash GLOB '$2*$*');
"""
MIGRATIONS.append(MQTT_LOGIN_MIGRATION)

SCHEMA_VERSION = len(MIGRATIONS)
