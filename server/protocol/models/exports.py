"""Export jobs: what to cut, and how the job goes."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from server.protocol.models.common import Micros, MicrosIn, StreamName

Format = Literal["mp4", "mkv"]


class ExportCamera(msgspec.Struct, forbid_unknown_fields=True):
    camera: str
    stream: StreamName = "main"


class ExportInput(msgspec.Struct, forbid_unknown_fields=True):
    cameras: Annotated[list[ExportCamera], Meta(min_length=1, max_length=64)]
    start_us: MicrosIn
    end_us: MicrosIn
    format: Format = "mp4"
    exact: Annotated[bool, Meta(description="re-encode the first GOP from start")] = False

    def __post_init__(self) -> None:
        if self.end_us <= self.start_us:
            raise ValueError("end_us must be after start_us")


class Export(msgspec.Struct):
    id: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    progress: Annotated[float, Meta(ge=0, le=1)]
    error: str | None
    files: list[str]
    cameras: list[ExportCamera]
    start_us: Micros
    end_us: Micros
    format: Format
    exact: bool
    exported_by: str
    created_us: Micros
    finished_us: Micros | None
