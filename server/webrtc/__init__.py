"""Live video for browsers and other players over WebRTC (WHEP), with aiortc, never re-encoded.

``sessions`` runs the peer connections, ``hub`` moves a stream's packets from the ingest thread
to the viewers' tracks, ``track`` hands them to aiortc as ``av.Packet``s, ``offer`` checks what
a viewer offers before anything is created.
"""

from server.webrtc.offer import OfferError, parse_offer
from server.webrtc.sessions import WebRtcSettings, WhepSession, WhepSessions
from server.webrtc.track import PacketTrack

__all__ = [
    "OfferError",
    "PacketTrack",
    "WebRtcSettings",
    "WhepSession",
    "WhepSessions",
    "parse_offer",
]
