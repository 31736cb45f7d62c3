"""What a WHEP offer asks for, checked before any peer connection exists (so a bad offer
leaves nothing behind)."""

from __future__ import annotations

from dataclasses import dataclass

from aiortc import sdp

MAX_OFFER_BYTES = 64 * 1024


class OfferError(ValueError):
    """The offer is not usable; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


@dataclass(frozen=True)
class Offer:
    sdp: str
    video_codecs: frozenset[str]  # upper-case encoding names offered for video: H264, VP8, ...


def parse_offer(text: str) -> Offer:
    """Parse and sanity-check an SDP offer; raises ``OfferError`` (400) when malformed."""
    if not text.strip() or len(text) > MAX_OFFER_BYTES:
        raise OfferError(400, "bad_sdp", "the body must be an SDP offer (at most 64 KiB)")
    if not text.lstrip().startswith("v=0"):
        raise OfferError(400, "bad_sdp", "not an SDP offer: it must start with 'v=0'")
    try:
        desc = sdp.SessionDescription.parse(text)
    except Exception as exc:  # aiortc's parser raises whatever the bad line triggers
        raise OfferError(400, "bad_sdp", f"the SDP offer cannot be parsed: {exc}") from None
    video = [m for m in desc.media if m.kind == "video"]
    if not video:
        raise OfferError(400, "bad_sdp", "the offer has no video section")
    m = video[0]
    if m.direction not in (None, "recvonly", "sendrecv"):
        raise OfferError(400, "bad_sdp", f"the offer's video is {m.direction}: nothing to receive")
    # aiortc fills ``dtls`` from a=setup alone: a fingerprint must be there, or DTLS would
    # accept any certificate and the media would go to whoever answers the ICE checks
    if not (m.ice.usernameFragment and m.ice.password) or m.dtls is None or not m.dtls.fingerprints:
        raise OfferError(400, "bad_sdp", "the offer lacks ICE credentials or a DTLS fingerprint")
    codecs = frozenset(c.mimeType.split("/", 1)[-1].upper() for c in m.rtp.codecs)
    return Offer(text, codecs)
