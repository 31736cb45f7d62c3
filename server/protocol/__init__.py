"""The wire package: what the recorder and its clients must agree on, one code path for both.

Codecs of the wire formats, time helpers, retry backoff, crash-safe writes and the export
manifest's verification. Standard library, msgspec and cryptography only (``pyproject.toml``
lists them): the workstation (``app``) may import this package and nothing else from ``server``.
"""

from server.protocol.fragindex import Fragment, decode_fragment_index, encode_fragment_index
from server.protocol.timeutil import US_PER_SECOND, us_to_iso

__all__ = [
    "US_PER_SECOND",
    "Fragment",
    "decode_fragment_index",
    "encode_fragment_index",
    "us_to_iso",
]
