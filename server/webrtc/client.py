"""A WHEP viewer made with aiortc: what tests, benchmarks and other recorders use to watch a
camera the way a browser does (offer, POST, answer, DELETE)."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urljoin

import aiohttp
import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack


class WhepRefused(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"WHEP offer refused: {status} {body}")
        self.status, self.body = status, body


class WhepViewer:
    """One receive-only peer connection to ``{base}/api/v1/cameras/{camera}/whep``."""

    def __init__(self, base_url: str, camera_id: str, token: str, stream: str = "main") -> None:
        self.base_url = base_url
        self.url = f"{base_url}/api/v1/cameras/{camera_id}/whep?stream={stream}"
        self.token = token
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.location: str | None = None
        self._track: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

    async def start(self, http: aiohttp.ClientSession) -> None:
        pc = self.pc
        pc.addTransceiver("video", direction="recvonly")

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            if not self._track.done():
                self._track.set_result(track)

        await pc.setLocalDescription(await pc.createOffer())  # gathers every candidate
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/sdp"}
        async with http.post(self.url, data=pc.localDescription.sdp, headers=headers) as resp:
            body = await resp.text()
            if resp.status != 201:
                await pc.close()
                raise WhepRefused(resp.status, body)
            self.location = urljoin(self.base_url, resp.headers["Location"])
        await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))

    async def frames(self):
        """Decoded frames until the session ends."""
        track = await self._track
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            assert isinstance(frame, av.VideoFrame)
            yield frame

    async def close(self, http: aiohttp.ClientSession | None = None) -> int | None:
        """DELETE the session (when ``http`` is given) and close; returns the DELETE status."""
        status = None
        if http is not None and self.location:
            with contextlib.suppress(aiohttp.ClientError):
                headers = {"Authorization": f"Bearer {self.token}"}
                async with http.delete(self.location, headers=headers) as resp:
                    status = resp.status
        await self.pc.close()
        return status
