"""Recording settings of a recorder's cameras: which streams record, and for how long.

The settings dialog shows ``camera_recording`` of each camera and sends ``changes``; every call
is a Future on the network loop (see ``app.remote``).
"""

from __future__ import annotations

import concurrent.futures
from typing import Any

from app.cameras_admin import CamerasAdmin
from app.session import Session

FIELDS = ("enabled", "record_main", "record_sub", "retention_days")


def camera_recording(cam: dict[str, Any]) -> dict[str, Any]:
    """The editable recording settings of a ``GET /cameras`` entry (``record_sub`` None: the
    camera has no sub stream)."""
    streams = {s.get("name"): s for s in cam.get("streams") or ()}
    days = cam.get("retention_days")
    return {
        "enabled": bool(cam.get("enabled", True)),
        "record_main": bool(streams.get("main", {}).get("record", True)),
        "record_sub": bool(streams.get("sub", {}).get("record", False))
        if "sub" in streams
        else None,
        "retention_days": None if days is None else round(days),
    }


def changes(
    loaded: dict[str, dict[str, Any]], edited: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per camera, the fields of ``edited`` that differ from what the recorder said."""
    out: dict[str, dict[str, Any]] = {}
    for cid, now in edited.items():
        was = loaded[cid]
        diff = {
            k: v for k, v in now.items() if v != was[k] and not (k == "record_sub" and v is None)
        }
        if diff:
            out[cid] = diff
    return out


class RecordingSettings:
    """Read and change the recording fields of one recorder's cameras."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._cameras = CamerasAdmin(session)

    def load(self) -> concurrent.futures.Future[list[dict[str, Any]]]:
        return self._cameras.list()

    def apply(
        self, changes: dict[str, dict[str, Any]]
    ) -> concurrent.futures.Future[list[dict[str, Any]]]:
        """One PATCH per changed camera."""
        return self._cameras.edit_many(changes)

    def refresh_tree(self) -> concurrent.futures.Future[None]:
        """Read the cameras into the workstation's tree again (names, states)."""
        return self.session.runner.submit(self.session.refresh_async())
