"""Steering a PTZ camera from its tile, without Qt: gestures become velocities, and the
commands go to the recorder's PTZ routes (docs/design/cameras.md).

A drag from the press point sets a continuous pan/tilt velocity proportional to how far the
pointer is from it (a joystick); release stops. The wheel zooms in short continuous bursts;
arrow keys pan and tilt at a fixed speed while held. The tile shows ``state`` (who holds
control, what the camera lacks) and ``presets``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable
from typing import Any

from app.api import ApiClient
from app.remote import RemoteModel

KEY_SPEED = 0.5
WHEEL_ZOOM_S = 0.3  # one wheel notch zooms this long
DEAD_ZONE = 0.05  # a drag shorter than this fraction of the tile does not move


def clamp(v: float) -> float:
    return max(-1.0, min(1.0, v))


def drag_velocity(dx: float, dy: float, width: float, height: float) -> tuple[float, float]:
    """(pan, tilt) for a drag of (dx, dy) pixels on a tile of that size: half the tile is
    full speed; right pans right, up tilts up (screen y grows downwards)."""
    pan = clamp(2 * dx / max(width, 1.0))
    tilt = clamp(-2 * dy / max(height, 1.0))
    if abs(pan) < DEAD_ZONE:
        pan = 0.0
    if abs(tilt) < DEAD_ZONE:
        tilt = 0.0
    return round(pan, 3), round(tilt, 3)


KEYS = {"left": (-KEY_SPEED, 0.0), "right": (KEY_SPEED, 0.0), "up": (0.0, KEY_SPEED),
        "down": (0.0, -KEY_SPEED)}  # fmt: skip


def wheel_zoom(notches: float) -> float:
    """Zoom velocity for a wheel turn: forward (positive) zooms in."""
    return KEY_SPEED if notches > 0 else -KEY_SPEED if notches < 0 else 0.0


class PtzControl(RemoteModel):
    """The PTZ of one camera on one recorder."""

    def __init__(self, session: Any, camera_id: str) -> None:
        super().__init__(session)
        self.camera_id = camera_id
        self.base = f"/cameras/{camera_id}/ptz"
        self._order: asyncio.Lock | None = None  # made on the network loop

    def _call(self, fn: Callable[[ApiClient], Awaitable[Any]]) -> concurrent.futures.Future:
        """Commands reach the camera in the order they were given: a key's stop must never
        overtake its move. The calls start in submission order on the loop, and the lock
        hands itself on first come, first served."""

        async def ordered() -> Any:
            if self._order is None:
                self._order = asyncio.Lock()
            async with self._order:
                return await self.session.call(fn)

        return self._run(ordered())

    def state(self) -> concurrent.futures.Future[dict[str, Any]]:
        return self._call(lambda api: api.get_json(self.base))

    def move(
        self, pan: float, tilt: float, zoom: float = 0.0, timeout_s: float | None = None
    ) -> concurrent.futures.Future[Any]:
        body: dict[str, Any] = {"pan": clamp(pan), "tilt": clamp(tilt), "zoom": clamp(zoom)}
        if timeout_s is not None:
            body["timeout_s"] = timeout_s
        return self._call(lambda api: api.post_json(f"{self.base}/move", body))

    def stop(self) -> concurrent.futures.Future[Any]:
        return self._call(lambda api: api.post_json(f"{self.base}/stop", {}))

    def home(self) -> concurrent.futures.Future[Any]:
        return self._call(lambda api: api.post_json(f"{self.base}/home", {}))

    def presets(self) -> concurrent.futures.Future[list[dict[str, Any]]]:
        return self._call(lambda api: api.get_json(f"{self.base}/presets"))

    def goto(self, token: str) -> concurrent.futures.Future[Any]:
        return self._call(lambda api: api.post_json(f"{self.base}/presets/{token}/goto", {}))

    def save(self, name: str) -> concurrent.futures.Future[dict[str, Any]]:
        return self._call(lambda api: api.post_json(f"{self.base}/presets", {"name": name}))

    def zoom_burst(self, notches: float) -> concurrent.futures.Future[Any]:
        """A wheel turn: zoom for a moment; the camera stops itself (``timeout_s``)."""

        async def work(api: ApiClient) -> Any:
            return await api.post_json(
                f"{self.base}/move",
                {"pan": 0.0, "tilt": 0.0, "zoom": wheel_zoom(notches), "timeout_s": WHEEL_ZOOM_S},
            )

        return self._call(work)
