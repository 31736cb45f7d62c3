"""Decoded pictures as the workstation hands them around: planes, never RGB.

Conversion to RGB happens on the GPU in the tile's shader (or once, in the CPU fallback of the
widget that paints); the engine only moves planes. ``pts_us`` is wall time in µs (the recorder's
time model), so overlays, the timeline and synchronised playback all speak the same clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(slots=True)
class VideoFrame:
    width: int
    height: int
    format: str  # 'yuv420p' (3 planes) or 'nv12' (2 planes); from hw decoders usually nv12
    planes: tuple[np.ndarray, ...]  # 2-D uint8 arrays (nv12's UV plane: H/2 x W, interleaved)
    pts_us: int  # wall time of the frame
    key: bool = False
    seq: int = 0  # increases with every frame a source produces (views detect new frames)
    decoder: str = "software"  # 'software' or the hwaccel device type that decoded it
    stream: str = "main"  # 'main' or 'sub'
    extra: dict = field(default_factory=dict)

    @property
    def luma(self) -> np.ndarray:
        return self.planes[0]


def frame_from_av(frame, pts_us: int, seq: int, decoder: str, stream: str) -> VideoFrame:
    """Copy an ``av.VideoFrame``'s planes out (PyAV reuses its buffers), cropping line padding."""
    fmt = frame.format.name
    if fmt not in ("yuv420p", "yuvj420p", "nv12"):
        frame = frame.reformat(format="yuv420p")
        fmt = "yuv420p"
    w, h = frame.width, frame.height
    planes = []
    for i, plane in enumerate(frame.planes):
        ph = h if i == 0 else (h + 1) // 2
        pw = w if (i == 0 or fmt == "nv12") else (w + 1) // 2
        if fmt == "nv12" and i == 1:
            pw = 2 * ((w + 1) // 2)
        buf = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
        planes.append(np.ascontiguousarray(buf[:ph, :pw]))
    return VideoFrame(
        width=w,
        height=h,
        format="nv12" if fmt == "nv12" else "yuv420p",
        planes=tuple(planes),
        pts_us=pts_us,
        key=bool(frame.key_frame),
        seq=seq,
        decoder=decoder,
        stream=stream,
    )
