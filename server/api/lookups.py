"""Catalog look-ups and request parameters shared by the camera, recording and bookmark
routes: a 404 or 400 in the API's words when the thing is not there or not well formed."""

from __future__ import annotations

from aiohttp import web

from server.api.errors import ApiError
from server.api.routing import Param
from server.catalog import Catalog
from server.catalog.catalog import CameraRow
from server.protocol.models.common import MicrosParam, StreamName

MAX_WINDOW_US = 400 * 86_400 * 1_000_000  # a timeline query spans at most ~13 months

START = Param("start_us", MicrosParam, required=True)
END = Param("end_us", MicrosParam, required=True)
WINDOW = (START, END)


def stream_param(default: str) -> Param:
    return Param("stream", StreamName, description=f"default {default}")


def find_camera(catalog: Catalog, camera_id: str) -> CameraRow:
    for cam in catalog.cameras():
        if cam.id == camera_id:
            return cam
    raise ApiError(404, "not_found", f"no camera {camera_id!r}")


def stream_id(catalog: Catalog, camera_id: str, stream: str) -> int:
    if stream not in ("main", "sub"):
        raise ApiError(400, "bad_parameter", "stream must be 'main' or 'sub'")
    find_camera(catalog, camera_id)
    try:
        return catalog.stream_id(camera_id, stream)
    except Exception:
        raise ApiError(404, "not_found", f"camera {camera_id!r} has no {stream} stream") from None


def window(request: web.Request) -> tuple[int, int]:
    start = START.read_int(request)
    end = END.read_int(request)
    if end <= start:
        raise ApiError(400, "bad_parameter", "end_us must be after start_us")
    if end - start > MAX_WINDOW_US:
        raise ApiError(400, "bad_parameter", "window too large")
    return start, end


def id_param(request: web.Request, key: str, what: str) -> int:
    """A row id from the path: 400 when not an integer, 404 when it cannot exist."""
    try:
        value = int(request.match_info[key])
    except ValueError:
        raise ApiError(400, "bad_parameter", f"{what} id must be an integer") from None
    if not 0 <= value < 2**63:
        raise ApiError(404, "not_found", f"no {what} {value}")
    return value
