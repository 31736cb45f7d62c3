"""Adding cameras found on the network: discover ONVIF devices, credentials typed once for all
of them, a picture from each before adding, several added at once (docs/design/cameras.md).

The add-cameras dialog binds to this model; each call is a Future on the network loop
(``app.remote``). Manual URL entry stays on the cameras page (``app.cameras_admin``).
"""

from __future__ import annotations

import base64
import concurrent.futures
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from app.api import ApiClient, ApiError
from app.remote import RemoteModel

SLUG = re.compile(r"[^a-z0-9_-]+")


def camera_id_for(name: str, taken: Iterable[str]) -> str:
    """A camera id (``[a-z0-9_-]``, at most 64) from a device's name, unique among ``taken``."""
    base = SLUG.sub("-", name.lower()).strip("-")[:56] or "camera"
    used = set(taken)
    cid, n = base, 2
    while cid in used:
        cid, n = f"{base}-{n}", n + 1
    return cid


@dataclass
class Candidate:
    """A device the wizard lists: discovery's answer, then the probe's (with credentials)."""

    address: str
    name: str
    manufacturer: str = ""
    model: str = ""
    camera_id: str | None = None  # already added as this camera
    profiles: list[dict[str, Any]] = field(default_factory=list)
    snapshot_jpeg: bytes | None = None
    error: str = ""

    @property
    def label(self) -> str:
        what = " ".join(x for x in (self.manufacturer, self.model) if x)
        host = self.address.split("//", 1)[-1].split("/", 1)[0]
        added = f" (added as {self.camera_id})" if self.camera_id else ""
        return f"{self.name or host} — {what or 'ONVIF device'} — {host}{added}"


class CameraWizard(RemoteModel):
    """Discovery, probes and adds against one recorder."""

    def discover(self, host: str = "") -> concurrent.futures.Future[list[Candidate]]:
        """``GET /discovery/onvif`` (plus a direct probe of ``host`` when given)."""

        async def work(api: ApiClient) -> list[Candidate]:
            found = await api.get_json("/discovery/onvif", {"host": host} if host else None)
            return [
                Candidate(d["address"], d["name"], d["manufacturer"], d["model"], d["camera_id"])
                for d in found
            ]

        return self._call(work)

    def probe(
        self, candidates: list[Candidate], username: str, password: str
    ) -> concurrent.futures.Future[list[Candidate]]:
        """Ask each device with the credentials: its profiles and a picture (errors kept on
        the candidate, so one refusal does not hide the others)."""

        async def work(api: ApiClient) -> list[Candidate]:
            for c in candidates:
                body = {"onvif": c.address, "username": username, "password": password,
                        "snapshot": True}  # fmt: skip
                try:
                    found = await api.post_json("/cameras/probe", body)
                except ApiError as exc:
                    c.error = str(exc)
                    continue
                dev = found["onvif"]
                c.error = ""
                c.manufacturer, c.model = dev["manufacturer"], dev["model"]
                c.profiles = dev["profiles"]
                if found.get("snapshot_jpeg"):
                    c.snapshot_jpeg = base64.b64decode(found["snapshot_jpeg"])
            return candidates

        return self._call(work)

    def add(
        self, candidates: list[Candidate], username: str, password: str
    ) -> concurrent.futures.Future[list[dict[str, Any]]]:
        """``POST /cameras`` by ONVIF address for each: the recorder picks main and sub."""

        async def work(api: ApiClient) -> list[dict[str, Any]]:
            taken = [c["id"] for c in await api.get_json("/cameras")]
            added = []
            for c in candidates:
                cid = camera_id_for(c.name or c.model or "camera", taken)
                taken.append(cid)
                body = {"id": cid, "name": c.name or cid, "onvif": c.address,
                        "username": username, "password": password}  # fmt: skip
                added.append(await api.post_json("/cameras", body))
            return added

        return self._call(work)
