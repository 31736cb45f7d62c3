"""The wire contract shared by the recorder and its clients.

Pure Python with no I/O and no third-party imports: the workstation (``app``) may import this
package and nothing else from ``server``.
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
