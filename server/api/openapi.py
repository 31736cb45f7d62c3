"""The OpenAPI 3 document of ``/api/v1``, kept beside the routes; tests check that the two
agree (every route documented, every response valid against its schema)."""

from __future__ import annotations

from functools import cache

from server import __version__

_INT = {"type": "integer"}
_US = {"type": "integer", "minimum": 0, "description": "µs since the Unix epoch, UTC"}
_STR = {"type": "string"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERR = {
    "400": _json(_ref("Error"), "Bad request"),
    "401": _json(_ref("Error"), "Not logged in (missing, unknown or expired token)"),
    "403": _json(_ref("Error"), "The user lacks the right (role or camera)"),
    "404": _json(_ref("Error"), "Not found"),
}
_PUBLIC: list[dict] = []  # an operation anyone may call (no bearer token)


def _q(name: str, schema: dict, required: bool = True, description: str = "") -> dict:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


def _p(name: str, schema: dict) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema}


_WINDOW = [
    _q("start_us", {"type": "integer", "minimum": 0, "maximum": 2**62}),
    _q("end_us", {"type": "integer", "minimum": 0, "maximum": 2**62}),
]
_CAMERA_ID = {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"}

SCHEMAS: dict[str, dict] = {
    "Login": {
        "type": "object",
        "required": ["name", "password"],
        "properties": {"name": {"type": "string"}, "password": {"type": "string"}},
    },
    "Session": {
        "type": "object",
        "required": ["token", "expires_us", "user", "role"],
        "properties": {
            "token": _STR,
            "expires_us": _US,
            "user": _STR,
            "role": {"enum": ["admin", "operator", "viewer"]},
            "nats": {
                "type": "object",
                "description": "subscribe-only NATS credentials for the cameras the user sees",
                "required": ["url", "port", "user", "password"],
                "properties": {"url": _STR, "port": _INT, "user": _STR, "password": _STR},
            },
        },
    },
    "ExportInput": {
        "type": "object",
        "required": ["cameras", "start_us", "end_us"],
        "additionalProperties": False,
        "properties": {
            "cameras": {
                "type": "array",
                "minItems": 1,
                "maxItems": 64,
                "items": {
                    "type": "object",
                    "required": ["camera"],
                    "additionalProperties": False,
                    "properties": {"camera": _STR, "stream": {"enum": ["main", "sub"]}},
                },
            },
            "start_us": {"type": "integer", "minimum": 0, "maximum": 2**62 - 1},
            "end_us": {"type": "integer", "minimum": 0, "maximum": 2**62 - 1},
            "format": {"enum": ["mp4", "mkv"]},
            "exact": {"type": "boolean", "description": "re-encode the first GOP from start"},
        },
    },
    "Export": {
        "type": "object",
        "required": [
            "id",
            "state",
            "progress",
            "error",
            "files",
            "cameras",
            "start_us",
            "end_us",
            "format",
            "exact",
            "exported_by",
            "created_us",
            "finished_us",
        ],
        "properties": {
            "id": _STR,
            "state": {"enum": ["queued", "running", "done", "failed", "cancelled"]},
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "error": {"type": ["string", "null"]},
            "files": {"type": "array", "items": _STR},
            "cameras": {"type": "array", "items": {"type": "object"}},
            "start_us": _US,
            "end_us": _US,
            "format": {"enum": ["mp4", "mkv"]},
            "exact": {"type": "boolean"},
            "exported_by": _STR,
            "created_us": _US,
            "finished_us": {"type": ["integer", "null"]},
        },
    },
    "User": {
        "type": "object",
        "required": ["name", "role", "cameras", "disabled"],
        "properties": {
            "name": _STR,
            "role": {"enum": ["admin", "operator", "viewer"]},
            "cameras": {
                "type": ["array", "null"],
                "items": _STR,
                "description": "null: every camera",
            },
            "disabled": {"type": "boolean"},
        },
    },
    "UserInput": {
        "type": "object",
        "required": ["name", "password"],
        "additionalProperties": False,
        "properties": {
            "name": _STR,
            "password": _STR,
            "role": {"enum": ["admin", "operator", "viewer"]},
            "cameras": {"type": ["array", "null"], "items": _STR},
        },
    },
    "UserPatch": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "password": _STR,
            "role": {"enum": ["admin", "operator", "viewer"]},
            "cameras": {"type": ["array", "null"], "items": _STR},
            "disabled": {"type": "boolean"},
        },
    },
    "AuditEntry": {
        "type": "object",
        "required": ["id", "ts_us", "user", "action", "target", "detail", "remote"],
        "properties": {
            "id": _INT,
            "ts_us": _US,
            "user": _STR,
            "action": _STR,
            "target": _STR,
            "detail": {"type": "object"},
            "remote": _STR,
        },
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": _STR, "message": _STR},
            }
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "streams", "online"],
        "properties": {"status": {"enum": ["ok"]}, "streams": _INT, "online": _INT},
    },
    "Server": {
        "type": "object",
        "required": ["id", "name", "version", "api", "time_us"],
        "properties": {"id": _STR, "name": _STR, "version": _STR, "api": _STR, "time_us": _US},
    },
    "Stream": {
        "type": "object",
        "required": [
            "name",
            "url",
            "record",
            "state",
            "reason",
            "packets",
            "bytes",
            "reconnects",
            "last_packet_us",
        ],
        "properties": {
            "name": {"enum": ["main", "sub"]},
            "url": {"type": "string", "description": "password replaced by ***"},
            "record": {"type": "boolean"},
            "state": {"enum": ["connecting", "online", "offline", "error", "stopped"]},
            "reason": _STR,
            "packets": _INT,
            "bytes": _INT,
            "reconnects": _INT,
            "last_packet_us": {"type": ["integer", "null"]},
        },
    },
    "Camera": {
        "type": "object",
        "required": ["id", "name", "enabled", "retention_days", "source", "streams"],
        "properties": {
            "id": _CAMERA_ID,
            "name": _STR,
            "enabled": {"type": "boolean"},
            "retention_days": {"type": ["number", "null"]},
            "source": {"enum": ["config", "api"]},
            "streams": {"type": "array", "items": _ref("Stream")},
        },
    },
    "CameraInput": {
        "type": "object",
        "required": ["id", "name", "main"],
        "additionalProperties": False,
        "properties": {
            "id": _CAMERA_ID,
            "name": _STR,
            "main": {"type": "string", "description": "rtsp://, rtsps://, http(s)://, file://"},
            "sub": {"type": ["string", "null"]},
            "record_main": {"type": "boolean"},
            "record_sub": {"type": "boolean"},
            "retention_days": {"type": ["number", "null"], "exclusiveMinimum": 0},
            "enabled": {"type": "boolean"},
        },
    },
    "CameraPatch": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": _STR,
            "main": _STR,
            "sub": {"type": ["string", "null"]},
            "record_main": {"type": "boolean"},
            "record_sub": {"type": "boolean"},
            "retention_days": {"type": ["number", "null"], "exclusiveMinimum": 0},
            "enabled": {"type": "boolean"},
        },
    },
    "Probe": {
        "type": "object",
        "required": ["url"],
        "properties": {
            "url": {"type": "string", "maxLength": 2048},
            "snapshot": {"type": "boolean", "description": "also a JPEG of the first picture"},
        },
    },
    "ProbeResult": {
        "type": "object",
        "required": ["codec", "width", "height", "fps"],
        "properties": {
            "codec": {"enum": ["h264", "hevc"]},
            "width": _INT,
            "height": _INT,
            "fps": {"type": ["number", "null"]},
            "snapshot_jpeg": {"type": "string", "description": "base64 JPEG, when asked for"},
        },
    },
    "Fragment": {
        "type": "object",
        "required": ["offset", "bytes", "start_us", "duration_us"],
        "properties": {"offset": _INT, "bytes": _INT, "start_us": _US, "duration_us": _INT},
    },
    "Segment": {
        "type": "object",
        "required": [
            "id",
            "start_us",
            "end_us",
            "bytes",
            "frames",
            "codec",
            "width",
            "height",
            "state",
            "init_bytes",
            "fragments",
        ],
        "properties": {
            "id": _INT,
            "start_us": _US,
            "end_us": _US,
            "bytes": _INT,
            "frames": _INT,
            "codec": {"enum": ["h264", "hevc"]},
            "width": _INT,
            "height": _INT,
            "state": {"enum": ["open", "closed"]},
            "init_bytes": _INT,
            "fragments": {"type": "array", "items": _ref("Fragment")},
        },
    },
    "Range": {
        "type": "object",
        "required": ["start_us", "end_us"],
        "properties": {"start_us": _US, "end_us": _US},
    },
    "Recordings": {
        "type": "object",
        "required": ["camera", "stream", "start_us", "end_us", "ranges", "gaps"],
        "properties": {
            "camera": _STR,
            "stream": {"enum": ["main", "sub"]},
            "start_us": _US,
            "end_us": _US,
            "ranges": {"type": "array", "items": _ref("Range")},
            "gaps": {"type": "array", "items": _ref("Range")},
        },
    },
    "Bookmark": {
        "type": "object",
        "required": [
            "id",
            "camera_id",
            "start_us",
            "end_us",
            "name",
            "description",
            "locked",
            "created_us",
            "created_by",
        ],
        "properties": {
            "id": _INT,
            "camera_id": _STR,
            "start_us": _US,
            "end_us": _US,
            "name": _STR,
            "description": _STR,
            "locked": {"type": "boolean"},
            "created_us": _US,
            "created_by": _STR,
        },
    },
    "BookmarkInput": {
        "type": "object",
        "required": ["camera", "start_us", "end_us"],
        "additionalProperties": False,
        "properties": {
            "camera": _STR,
            "start_us": {"type": "integer", "minimum": 0, "maximum": 2**62 - 1},
            "end_us": {"type": "integer", "minimum": 0, "maximum": 2**62 - 1},
            "name": {"type": "string", "maxLength": 200},
            "description": _STR,
            "locked": {"type": "boolean", "description": "retention keeps what it touches"},
        },
    },
}


