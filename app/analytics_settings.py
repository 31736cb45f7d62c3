"""Analytics of one camera: its settings (detector on/off, stream, fps, labels, score), its
zones and lines, and the snapshot they are drawn on.

The analytics page and the live wall's zone overlays bind to this model; every call is a
Future on the network loop (see ``app.remote``).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from app.api import ApiClient, ApiError
from app.remote import RemoteModel
from app.session import Session


def parse_labels(text: str) -> list[str]:
    """Labels typed as ``person, car; dog``."""
    return [w.strip() for w in text.replace(";", ",").split(",") if w.strip()]


def settings_changes(was: Mapping[str, Any], now: Mapping[str, Any]) -> dict[str, Any]:
    """The ``PATCH /cameras/{id}/analytics`` body: the fields of ``now`` that differ from the
    settings as read (floats compared to 1e-6, as the spin boxes round them)."""
    return {
        k: v
        for k, v in now.items()
        if k not in was
        or (v != was[k] if not isinstance(v, float) else abs(v - float(was[k])) > 1e-6)
    }


@dataclass(frozen=True)
class CameraAnalytics:
    """What the page shows for a camera: ``GET /cameras/{id}/analytics``, its zones, and a
    snapshot of the analysed stream (None when the camera has none yet)."""

    settings: dict[str, Any]
    zones: list[dict[str, Any]]
    snapshot: bytes | None


class AnalyticsSettings(RemoteModel):
    """Settings, zones and lines of one camera of one recorder."""

    def __init__(self, session: Session, camera_id: str) -> None:
        super().__init__(session)
        self.camera_id = camera_id
        self._base = f"/cameras/{camera_id}"

    def read(self) -> concurrent.futures.Future[CameraAnalytics]:
        base = self._base

        async def work(api: ApiClient) -> CameraAnalytics:
            settings = await api.get_json(f"{base}/analytics")
            zones = await api.get_json(f"{base}/zones")
            try:
                image = await api.get_bytes(
                    f"{base}/snapshot", params={"stream": settings.get("stream", "sub")}
                )
            except ApiError as exc:
                if exc.status != 404:
                    raise
                image = None
            return CameraAnalytics(settings, zones, image)

        return self._call(work)

    def apply(self, changes: Mapping[str, Any]) -> concurrent.futures.Future[dict[str, Any]]:
        """``PATCH /cameras/{id}/analytics`` with the fields that change; the new settings."""
        body = dict(changes)
        return self._call(lambda api: api.patch_json(f"{self._base}/analytics", body))

    def zones(self) -> concurrent.futures.Future[list[dict[str, Any]]]:
        return self._call(lambda api: api.get_json(f"{self._base}/zones"))

    def zones_sync(self, timeout: float = 10) -> list[dict[str, Any]]:
        """The zones, waiting for them (a worker thread, never the network loop)."""
        return self.zones().result(timeout)

    def save_zones(
        self, shapes: Mapping[str, dict[str, Any]], gone: Iterable[str]
    ) -> concurrent.futures.Future[list[dict[str, Any]]]:
        """PUT every shape (by id), DELETE the ``gone`` ids (already gone is fine), and return
        the zones as the recorder now has them."""
        base, put, drop = self._base, dict(shapes), list(gone)

        async def work(api: ApiClient) -> list[dict[str, Any]]:
            for zid, body in put.items():
                await api.request("PUT", f"{base}/zones/{zid}", json=body)
            for zid in drop:
                try:
                    await api.delete(f"{base}/zones/{zid}")
                except ApiError as exc:
                    if exc.status != 404:  # already gone is what we wanted
                        raise
            return await api.get_json(f"{base}/zones")

        return self._call(work)
