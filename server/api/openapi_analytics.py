"""The analytics and workstation parts of the OpenAPI document (events, tracks, motion search,
zones, analytics settings, wall layouts)."""

from __future__ import annotations

from server.api.openapi import _CAMERA_ID, _ERR, _INT, _STR, _US, _WINDOW, _json, _p, _q, _ref

_NUM01 = {"type": "number", "minimum": 0, "maximum": 1}
_POINT = {"type": "array", "items": _NUM01, "minItems": 2, "maxItems": 2}
_BOX = {"type": ["array", "null"], "items": _NUM01, "minItems": 4, "maxItems": 4}
_KIND = {"enum": ["object", "enter", "leave", "loiter", "line", "motion"]}
_LABELS = {"type": "array", "items": {"type": "string", "minLength": 1}}
_SLUG = {"type": "string", "pattern": "^[a-z0-9_-]{1,64}$"}

SCHEMAS: dict[str, dict] = {
    "Event": {
        "type": "object",
        "required": ["id", "camera_id", "kind", "label", "score", "start_us", "end_us"],
        "properties": {
            "id": _INT,
            "camera_id": _CAMERA_ID,
            "kind": _KIND,
            "label": _STR,
            "score": _NUM01,
            "start_us": _US,
            "end_us": {"type": ["integer", "null"], "description": "null while it goes on"},
            "track_id": {"type": ["integer", "null"]},
            "zone_id": {"type": ["string", "null"]},
            "direction": {"enum": ["left_to_right", "right_to_left", None]},
            "box": _BOX,
            "path": {"type": "array", "items": {"type": "array"}},
            "snapshot": {"type": "boolean", "description": "GET .../snapshot has a JPEG"},
        },
    },
    "TrackRow": {
        "type": "object",
        "required": ["ts_us", "track_id", "label", "score", "x1", "y1", "x2", "y2"],
        "properties": {
            "ts_us": _US,
            "track_id": _INT,
            "label": _STR,
            "score": {"type": "number"},
            "x1": {"type": "number"},
            "y1": {"type": "number"},
            "x2": {"type": "number"},
            "y2": {"type": "number"},
        },
    },
    "MotionSearch": {
        "type": "object",
        "required": ["camera", "start_us", "end_us"],
        "properties": {
            "camera": _CAMERA_ID,
            "start_us": {"type": "integer", "minimum": 0, "maximum": 2**62},
            "end_us": {"type": "integer", "minimum": 0, "maximum": 2**62},
            "region": {
                "type": "array",
                "items": _NUM01,
                "minItems": 4,
                "maxItems": 4,
                "description": "x1, y1, x2, y2 normalised; default the whole picture",
            },
            "merge_gap_us": {"type": "integer", "minimum": 0, "maximum": 2**62},
        },
    },
    "MotionRanges": {
        "type": "object",
        "required": ["camera", "ranges"],
        "properties": {
            "camera": _CAMERA_ID,
            "ranges": {"type": "array", "items": _ref("Range")},
        },
    },
    "Zone": {
        "type": "object",
        "required": ["camera_id", "id", "kind", "name", "points", "labels"],
        "properties": {
            "camera_id": _CAMERA_ID,
            "id": _SLUG,
            "kind": {"enum": ["zone", "line"]},
            "name": _STR,
            "points": {"type": "array", "items": _POINT},
            "labels": _LABELS,
            "min_dwell_us": _INT,
            "loiter_us": _INT,
        },
    },
    "ZoneInput": {
        "type": "object",
        "required": ["points"],
        "additionalProperties": False,
        "properties": {
            "kind": {"enum": ["zone", "line"], "description": "a line has exactly 2 points"},
            "name": {"type": "string", "maxLength": 200},
            "points": {"type": "array", "items": _POINT, "minItems": 2},
            "labels": _LABELS,
            "min_dwell_us": {"type": "integer", "minimum": 0, "maximum": 2**62},
            "loiter_us": {"type": "integer", "minimum": 0, "maximum": 2**62},
        },
    },
    "AnalyticsSettings": {
        "type": "object",
        "required": ["camera_id", "enabled", "stream", "fps", "labels", "min_score", "status"],
        "properties": {
            "camera_id": _CAMERA_ID,
            "enabled": {"type": "boolean"},
            "stream": {"enum": ["main", "sub"]},
            "fps": {"type": "number"},
            "labels": _LABELS,
            "min_score": {"type": "number"},
            "status": {
                "type": "object",
                "required": ["state"],
                "properties": {
                    "state": {"enum": ["disabled", "starting", "waiting", "running", "error"]},
                    "reason": _STR,
                    "provider": _STR,
                },
            },
        },
    },
    "Layout": {
        "type": "object",
        "required": ["owner", "name", "shared", "layout", "updated_us"],
        "properties": {
            "owner": _STR,
            "name": _STR,
            "shared": {"type": "boolean"},
            "layout": {"type": "object"},
            "updated_us": _US,
        },
    },
    "LayoutInput": {
        "type": "object",
        "required": ["layout"],
        "additionalProperties": False,
        "properties": {"layout": {"type": "object"}, "shared": {"type": "boolean"}},
    },
    "AnalyticsPatch": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "enabled": {"type": "boolean"},
            "stream": {"enum": ["main", "sub"]},
            "fps": {"type": "number", "minimum": 0.1, "maximum": 30},
            "labels": _LABELS,
            "min_score": {"type": "number", "minimum": 0.01, "maximum": 0.99},
        },
    },
}