def _body(name: str) -> dict:
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


@cache
def openapi_document() -> dict:
    from server.api import openapi_analytics  # it builds on this module's helpers

    doc = _document()
    doc["paths"].update(openapi_analytics.paths())
    doc["components"]["schemas"] = {**doc["components"]["schemas"], **openapi_analytics.SCHEMAS}
    for ops in doc["paths"].values():
        for op in ops.values():
            if op.get("security") != _PUBLIC:  # every other call may be refused
                op["responses"].setdefault("401", _ERR["401"])
                op["responses"].setdefault("403", _ERR["403"])
    return doc


def _webrtc_paths(cam: list[dict]) -> dict:
    """WHEP (RFC 9725) and the web viewer that uses it."""
    sdp = {"application/sdp": {"schema": {"type": "string"}}}
    html = {"description": "The web viewer", "content": {"text/html": {"schema": _STR}}}
    return {
        "/": {
            "get": {
                "summary": "The web viewer (login, cameras, live)",
                "security": _PUBLIC,
                "responses": {"200": html},
            }
        },
        "/web/{name}": {
            "get": {
                "summary": "A file of the web viewer",
                "security": _PUBLIC,
                "parameters": [_p("name", {"enum": ["index.html", "app.js", "style.css"]})],
                "responses": {
                    "200": {"description": "The file", "content": {"*/*": {"schema": _STR}}},
                    "404": _ERR["404"],
                },
            }
        },
        "/api/v1/cameras/{camera_id}/whep": {
            "post": {
                "summary": "WHEP: an SDP offer in, the answer out; live H.264, never re-encoded",
                "parameters": [*cam, _q("stream", {"enum": ["main", "sub"]}, False)],
                "requestBody": {"required": True, "content": sdp},
                "responses": {
                    "201": {
                        "description": "The SDP answer (all ICE candidates included)",
                        "headers": {
                            "Location": {
                                "description": "The session, for DELETE",
                                "schema": {"type": "string"},
                            }
                        },
                        "content": sdp,
                    },
                    **_ERR,
                    "415": _json(_ref("Error"), "Not SDP, or no codec in common (H.265)"),
                    "503": _json(_ref("Error"), "Stream offline, or too many viewers"),
                },
            }
        },
        "/api/v1/whep/{session_id}": {
            "delete": {
                "summary": "End a WHEP session",
                "parameters": [_p("session_id", _STR)],
                "responses": {"200": {"description": "Ended"}, **_ERR},
            }
        },
    }


