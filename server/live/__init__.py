"""Live distribution: the embedded NATS server and the publisher of camera packets.

``server.protocol.live`` holds the wire format (subjects, packet header) that clients import;
this package is the recorder's side of it and may use I/O and third-party packages.
"""

from server.live.nats_server import EmbeddedNats, NatsCredentials, NatsServerError
from server.live.publisher import LivePublisher, LiveSink

__all__ = ["EmbeddedNats", "LivePublisher", "LiveSink", "NatsCredentials", "NatsServerError"]
