"""A recorder's cameras, administered: list, add, edit, remove, probe a URL, snapshot.

The settings dialog binds to this model; every call is a Future on the network loop (see
``app.remote``). ``changed`` fires with the recorder's camera list each time it was read
again (after a refresh, or an add/edit/remove followed by one).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterable
from typing import Any

from app.api import ApiClient, ApiError
from app.remote import RemoteModel
from app.session import Session
from app.signals import Signal

ProbeResult = tuple[str, dict[str, Any] | str]  # stream name, the probe's answer or why not


def edit_body(body: dict[str, Any], shown_urls: tuple[str, str]) -> dict[str, Any]:
    """The ``PATCH /cameras/{id}`` body of a camera form (``POST /cameras`` fields): the
    recorder shows URLs with their passwords hidden, so a URL left as it was shown
    (``shown_urls``: main, sub) is not sent back; nor is the id."""
    out = {k: v for k, v in body.items() if k != "id"}
    if out.get("main") == shown_urls[0]:
        del out["main"]
    if "sub" in out and (out["sub"] or "") == shown_urls[1]:
        del out["sub"]
    return out


class CamerasAdmin(RemoteModel):
    """The cameras of one logged-in recorder."""

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.cameras: list[dict[str, Any]] = []
        self.changed: Signal[list[dict[str, Any]]] = Signal("cameras_admin.changed")

    def refresh(self) -> concurrent.futures.Future[list[dict[str, Any]]]:
        """Read the cameras again (``GET /cameras``); also updates the workstation's tree."""

        async def work() -> list[dict[str, Any]]:
            await self.session.refresh_async()
            self.cameras = list(self.session.cameras)
            self.changed.emit(self.cameras)
            return self.cameras

        return self._run(work())

    def list(self) -> concurrent.futures.Future[list[dict[str, Any]]]:
        """``GET /cameras`` as the recorder answers it (the tree is left as it is)."""
        return self._call(lambda api: api.get_json("/cameras"))

    def add(self, body: dict[str, Any]) -> concurrent.futures.Future[dict[str, Any]]:
        """``POST /cameras``; the recorder starts pulling and recording it."""
        return self._call(lambda api: api.post_json("/cameras", body))

    def edit(self, camera_id: str, body: dict[str, Any]) -> concurrent.futures.Future[dict]:
        """``PATCH /cameras/{id}`` with only the fields that change."""
        return self._call(lambda api: api.patch_json(f"/cameras/{camera_id}", body))

    def edit_many(
        self, changes: dict[str, dict[str, Any]]
    ) -> concurrent.futures.Future[list[dict[str, Any]]]:
        """One PATCH per camera, in order; the first refusal stops the rest."""

        async def work(api: ApiClient) -> list[dict[str, Any]]:
            return [await api.patch_json(f"/cameras/{cid}", body) for cid, body in changes.items()]

        return self._call(work)

    def remove(self, camera_id: str) -> concurrent.futures.Future[None]:
        """``DELETE /cameras/{id}``: the recorder stops it; its recordings stay for retention."""
        return self._call(lambda api: api.delete(f"/cameras/{camera_id}"))

    def probe(
        self, urls: Iterable[tuple[str, str]]
    ) -> concurrent.futures.Future[list[ProbeResult]]:
        """Ask the recorder to open each ``(stream name, url)``: what it sees is what it will
        record. The main stream's probe asks for a snapshot. A URL the recorder cannot open
        gives its message; a refused login or an unreachable recorder fails the whole call."""
        urls = list(urls)

        async def work(api: ApiClient) -> list[ProbeResult]:
            out: list[ProbeResult] = []
            for name, url in urls:
                body = {"url": url, "snapshot": name == "main"}  # what the camera sees
                try:
                    out.append((name, await api.post_json("/cameras/probe", body)))
                except ApiError as exc:
                    if exc.status in (0, 401, 403):
                        raise
                    out.append((name, exc.message))
            return out

        return self._call(work)

    def snapshot(self, camera_id: str, stream: str = "sub") -> concurrent.futures.Future[bytes]:
        """The latest key frame of ``stream`` as JPEG (404 until the stream has video). The page
        asks for 'main' for a camera it knows has no sub stream."""

        async def work(api: ApiClient) -> bytes:
            try:
                return await api.get_bytes(
                    f"/cameras/{camera_id}/snapshot", params={"stream": stream}
                )
            except ApiError as exc:
                if exc.status == 404 and stream == "sub":
                    # asked again with the recorder's default stream (as the page always did)
                    return await api.get_bytes(f"/cameras/{camera_id}/snapshot")
                raise

        return self._call(work)
