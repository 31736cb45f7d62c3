"""Playback of recordings: range fetching with a cache, local decoding, a shared clock."""

from app.playback.clock import ManualTime, PlaybackClock
from app.playback.engine import PlaybackEngine, Presented
from app.playback.fetcher import ByteCache, LiveEdge, Position, Segment, SegmentFetcher

__all__ = [
    "ByteCache",
    "LiveEdge",
    "ManualTime",
    "PlaybackClock",
    "PlaybackEngine",
    "Position",
    "Presented",
    "Segment",
    "SegmentFetcher",
]
