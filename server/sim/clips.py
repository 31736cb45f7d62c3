"""Synthetic and transcoded video clips that the simulated cameras serve.

The clips stand in for real camera footage: a moving scene (so motion detection and encoders
have work to do), a burned-in clock (so a human can see the media time and a test can check which
frame ended up where) and a machine-readable frame code (a strip of black/white blocks that
:func:`read_frame_number` decodes even after scaling and lossy compression).

Every function caches: a clip whose file already exists is not encoded again, and files are
written to ``*.tmp.mp4`` first and renamed, so a crash never leaves a half clip behind that a
later run would take for a finished one.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

logger = logging.getLogger(__name__)

CODECS = {"h264": "libx264", "hevc": "libx265"}

# Frame code geometry, as fractions of the frame so that it survives scaling: a start block
# (white), a guard block (black), FRAME_CODE_BITS bits MSB first and an even-parity block, along
# the bottom-left edge.
FRAME_CODE_BITS = 20
_CODE_BLOCKS = 2 + FRAME_CODE_BITS + 1
_CODE_BLOCK_W = 1 / 48  # of the frame width
_CODE_X0 = 1 / 96  # left margin, of the frame width
_CODE_H = 1 / 20  # of the frame height
_CODE_Y1 = 1 - 1 / 48  # bottom edge of the strip, of the frame height


@dataclass(frozen=True)
class ClipSpec:
    """What a synthetic clip looks like and how it is encoded.

    ``bitrate`` (bits/s) switches to constant bitrate with HRD filler, as many real cameras send,
    so the stream really reaches that rate even when the scene is easy to compress; ``None``
    leaves the encoder's default quality-based rate control. ``gop`` is the key frame interval in
    frames (default: one per second). ``scene`` picks the colours and motion paths, so that
    cameras differ while a camera's main and sub streams show the same scene.
    """

    width: int
    height: int
    fps: int = 25
    seconds: float = 10
    codec: str = "h264"
    bitrate: int | None = None
    label: str = ""
    gop: int | None = None
    scene: int = 0

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ValueError(f"codec must be one of {sorted(CODECS)}, not {self.codec!r}")
        if self.width % 2 or self.height % 2 or self.width < 64 or self.height < 64:
            raise ValueError("width and height must be even and at least 64 (yuv420p)")
        if self.fps <= 0 or self.seconds <= 0:
            raise ValueError("fps and seconds must be positive")

    @property
    def key_interval(self) -> int:
        """Frames between key frames."""
        return self.gop or self.fps

    @property
    def frames(self) -> int:
        """Number of frames in the clip."""
        return max(1, round(self.seconds * self.fps))


def _tmp_path(path: Path) -> Path:
    return path.with_suffix(".tmp.mp4")


def _encoder_options(spec: ClipSpec) -> dict[str, str]:
    """libx264/libx265 options: fixed GOP, no B-frames, optionally strict CBR."""
    g = spec.key_interval
    if spec.codec == "h264":
        params = [f"keyint={g}", f"min-keyint={g}", "scenecut=0", "bframes=0"]
        opts = {"preset": "ultrafast", "bf": "0", "g": str(g)}
        if spec.bitrate:
            # nal-hrd=cbr makes x264 pad with filler NAL units, so the rate holds on easy scenes.
            params += ["nal-hrd=cbr", "force-cfr=1"]
            b = str(spec.bitrate)
            opts |= {"b": b, "minrate": b, "maxrate": b, "bufsize": str(spec.bitrate // 2)}
        opts["x264-params"] = ":".join(params)
        return opts
    params = [
        f"keyint={g}",
        f"min-keyint={g}",
        "scenecut=0",
        "bframes=0",
        "log-level=error",
    ]
    if spec.bitrate:
        kbps = max(1, spec.bitrate // 1000)
        params += [
            f"bitrate={kbps}",
            f"vbv-maxrate={kbps}",
            f"vbv-bufsize={max(1, kbps // 2)}",
            "strict-cbr=1",
        ]
    return {"preset": "ultrafast", "x265-params": ":".join(params)}


def _scene_colours(scene: int) -> tuple[np.ndarray, np.ndarray, tuple, tuple]:
    """Two background colours and two shape colours (BGR) for a scene number."""
    rng = np.random.default_rng(1009 + scene * 7919)
    hue = (scene * 47) % 180
    bg = []
    for dh, s, v in ((0, 150, 150), (25, 200, 70)):
        hsv = np.uint8([[[(hue + dh) % 180, s, v]]])
        bg.append(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32))
    shapes = []
    for dh in (90, 60):
        hsv = np.uint8([[[(hue + dh + int(rng.integers(0, 20))) % 180, 230, 255]]])
        shapes.append(tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]))
    return bg[0], bg[1], shapes[0], shapes[1]


class _SceneRenderer:
    """Draws frames cheaply: the background is computed once and scrolled by slicing."""

    def __init__(self, spec: ClipSpec) -> None:
        self.spec = spec
        w, h = spec.width, spec.height
        c0, c1, self.shape_a, self.shape_b = _scene_colours(spec.scene)
        grid = max(16, h // 9)
        self.period = grid * 4
        # A background periodic in x with period `period`, wide enough to slice any scroll offset.
        x = np.arange(w + self.period, dtype=np.float32)
        y = np.arange(h, dtype=np.float32)
        wave = 0.5 + 0.5 * np.cos(2 * np.pi * x / self.period)  # (W+P,)
        shade = 0.6 + 0.4 * (y / max(1, h - 1))  # (H,)
        mix = wave[None, :, None]
        bg = (c0 * (1 - mix) + c1 * mix) * shade[:, None, None]
        bg = bg.astype(np.uint8)
        bg[:, x.astype(np.int64) % grid == 0] = (200, 200, 200)
        bg[y.astype(np.int64) % grid == 0, :] = (200, 200, 200)
        self.background = np.ascontiguousarray(bg)
        self.speed = self.period / (4.0 * spec.fps)  # one period every 4 s
        self.radius = max(6, h // 12)
        self.box = max(8, h // 8)
        self.phase = (spec.scene * 1.3) % (2 * np.pi)

        # Burned-in clock: sized so the time string covers about 40 % of the width.
        self.font = cv2.FONT_HERSHEY_SIMPLEX
        (tw, th), _ = cv2.getTextSize("00:00:00.000", self.font, 1.0, 2)
        self.scale = 0.4 * w / tw
        self.thick = max(1, round(self.scale * 2))
        self.line_h = round(th * self.scale * 1.6)
        self.label_scale = self.scale * 0.6
        self.label_thick = max(1, round(self.label_scale * 2))
        lines = 3 if spec.label else 2
        widths = [cv2.getTextSize(spec.label, self.font, self.label_scale, self.label_thick)[0][0]]
        widths += [
            cv2.getTextSize(s, self.font, self.scale, self.thick)[0][0]
            for s in ("00:00:00.000", "frame 00000")
        ]
        self.pad = max(2, self.line_h // 6)
        box_w = min(w, max(widths) + 4 * self.pad)
        self.text_box = (0, 0, box_w, round(self.line_h * (lines + 0.4)))

    def render(self, n: int) -> np.ndarray:
        """Frame ``n`` as a BGR image."""
        spec = self.spec
        w, h = spec.width, spec.height
        t = n / spec.fps
        off = int(n * self.speed) % self.period
        img = self.background[:, off : off + w].copy()

        cx = int(w / 2 + 0.35 * w * math.sin(2 * math.pi * t / 5 + self.phase))
        cy = int(h / 2 + 0.3 * h * math.sin(2 * math.pi * t / 3.7 + self.phase))
        cv2.circle(img, (cx, cy), self.radius, self.shape_a, -1, cv2.LINE_8)
        bx = int((w - self.box) * (0.5 + 0.5 * math.sin(2 * math.pi * t / 7 + 2 * self.phase)))
        by = int((h - self.box) * (0.5 + 0.5 * math.cos(2 * math.pi * t / 3 + self.phase)))
        cv2.rectangle(img, (bx, by), (bx + self.box, by + self.box), self.shape_b, -1)

        x0, y0, x1, y1 = self.text_box
        cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 0), -1)
        ms = round(t * 1000)
        clock = (
            f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"
        )
        lines = [(spec.label, self.label_scale, self.label_thick)] if spec.label else []
        lines += [(clock, self.scale, self.thick), (f"frame {n}", self.scale, self.thick)]
        pad = self.pad
        for i, (text, scale, thick) in enumerate(lines):
            y = round(self.line_h * (i + 1)) - pad
            cv2.putText(img, text, (pad * 2, y), self.font, scale, (255, 255, 255), thick)
        _draw_frame_code(img, n)
        return img


def _code_blocks(n: int) -> list[int]:
    bits = [(n >> (FRAME_CODE_BITS - 1 - i)) & 1 for i in range(FRAME_CODE_BITS)]
    return [1, 0, *bits, sum(bits) & 1]


def _draw_frame_code(img: np.ndarray, n: int) -> None:
    h, w = img.shape[:2]
    y1 = round(_CODE_Y1 * h)
    y0 = y1 - max(4, round(_CODE_H * h))
    xs = [round((_CODE_X0 + i * _CODE_BLOCK_W) * w) for i in range(_CODE_BLOCKS + 1)]
    border = max(2, round(_CODE_BLOCK_W * w / 4))
    cv2.rectangle(img, (xs[0] - border, y0 - border), (xs[-1] + border, y1 + border), 0, -1)
    for i, bit in enumerate(_code_blocks(n % (1 << FRAME_CODE_BITS))):
        if bit:
            img[y0:y1, xs[i] : xs[i + 1]] = 255


def read_frame_number(image: np.ndarray) -> int | None:
    """Decode the frame code of a clip frame, or ``None`` when it is not readable.

    ``image`` is a luma plane (2-D) or a BGR/RGB image, at any scale of the original clip, so
    tests can tell which source frame a recorder or a live view really delivered.
    """
    if image.ndim == 3:
        image = image.mean(axis=2)
    h, w = image.shape[:2]
    y1 = _CODE_Y1 * h
    y0 = y1 - max(4, _CODE_H * h)
    ya, yb = round(y0 + (y1 - y0) * 0.25), max(round(y0 + (y1 - y0) * 0.75), round(y0) + 1)
    blocks = []
    for i in range(_CODE_BLOCKS):
        xa = (_CODE_X0 + (i + 0.25) * _CODE_BLOCK_W) * w
        xb = (_CODE_X0 + (i + 0.75) * _CODE_BLOCK_W) * w
        patch = image[ya:yb, round(xa) : max(round(xb), round(xa) + 1)]
        blocks.append(1 if float(patch.mean()) >= 128 else 0)
    if blocks[0] != 1 or blocks[1] != 0:
        return None
    bits = blocks[2 : 2 + FRAME_CODE_BITS]
    if sum(bits) & 1 != blocks[-1]:
        return None
    return int("".join(map(str, bits)), 2)


def _encode(path: Path, spec: ClipSpec, frames: Iterator[np.ndarray]) -> None:
    """Encode BGR (H,W,3) or I420 (H*3/2,W) arrays into an MP4, atomically."""
    tmp = _tmp_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tb = Fraction(1, spec.fps)
    try:
        with av.open(str(tmp), mode="w", format="mp4") as out:
            stream = out.add_stream(CODECS[spec.codec], rate=spec.fps)
            stream.width = spec.width
            stream.height = spec.height
            stream.pix_fmt = "yuv420p"
            stream.time_base = tb
            ctx = stream.codec_context
            ctx.time_base = tb
            ctx.gop_size = spec.key_interval
            ctx.max_b_frames = 0
            # PyAV defaults to slice threading, which makes libx264 cut every frame into slices;
            # cameras usually send one slice per frame, and frame threads encode faster.
            ctx.thread_type = "FRAME"
            ctx.thread_count = 0
            if spec.bitrate:
                ctx.bit_rate = spec.bitrate
            ctx.options = _encoder_options(spec)
            for n, img in enumerate(frames):
                if img.ndim == 3:
                    img = cv2.cvtColor(img, cv2.COLOR_BGR2YUV_I420)
                frame = av.VideoFrame.from_ndarray(img, format="yuv420p")
                frame.pts = n
                frame.time_base = tb
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def make_clip(path: Path, spec: ClipSpec) -> Path:
    """Encode a synthetic moving scene with a burned-in clock into ``path`` (cached)."""
    path = Path(path)
    if path.exists():
        return path
    started = time.perf_counter()
    renderer = _SceneRenderer(spec)
    _encode(path, spec, (renderer.render(n) for n in range(spec.frames)))
    logger.info(
        "encoded %s (%dx%d %s, %d frames) in %.2f s",
        path.name,
        spec.width,
        spec.height,
        spec.codec,
        spec.frames,
        time.perf_counter() - started,
    )
    return path


def transcode_to_h264(
    src: Path,
    dst: Path,
    fps: int | None = None,
    max_seconds: float | None = None,
    size: tuple[int, int] | None = None,
) -> Path:
    """Transcode any video PyAV opens into an H.264 MP4 a simulated camera can serve (cached).

    Real footage (e.g. OpenCV's ``vtest.avi``) exercises analytics that a synthetic scene cannot.
    The output has a key frame every second and no B-frames, like a camera's stream. ``fps``
    resamples the frame rate (frames are repeated or dropped by timestamp); ``max_seconds`` cuts
    the clip short; ``size`` (width, height) scales it, as a camera's sub stream.
    """
    dst = Path(dst)
    if dst.exists():
        return dst
    started = time.perf_counter()
    with av.open(str(src)) as inp:
        vs = inp.streams.video[0]
        src_rate = float(vs.average_rate or vs.guessed_rate or 25)
        out_fps = fps or max(1, round(src_rate))
        width, height = size or (vs.codec_context.width, vs.codec_context.height)
        width, height = width & ~1, height & ~1
        spec = ClipSpec(width, height, fps=out_fps, seconds=max_seconds or 1, codec="h264")
        limit = max_seconds if max_seconds is not None else math.inf

        def frames() -> Iterator[np.ndarray]:
            next_k = 0  # next output frame index
            prev: np.ndarray | None = None
            prev_t = 0.0
            for i, frame in enumerate(inp.decode(vs)):
                t = frame.time if frame.time is not None else i / src_rate
                img = frame.to_ndarray(format="yuv420p", width=width, height=height)
                if prev is not None:
                    # Output frame k shows the newest source frame with time <= k / out_fps.
                    while next_k / out_fps < min(t, limit) - 1e-6:
                        yield prev
                        next_k += 1
                if t >= limit:
                    return
                prev, prev_t = img, t
            if prev is not None:
                end = min(prev_t + 1 / src_rate, limit)
                while next_k / out_fps < end - 1e-6 or next_k == 0:
                    yield prev
                    next_k += 1

        _encode(dst, spec, frames())
    logger.info("transcoded %s to %s in %.2f s", src, dst.name, time.perf_counter() - started)
    return dst


def demo_clips(directory: Path, count: int) -> list[tuple[Path, Path]]:
    """(main, sub) clip pairs for ``count`` demo cameras (cached).

    Camera 1 shows real footage, people walking across a square (OpenCV's vtest, kept in the
    repo: :mod:`server.sim.footage`), so a newcomer sees the analytics put boxes on people; its
    sub stream is the same footage at half size. The others are synthetic scenes, main
    1920x1080 at 4 Mbit/s CBR and sub 640x360 at 512 kbit/s, typical camera settings, so the
    demo recorder writes realistic amounts of data.
    """
    from server.sim.footage import VTEST

    directory = Path(directory)
    pairs = []
    if not VTEST.exists():  # an installed package without the repo's resources/
        logger.warning("%s is absent: demo camera 1 shows a synthetic scene", VTEST)
    for i in range(1, count + 1):
        if i == 1 and VTEST.exists():
            main = transcode_to_h264(VTEST, directory / "demo-cam01-main-vtest-768x576-10fps.mp4")
            sub = transcode_to_h264(
                VTEST, directory / "demo-cam01-sub-vtest-384x288-10fps.mp4", size=(384, 288)
            )
            pairs.append((main, sub))
            continue
        pair = []
        for kind, (w, h), rate in (("main", (1920, 1080), 4_000_000), ("sub", (640, 360), 512_000)):
            spec = ClipSpec(
                w, h, fps=25, seconds=20, bitrate=rate, label=f"Demo camera {i} {kind}", scene=i
            )
            pair.append(make_clip(directory / f"demo-cam{i:02d}-{kind}-{w}x{h}-25fps.mp4", spec))
        pairs.append((pair[0], pair[1]))
    return pairs