def _body(name: str) -> dict:
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


_UNAVAILABLE = {"503": _json(_ref("Error"), "Analytics is not running on this recorder")}


def paths() -> dict:
    cam = [_p("camera_id", _CAMERA_ID)]
    zone = [*cam, _p("zone_id", _SLUG)]
    event = [_p("event_id", _INT)]
    layout = [_p("name", {"type": "string", "minLength": 1, "maxLength": 100})]
    return {
        "/api/v1/layouts": {
            "get": {
                "summary": "The user's wall layouts and the shared ones",
                "responses": {"200": _json({"type": "array", "items": _ref("Layout")}), **_ERR},
            }
        },
        "/api/v1/layouts/{name}": {
            "put": {
                "summary": "Save a wall layout (shared ones need the config right)",
                "parameters": layout,
                "requestBody": _body("LayoutInput"),
                "responses": {"200": _json(_ref("Layout")), **_ERR},
            },
            "delete": {
                "parameters": [*layout, _q("owner", _STR, False, "another user's (admins)")],
                "responses": {"204": {"description": "Deleted"}, **_ERR},
            },
        },
        "/api/v1/events": {
            "get": {
                "summary": "Analytics events overlapping a window, filtered",
                "parameters": [
                    *_WINDOW,
                    _q("camera", _STR, False, "camera id(s), comma separated"),
                    _q("kind", _STR, False, "object, enter, leave, loiter, line, motion"),
                    _q("label", _STR, False, "label(s), comma separated"),
                    _q("zone", _STR, False, "zone or line id"),
                    _q("min_score", {"type": "number", "minimum": 0, "maximum": 1}, False),
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 2**62}, False),
                    _q("order", {"enum": ["asc", "desc"]}, False),
                ],
                "responses": {
                    "200": _json({"type": "array", "items": _ref("Event")}),
                    **_ERR,
                    **_UNAVAILABLE,
                },
            }
        },
        "/api/v1/events/{event_id}": {
            "get": {
                "parameters": event,
                "responses": {"200": _json(_ref("Event")), **_ERR, **_UNAVAILABLE},
            }
        },
        "/api/v1/events/{event_id}/snapshot": {
            "get": {
                "summary": "The event's best snapshot",
                "parameters": event,
                "responses": {
                    "200": {"description": "JPEG", "content": {"image/jpeg": {"schema": _STR}}},
                    **_ERR,
                    **_UNAVAILABLE,
                },
            }
        },
        "/api/v1/tracks": {
            "get": {
                "summary": "Tracked boxes of a camera in a window (at most one hour)",
                "parameters": [
                    _q("camera", _STR),
                    *_WINDOW,
                    _q("label", _STR, False, "label(s), comma separated"),
                    _q("format", {"enum": ["json", "arrow"]}, False),
                ],
                "responses": {
                    "200": {
                        "description": "Rows by time (JSON) or an Arrow IPC stream",
                        "content": {
                            "application/json": {
                                "schema": {"type": "array", "items": _ref("TrackRow")}
                            },
                            "application/vnd.apache.arrow.stream": {"schema": _STR},
                        },
                    },
                    **_ERR,
                    **_UNAVAILABLE,
                },
            }
        },
        "/api/v1/search/motion": {
            "post": {
                "summary": "Time ranges with motion in a region of the picture",
                "requestBody": _body("MotionSearch"),
                "responses": {"200": _json(_ref("MotionRanges")), **_ERR, **_UNAVAILABLE},
            }
        },
        "/api/v1/cameras/{camera_id}/zones": {
            "get": {
                "parameters": cam,
                "responses": {
                    "200": _json({"type": "array", "items": _ref("Zone")}),
                    **_ERR,
                    **_UNAVAILABLE,
                },
            }
        },
        "/api/v1/cameras/{camera_id}/zones/{zone_id}": {
            "put": {
                "summary": "Create or replace a zone (polygon) or line (a -> b)",
                "parameters": zone,
                "requestBody": _body("ZoneInput"),
                "responses": {"200": _json(_ref("Zone")), **_ERR, **_UNAVAILABLE},
            },
            "delete": {
                "parameters": zone,
                "responses": {"204": {"description": "Deleted"}, **_ERR, **_UNAVAILABLE},
            },
        },
        "/api/v1/cameras/{camera_id}/analytics": {
            "get": {
                "summary": "Analytics settings and status of a camera",
                "parameters": cam,
                "responses": {"200": _json(_ref("AnalyticsSettings")), **_ERR, **_UNAVAILABLE},
            },
            "patch": {
                "parameters": cam,
                "requestBody": _body("AnalyticsPatch"),
                "responses": {"200": _json(_ref("AnalyticsSettings")), **_ERR, **_UNAVAILABLE},
            },
        },
    }
