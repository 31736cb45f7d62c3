"""A site: the recorders that share one NATS cluster (docs/design/site.md)."""

from __future__ import annotations

from typing import Literal

import msgspec

from server.protocol.models.common import Micros


class SiteRecorder(msgspec.Struct):
    id: str
    name: str
    api: str  # http://HOST:PORT as that recorder advertises it
    state: Literal["up", "down"]  # down: no heartbeat for a while
    cameras: int
    load: float  # one-minute load average per core
    version: str
    seen_us: Micros  # its last heartbeat


class ClusterState(msgspec.Struct):
    nodes: int  # nats-servers this one is routed to, itself included
    routes: list[str]  # the others' server names
    jetstream: Literal["ok", "no quorum", "off"]
    replicas: int  # of the site's JetStream assets: 3 from three nodes on, else 1


class Site(msgspec.Struct):
    name: str  # "": a recorder on its own (no [site])
    recorder: str  # the id of the recorder that answered
    recorders: list[SiteRecorder]
    cluster: ClusterState
    conflicts: list[str] = []