def _document() -> dict:
    cam = [_p("camera_id", _STR)]
    return {
        "openapi": "3.1.0",
        "info": {"title": "Vigia recorder API", "version": __version__},
        "paths": {
            "/healthz": {
                "get": {
                    "summary": "Liveness and stream counts",
                    "security": _PUBLIC,
                    "responses": {"200": _json(_ref("Health"))},
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": _PUBLIC,
                    "responses": {"200": _json({"type": "object"})},
                }
            },
            "/api/v1/auth/login": {
                "post": {
                    "summary": "Log in: a bearer token for the other calls",
                    "security": _PUBLIC,
                    "requestBody": _body("Login"),
                    "responses": {
                        "200": _json(_ref("Session")),
                        "400": _json(_ref("Error"), "Bad request"),
                        "401": _json(_ref("Error"), "Wrong name or password"),
                        "429": _json(_ref("Error"), "Too many failed logins"),
                    },
                }
            },
            "/api/v1/auth/logout": {
                "post": {
                    "summary": "Revoke this token",
                    "responses": {"204": {"description": "Logged out"}, **_ERR},
                }
            },
            "/api/v1/audit": {
                "get": {
                    "summary": "Audit log (admins): logins, changes, archive access, exports",
                    "parameters": [
                        _q("since_us", {"type": "integer", "minimum": 0, "maximum": 2**62}, False),
                        _q("until_us", {"type": "integer", "minimum": 0, "maximum": 2**62}, False),
                        _q("user", _STR, False),
                        _q("action", _STR, False),
                        _q("limit", {"type": "integer", "minimum": 1, "maximum": 10000}, False),
                    ],
                    "responses": {
                        "200": _json({"type": "array", "items": _ref("AuditEntry")}),
                        **_ERR,
                    },
                }
            },
            "/api/v1/exports": {
                "post": {
                    "summary": "Start an export job (signed manifest with SHA-256 per file)",
                    "requestBody": _body("ExportInput"),
                    "responses": {
                        "202": _json(_ref("Export"), "Queued"),
                        **_ERR,
                        "422": _json(_ref("Error"), "Nothing recorded, or a bad camera"),
                    },
                }
            },
            "/api/v1/exports/{export_id}": {
                "get": {
                    "parameters": [_p("export_id", _STR)],
                    "responses": {"200": _json(_ref("Export")), **_ERR},
                },
                "delete": {
                    "summary": "Cancel and delete an export",
                    "parameters": [_p("export_id", _STR)],
                    "responses": {"204": {"description": "Deleted"}, **_ERR},
                },
            },
            "/api/v1/exports/{export_id}/files/{name}": {
                "get": {
                    "summary": "Download a file of a finished export",
                    "parameters": [_p("export_id", _STR), _p("name", _STR)],
                    "responses": {
                        "200": {
                            "description": "The file",
                            "content": {
                                "application/octet-stream": {
                                    "schema": {"type": "string", "format": "binary"}
                                }
                            },
                        },
                        **_ERR,
                        "409": _json(_ref("Error"), "Not finished"),
                    },
                }
            },
            "/api/v1/users": {
                "get": {
                    "summary": "Accounts (admins)",
                    "responses": {"200": _json({"type": "array", "items": _ref("User")}), **_ERR},
                },
                "post": {
                    "summary": "Create an account (admins)",
                    "requestBody": _body("UserInput"),
                    "responses": {
                        "201": _json(_ref("User"), "Created"),
                        **_ERR,
                        "409": _json(_ref("Error"), "Exists"),
                    },
                },
            },
            "/api/v1/users/{name}": {
                "patch": {
                    "summary": "Change password, role, cameras or disable (admins)",
                    "parameters": [_p("name", _STR)],
                    "requestBody": _body("UserPatch"),
                    "responses": {"200": _json(_ref("User")), **_ERR},
                }
            },
            "/api/v1/server": {
                "get": {
                    "summary": "Recorder identity and clock",
                    "responses": {"200": _json(_ref("Server"))},
                }
            },
            "/api/v1/cameras": {
                "get": {
                    "summary": "Cameras with stream status",
                    "responses": {"200": _json({"type": "array", "items": _ref("Camera")})},
                },
                "post": {
                    "summary": "Add a camera; recording starts at once",
                    "requestBody": _body("CameraInput"),
                    "responses": {
                        "201": _json(_ref("Camera"), "Created"),
                        **_ERR,
                        "409": _json(_ref("Error"), "Exists"),
                    },
                },
            },
            "/api/v1/cameras/probe": {
                "post": {
                    "summary": "Test a URL: codec, size and rate, or why it fails",
                    "requestBody": _body("Probe"),
                    "responses": {
                        "200": _json(_ref("ProbeResult")),
                        **_ERR,
                        "422": _json(_ref("Error"), "The source failed"),
                    },
                },
            },
            "/api/v1/cameras/{camera_id}": {
                "get": {"parameters": cam, "responses": {"200": _json(_ref("Camera")), **_ERR}},
                "patch": {
                    "parameters": cam,
                    "requestBody": _body("CameraPatch"),
                    "responses": {"200": _json(_ref("Camera")), **_ERR},
                },
                "delete": {
                    "parameters": cam,
                    "summary": "Stop the camera (recordings stay)",
                    "responses": {"204": {"description": "Stopped"}, **_ERR},
                },
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "security": _PUBLIC,
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/api/v1/cameras/{camera_id}/snapshot": {
                "get": {
                    "summary": "JPEG of the latest key frame",
                    "parameters": [*cam, _q("stream", {"enum": ["main", "sub"]}, False)],
                    "responses": {
                        "200": {
                            "description": "The image",
                            "content": {
                                "image/jpeg": {"schema": {"type": "string", "format": "binary"}}
                            },
                        },
                        **_ERR,
                    },
                }
            },
            **_webrtc_paths(cam),
            "/api/v1/cameras/{camera_id}/segments": {
                "get": {
                    "summary": "Segments with their fragment index",
                    "parameters": [*cam, *_WINDOW, _q("stream", {"enum": ["main", "sub"]}, False)],
                    "responses": {
                        "200": _json({"type": "array", "items": _ref("Segment")}),
                        **_ERR,
                    },
                },
            },
            "/api/v1/segments/{segment_id}/media": {
                "get": {
                    "summary": "The segment's fMP4 file; HTTP Range supported",
                    "parameters": [_p("segment_id", _INT)],
                    "responses": {
                        "200": {
                            "description": "The file",
                            "content": {
                                "video/mp4": {"schema": {"type": "string", "format": "binary"}}
                            },
                        },
                        "206": {
                            "description": "The requested byte range",
                            "content": {
                                "video/mp4": {"schema": {"type": "string", "format": "binary"}}
                            },
                        },
                        **_ERR,
                    },
                },
            },
            "/api/v1/recordings": {
                "get": {
                    "summary": "Recorded ranges and gaps of a stream, for the timeline",
                    "parameters": [
                        _q("camera", _STR),
                        *_WINDOW,
                        _q("stream", {"enum": ["main", "sub"]}, False),
                        _q(
                            "resolution_us",
                            {"type": "integer", "minimum": 0, "maximum": 2**62},
                            False,
                        ),
                    ],
                    "responses": {"200": _json(_ref("Recordings")), **_ERR},
                },
            },
            "/api/v1/bookmarks": {
                "get": {
                    "parameters": [*_WINDOW, _q("camera", _STR, False)],
                    "responses": {
                        "200": _json({"type": "array", "items": _ref("Bookmark")}),
                        **_ERR,
                    },
                },
                "post": {
                    "requestBody": _body("BookmarkInput"),
                    "responses": {"201": _json(_ref("Bookmark"), "Created"), **_ERR},
                },
            },
            "/api/v1/bookmarks/{bookmark_id}": {
                "delete": {
                    "parameters": [_p("bookmark_id", _INT)],
                    "responses": {"204": {"description": "Deleted"}, **_ERR},
                },
            },
        },
        "security": [{"bearer": []}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
