"""Pulling camera streams: one PyAV demux thread per stream, reconnecting forever."""
