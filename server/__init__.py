"""Vigia recorder (``vigia-server``): ingest, passthrough recording, catalog and retention."""

__version__ = "0.1.0"
