"""Live video for the workstation: decoder choice, the per-tile pipeline, the frame slot."""

from app.live.decoder import Decoder, DecoderAttempt, open_decoder
from app.live.slot import FrameSlot
from app.live.tile import LiveTile, TileConfig, TileStats

__all__ = [
    "Decoder",
    "DecoderAttempt",
    "FrameSlot",
    "LiveTile",
    "TileConfig",
    "TileStats",
    "open_decoder",
]
