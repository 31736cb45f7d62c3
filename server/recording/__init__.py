"""Passthrough recording: fragmented MP4 segments, the time model, recovery and retention."""
