"""The SQLite catalog: cameras, streams, recording runs, segments, retention bookkeeping."""

from server.catalog.catalog import Catalog, SegmentRow

__all__ = ["Catalog", "SegmentRow"]
