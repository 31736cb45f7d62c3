"""One video tile: decoded planes on screen, overlays on top, digital zoom.

Two renderers share one tile: ``GLVideoView`` uploads the Y/U/V (or Y/UV for nv12) planes as
textures and converts YUV to RGB in a fragment shader, scaled on the GPU; ``RasterVideoView``
converts once per new frame with ``cv2.cvtColor`` and paints with QPainter. Which one runs is
chosen at run time (``choose_renderer``): the GPU where a hardware OpenGL context can be had,
the raster path otherwise (no context at all, or a software rasteriser such as llvmpipe, where
GL costs ten times the CPU of raster painting). ``VIGIA_RENDERER=gl|raster`` forces one.

The tile never blocks the UI thread: a shared ``FramePump`` timer ticks at the screen rate and
asks each visible tile's source for ``latest()`` (a latest-wins slot: a lock and a reference),
repainting only when a new frame arrived. Overlays (boxes, zones, name, clock, recording dot,
states) are drawn with QPainter by the same widget after the picture, in widget coordinates
mapped through the zoom window, so they stay sharp at any zoom.
"""

from __future__ import annotations

import logging
import os
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np
from PySide6.QtCore import QCoreApplication, QObject, QPointF, QRectF, QSize, Qt, QTimer
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QGuiApplication,
    QImage,
    QOffscreenSurface,
    QOpenGLContext,
    QPaintEngine,
    QPainter,
    QPainterPath,
    QPen,
    QPolygonF,
    QVector3D,
    QVector4D,
)
from PySide6.QtWidgets import QToolButton, QVBoxLayout, QWidget
from shiboken6 import isValid

from app.frames import VideoFrame
from ui.theme import DARK, icon, label_color

if TYPE_CHECKING:
    from ui.tile_ptz import TilePtz

log = logging.getLogger(__name__)

STATES = ("live", "playback", "no_signal", "reconnecting", "keyframes_only")
MAX_ZOOM = 16.0


class FrameSource(Protocol):
    """What a tile pulls frames from (the engine's latest-wins slot, a playback engine...).

    ``latest()`` returns the newest frame, or ``(seq, frame)`` as ``app.live.slot.FrameSlot``
    does. An optional integer attribute ``seq`` that grows with every new frame lets the tile
    skip ``latest()`` when nothing changed.
    """

    def latest(self) -> VideoFrame | tuple[int, VideoFrame | None] | None: ...


@dataclass(slots=True)
class OverlayBox:
    """A detection box in normalised image coordinates (0..1, origin top-left)."""

    x0: float
    y0: float
    x1: float
    y1: float
    label: str = ""
    score: float | None = None
    track_id: int | None = None


def box_coords(box) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of an OverlayBox or of an ``app.overlays.Detection`` (``box`` tuple)."""
    coords = getattr(box, "box", None)
    if coords is not None:
        return coords
    return box.x0, box.y0, box.x1, box.y1


@dataclass(slots=True)
class OverlayShape:
    """A zone (closed polygon) or a line (open polyline), normalised image coordinates."""

    points: Sequence[tuple[float, float]]
    kind: str = "zone"  # 'zone' or 'line'
    name: str = ""


# --- colour conversion ------------------------------------------------------------------------

# Kr, Kb of the two matrices that matter for cameras (ITU-R BT.601 and BT.709).
_KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


def yuv_matrix(standard: str) -> tuple[np.ndarray, np.ndarray]:
    """Limited-range YUV (as sampled from 8-bit textures, 0..1) to RGB: rgb = M @ (yuv - off)."""
    kr, kb = _KR_KB[standard]
    kg = 1.0 - kr - kb
    full = np.array(
        [
            [1.0, 0.0, 2.0 * (1.0 - kr)],
            [1.0, -2.0 * (1.0 - kb) * kb / kg, -2.0 * (1.0 - kr) * kr / kg],
            [1.0, 2.0 * (1.0 - kb), 0.0],
        ]
    )
    scale = np.diag([255.0 / 219.0, 255.0 / 224.0, 255.0 / 224.0])
    return full @ scale, np.array([16.0, 128.0, 128.0]) / 255.0


def frame_standard(frame: VideoFrame) -> str:
    """BT.709 for HD, BT.601 for SD (what players assume when the stream does not say)."""
    std = frame.extra.get("colorspace") if frame.extra else None
    if std in _KR_KB:
        return std
    return "bt709" if frame.height >= 720 else "bt601"


def frame_to_rgb(frame: VideoFrame) -> np.ndarray:
    """H×W×3 RGB of a frame, with OpenCV (BT.601 limited range: OpenCV's only YUV matrix)."""
    return _convert(frame, cv2.COLOR_YUV2RGB_NV12, cv2.COLOR_YUV2RGB_I420)


def frame_to_bgrx(frame: VideoFrame) -> np.ndarray:
    """H×W×4 in the byte order of ``QImage.Format_RGB32`` on little-endian machines: Qt
    blits it to the window as it is, where RGB888 would be converted on every paint."""
    return _convert(frame, cv2.COLOR_YUV2BGRA_NV12, cv2.COLOR_YUV2BGRA_I420)


def _convert(frame: VideoFrame, nv12_code: int, i420_code: int) -> np.ndarray:
    w, h = frame.width & ~1, frame.height & ~1
    if frame.format == "nv12":
        y, uv = frame.planes
        return cv2.cvtColorTwoPlane(
            np.ascontiguousarray(y[:h, :w]),
            np.ascontiguousarray(uv[: h // 2, :w]).reshape(h // 2, w // 2, 2),
            nv12_code,
        )
    if frame.format != "yuv420p":
        raise ValueError(f"unsupported frame format {frame.format!r} (yuv420p or nv12)")
    y, u, v = frame.planes
    i420 = np.empty((h * 3 // 2, w), np.uint8)
    i420[:h] = y[:h, :w]
    quarter = (h // 2) * (w // 2)
    flat = i420[h:].reshape(-1)
    flat[:quarter] = u[: h // 2, : w // 2].reshape(-1)
    flat[quarter:] = v[: h // 2, : w // 2].reshape(-1)
    return cv2.cvtColor(i420, i420_code)


# --- geometry -----------------------------------------------------------------------------


def fit_rect(width: float, height: float, img_w: int, img_h: int) -> QRectF:
    """The largest rectangle of the image's aspect centred in width×height (letterbox)."""
    if img_w <= 0 or img_h <= 0 or width <= 0 or height <= 0:
        return QRectF(0, 0, max(width, 0), max(height, 0))
    scale = min(width / img_w, height / img_h)
    w, h = img_w * scale, img_h * scale
    return QRectF((width - w) / 2, (height - h) / 2, w, h)


@dataclass(slots=True)
class Viewport:
    """Digital zoom: the visible window of the image, normalised (x0, y0, size 1/zoom)."""

    zoom: float = 1.0
    x0: float = 0.0
    y0: float = 0.0

    @property
    def size(self) -> float:
        return 1.0 / self.zoom

    def _clamp(self) -> None:
        self.zoom = min(max(self.zoom, 1.0), MAX_ZOOM)
        limit = 1.0 - self.size
        self.x0 = min(max(self.x0, 0.0), limit)
        self.y0 = min(max(self.y0, 0.0), limit)

    def zoom_about(self, factor: float, u: float, v: float) -> None:
        """Zoom by ``factor`` keeping image point (u, v) where it is on screen."""
        fx, fy = (u - self.x0) * self.zoom, (v - self.y0) * self.zoom  # 0..1 within the view
        self.zoom = min(max(self.zoom * factor, 1.0), MAX_ZOOM)
        self.x0, self.y0 = u - fx / self.zoom, v - fy / self.zoom
        self._clamp()

    def pan(self, du: float, dv: float) -> None:
        self.x0 += du
        self.y0 += dv
        self._clamp()

    def reset(self) -> None:
        self.zoom, self.x0, self.y0 = 1.0, 0.0, 0.0


# --- renderer choice ----------------------------------------------------------------------


@cache
def gl_renderer_name() -> str | None:
    """The OpenGL renderer string of a context we can create, or None when there is none."""
    if QGuiApplication.instance() is None:
        return None
    ctx = QOpenGLContext()
    if not ctx.create():
        return None
    surface = QOffscreenSurface()
    surface.setFormat(ctx.format())
    surface.create()
    try:
        if not ctx.makeCurrent(surface):
            return None
        name = ctx.functions().glGetString(0x1F01) or "unknown"  # GL_RENDERER
        ctx.doneCurrent()
        return str(name)
    finally:
        surface.destroy()


SOFTWARE_GL = ("llvmpipe", "softpipe", "software rasterizer", "swiftshader", "lavapipe")


def choose_renderer(preference: str = "auto") -> str:
    """'gl' or 'raster'. ``VIGIA_RENDERER`` in the environment overrides ``preference``."""
    preference = os.environ.get("VIGIA_RENDERER") or preference
    if preference not in ("auto", "gl", "raster"):
        raise ValueError(f"renderer must be auto, gl or raster, not {preference!r}")
    if preference == "raster":
        return "raster"
    name = gl_renderer_name()
    if name is None:
        if preference == "gl":
            log.warning("no OpenGL context can be created: tiles paint on the CPU")
        return "raster"
    if preference == "auto" and any(s in name.lower() for s in SOFTWARE_GL):
        log.info("OpenGL is software (%s): raster tiles cost less CPU", name)
        return "raster"
    return "gl"


# --- frame pump ---------------------------------------------------------------------------


class FramePump(QObject):
    """One timer at the screen's refresh rate polls every visible tile (not one timer per tile)."""

    _instance: FramePump | None = None

    def __init__(self, interval_ms: int | None = None) -> None:
        super().__init__()
        if interval_ms is None:
            screen = QGuiApplication.primaryScreen()
            rate = screen.refreshRate() if screen is not None else 60.0
            interval_ms = max(4, round(1000.0 / (rate if rate > 1 else 60.0)))
        self._tiles: weakref.WeakSet[VideoTile] = weakref.WeakSet()
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.tick)

    @classmethod
    def instance(cls) -> FramePump:
        if cls._instance is None:
            cls._instance = FramePump()
            app = QCoreApplication.instance()
            if app is not None:
                app.aboutToQuit.connect(cls._instance._timer.stop)
        return cls._instance

    @property
    def interval_ms(self) -> int:
        return self._timer.interval()

    def add(self, tile: VideoTile) -> None:
        self._tiles.add(tile)
        if not self._timer.isActive():
            self._timer.start()

    def discard(self, tile: VideoTile) -> None:
        self._tiles.discard(tile)
        if not self._tiles:
            self._timer.stop()

    def tick(self) -> None:
        for tile in list(self._tiles):
            if not isValid(tile):  # deleted on the C++ side (its wall went away)
                self.discard(tile)
            elif tile.isVisible():
                tile.poll()


# --- overlay painting ---------------------------------------------------------------------


def _tr(text: str) -> str:
    return QCoreApplication.translate("VideoTile", text)


@cache
def _clock_text(second: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))


def clock_text(pts_us: int) -> str:
    """Local wall time of a frame to the second (cached: the text changes once a second)."""
    if _clock_text.cache_info().currsize > 256:
        _clock_text.cache_clear()
    return _clock_text(pts_us // 1_000_000)


def _text_box_size(font: QFont, text: str) -> tuple[float, float]:
    """The plate around ``text`` (both paths use it, so labels sit alike on GL and raster)."""
    fm = QFontMetrics(font)
    return fm.horizontalAdvance(text) + 8, fm.height() + 2


def _text_box(p: QPainter, x: float, y: float, text: str, fg: QColor, bg: QColor) -> QRectF:
    """A label on a plate with its top left at (x, y). Raster: drawn from a cached image, since
    text shaping and antialiasing on every paint of every tile cost more than the picture
    itself on a busy wall. GL: drawn as text, because the GL paint engine draws those cached
    images black (Qt's GL engine on Mesa llvmpipe)."""
    font = p.font()
    if _on_gl(p):
        rect = QRectF(x, y, *_text_box_size(font, text))
        p.fillRect(rect, bg)
        p.setPen(fg)
        p.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
        return rect
    dpr = p.device().devicePixelRatioF() if p.device() is not None else 1.0
    pix = _label_image(text, font.family(), font.pixelSize(), fg.rgba(), bg.rgba(), dpr)
    p.drawImage(QPointF(x, y), pix)
    return QRectF(x, y, pix.width() / dpr, pix.height() / dpr)


def _text_box_from_corner(
    p: QPainter, right: float, bottom: float, text: str, fg: QColor, bg: QColor
) -> QRectF:
    """``_text_box`` with its bottom right at (right, bottom)."""
    w, h = _text_box_size(p.font(), text)
    return _text_box(p, right - w, bottom - h, text, fg, bg)


def _on_gl(p: QPainter) -> bool:
    engine = p.paintEngine()
    return engine is not None and engine.type() == QPaintEngine.Type.OpenGL2


@lru_cache(maxsize=512)
def _label_image(text: str, family: str, px: int, fg: int, bg: int, dpr: float) -> QImage:
    font = QFont(family)
    font.setPixelSize(max(1, px))
    w, h = _text_box_size(font, text)
    pix = QImage(
        max(1, round(w * dpr)), max(1, round(h * dpr)), QImage.Format.Format_ARGB32_Premultiplied
    )
    pix.setDevicePixelRatio(dpr)
    pix.fill(QColor.fromRgba(bg))
    q = QPainter(pix)
    try:
        q.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
        q.setFont(font)
        q.setPen(QColor.fromRgba(fg))
        q.drawText(QRectF(0, 0, w, h), Qt.AlignmentFlag.AlignCenter, text)
    finally:
        q.end()
    return pix


# --- views --------------------------------------------------------------------------------


# the 32-bit format Qt paints without converting: BGRX bytes (x86-64 and arm64 are little endian)
_NATIVE_32 = QImage.Format.Format_RGB32


class RasterVideoView(QWidget):
    """CPU path: one cv2 conversion per new frame (and size), QPainter for everything."""

    def __init__(self, tile: VideoTile) -> None:
        super().__init__(tile)
        self._tile = tile
        self._cache_key: tuple | None = None
        self._image: QImage | None = None
        self._rgb: np.ndarray | None = None  # keeps the QImage's memory alive
        self._rgb_frame: VideoFrame | None = None  # the frame self._full was converted from
        self._full: np.ndarray | None = None
        self.paints = 0
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)

    def _image_for(self, frame: VideoFrame, target: QRectF, vp: Viewport) -> QImage:
        dpr = self.devicePixelRatioF()
        tw, th = max(1, round(target.width() * dpr)), max(1, round(target.height() * dpr))
        key = (tw, th, vp.zoom, vp.x0, vp.y0)
        if self._rgb_frame is frame and key == self._cache_key and self._image is not None:
            return self._image
        if self._rgb_frame is not frame or self._full is None:
            self._full = frame_to_bgrx(frame)
            self._rgb_frame = frame
        full = self._full
        h, w = full.shape[:2]
        x0, y0 = round(vp.x0 * w), round(vp.y0 * h)
        x1, y1 = (
            max(x0 + 1, round((vp.x0 + vp.size) * w)),
            max(y0 + 1, round((vp.y0 + vp.size) * h)),
        )
        crop = full[y0:y1, x0:x1]
        if crop.shape[1] != tw or crop.shape[0] != th:
            shrinking = tw < crop.shape[1]
            interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
            rgb = cv2.resize(crop, (tw, th), interpolation=interp)
        else:
            rgb = np.ascontiguousarray(crop)
        image = QImage(rgb.data, tw, th, rgb.strides[0], _NATIVE_32)
        image.setDevicePixelRatio(dpr)
        self._rgb, self._image, self._cache_key = rgb, image, key
        return image

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        try:
            tile = self._tile
            p.fillRect(self.rect(), QColor(DARK.tile))
            frame = tile.frame
            if frame is not None:
                target = tile.picture_rect()
                p.drawImage(target.topLeft(), self._image_for(frame, target, tile.viewport))
            tile.paint_overlay(p)
        finally:
            p.end()  # an active painter left behind at the end of a paint event crashes Qt
        self.paints += 1


VERTEX_SHADER = """
attribute vec2 a_pos;
uniform vec4 u_dst;
uniform vec4 u_src;
varying vec2 v_tex;
void main() {
    v_tex = mix(u_src.xy, u_src.zw, a_pos);
    gl_Position = vec4(mix(u_dst.xy, u_dst.zw, a_pos), 0.0, 1.0);
}
"""

FRAGMENT_SHADER = """
varying vec2 v_tex;
uniform sampler2D u_y;
uniform sampler2D u_u;
uniform sampler2D u_v;
uniform float u_nv12;
uniform vec3 u_r;
uniform vec3 u_g;
uniform vec3 u_b;
uniform vec3 u_off;
void main() {
    float y = texture2D(u_y, v_tex).r;
    vec2 uv;
    if (u_nv12 > 0.5) {
        uv = texture2D(u_u, v_tex).UV_SWIZZLE;
    } else {
        uv = vec2(texture2D(u_u, v_tex).r, texture2D(u_v, v_tex).r);
    }
    vec3 c = vec3(y, uv) - u_off;
    gl_FragColor = vec4(clamp(vec3(dot(u_r, c), dot(u_g, c), dot(u_b, c)), 0.0, 1.0), 1.0);
}
"""


class GLVideoView:
    """GPU path (built lazily: importing QtOpenGL costs nothing where tiles are raster)."""

    def __new__(cls, tile: VideoTile):
        return _gl_view_class()(tile)


_GL_RESOURCES: dict[int, tuple] = {}


@cache
def _gl_view_class():
    from PySide6.QtOpenGL import (
        QOpenGLBuffer,
        QOpenGLPixelTransferOptions,
        QOpenGLShader,
        QOpenGLShaderProgram,
        QOpenGLTexture,
        QOpenGLVertexArrayObject,
    )
    from PySide6.QtOpenGLWidgets import QOpenGLWidget

    gl_float, gl_triangle_strip, gl_color_buffer_bit = 0x1406, 0x0005, 0x4000
    tex_fmt = QOpenGLTexture.TextureFormat
    pix_fmt = QOpenGLTexture.PixelFormat

    class _GLVideoView(QOpenGLWidget):
        def __init__(self, tile: VideoTile) -> None:
            super().__init__(tile)
            self._tile = tile
            self._program: QOpenGLShaderProgram | None = None
            self._vbo: QOpenGLBuffer | None = None
            self._vao: QOpenGLVertexArrayObject | None = None
            self._textures: list[QOpenGLTexture | None] = [None, None, None]
            self._uploaded: VideoFrame | None = None
            self._rg = True
            self.paints = 0
            self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)

        def initializeGL(self) -> None:
            ctx = self.context()
            fmt = ctx.format()
            self._rg = fmt.majorVersion() >= 3
            header = "precision mediump float;\n" if ctx.isOpenGLES() else "#version 120\n"
            swizzle = "rg" if self._rg else "ra"  # RG8 vs LUMINANCE_ALPHA for nv12's UV
            program = QOpenGLShaderProgram(self)
            vs = ("#version 120\n" if not ctx.isOpenGLES() else "") + VERTEX_SHADER
            fs = header + FRAGMENT_SHADER.replace("UV_SWIZZLE", swizzle)
            if not (
                program.addShaderFromSourceCode(QOpenGLShader.ShaderTypeBit.Vertex, vs)
                and program.addShaderFromSourceCode(QOpenGLShader.ShaderTypeBit.Fragment, fs)
                and program.link()
            ):
                raise RuntimeError(f"video shader failed: {program.log()}")
            self._program = program
            self._vao = QOpenGLVertexArrayObject(self)
            self._vao.create()  # may fail on old contexts; drawing works without one there
            self._vao.bind()
            self._vbo = QOpenGLBuffer(QOpenGLBuffer.Type.VertexBuffer)
            self._vbo.create()
            self._vbo.bind()
            quad = np.array([0, 0, 1, 0, 0, 1, 1, 1], np.float32).tobytes()
            self._vbo.allocate(quad, len(quad))
            loc = program.attributeLocation("a_pos")
            program.bind()
            program.enableAttributeArray(loc)
            program.setAttributeBuffer(loc, gl_float, 0, 2, 0)
            program.release()
            self._vbo.release()
            self._vao.release()
            self._uploaded = None
            self._gl_key = id(ctx)
            _GL_RESOURCES[self._gl_key] = (self._textures, self._vbo, self._vao)

        def release_gl(self) -> None:
            """Free textures and buffers now, with our context current. Call before deleting
            the widget: once Qt destroys the context (not current then) it is too late, and
            Python frees what is left later with a warning from Qt."""
            resources = _GL_RESOURCES.pop(getattr(self, "_gl_key", None), None)
            if resources is None:
                return
            self.makeCurrent()
            textures, vbo, vao = resources
            for tex in textures:
                if tex is not None:
                    tex.destroy()
            textures[:] = [None] * len(textures)
            vbo.destroy()
            vao.destroy()
            self.doneCurrent()
            self._uploaded = None

        def _upload(self, i: int, plane: np.ndarray, w: int, h: int, two: bool) -> None:
            if plane.strides[1] != 1 or plane.strides[0] < plane.shape[1]:
                plane = np.ascontiguousarray(plane)
            if two:
                fmt = tex_fmt.RG8_UNorm if self._rg else tex_fmt.LuminanceAlphaFormat
                src = pix_fmt.RG if self._rg else pix_fmt.LuminanceAlpha
            else:
                fmt = tex_fmt.R8_UNorm if self._rg else tex_fmt.LuminanceFormat
                src = pix_fmt.Red if self._rg else pix_fmt.Luminance
            tex = self._textures[i]
            if tex is None or tex.width() != w or tex.height() != h or tex.format() != fmt:
                if tex is not None:
                    tex.destroy()
                tex = QOpenGLTexture(QOpenGLTexture.Target.Target2D)  # owned by Python
                tex.setFormat(fmt)
                tex.setSize(w, h)
                tex.setMipLevels(1)
                tex.setMinMagFilters(QOpenGLTexture.Filter.Linear, QOpenGLTexture.Filter.Linear)
                tex.setWrapMode(QOpenGLTexture.WrapMode.ClampToEdge)
                tex.allocateStorage(src, QOpenGLTexture.PixelType.UInt8)
                self._textures[i] = tex
            opts = QOpenGLPixelTransferOptions()
            opts.setAlignment(1)
            opts.setRowLength(plane.strides[0] // (2 if two else 1))
            tex.setData(src, QOpenGLTexture.PixelType.UInt8, plane, opts)

        def _upload_frame(self, frame: VideoFrame) -> None:
            w, h = frame.width, frame.height
            cw, ch = (w + 1) // 2, (h + 1) // 2
            if frame.format == "nv12":
                self._upload(0, frame.planes[0], w, h, False)
                self._upload(1, frame.planes[1], cw, ch, True)
            elif frame.format == "yuv420p":
                self._upload(0, frame.planes[0], w, h, False)
                self._upload(1, frame.planes[1], cw, ch, False)
                self._upload(2, frame.planes[2], cw, ch, False)
            else:
                raise ValueError(f"unsupported frame format {frame.format!r}")
            self._uploaded = frame

        def paintGL(self) -> None:
            f = self.context().functions()
            f.glClearColor(0.0, 0.0, 0.0, 1.0)
            f.glClear(gl_color_buffer_bit)
            tile = self._tile
            frame = tile.frame
            if frame is not None and self._program is not None:
                if frame is not self._uploaded:
                    self._upload_frame(frame)
                self._draw(frame)
            p = QPainter(self)
            try:
                tile.paint_overlay(p)
            finally:
                p.end()
            self.paints += 1

        def _draw(self, frame: VideoFrame) -> None:
            tile, program = self._tile, self._program
            r = tile.picture_rect()
            ww, wh = max(1, self.width()), max(1, self.height())
            vp = tile.viewport
            program.bind()
            program.setUniformValue(
                "u_dst",
                QVector4D(
                    2 * r.left() / ww - 1,
                    1 - 2 * r.top() / wh,
                    2 * r.right() / ww - 1,
                    1 - 2 * r.bottom() / wh,
                ),
            )
            program.setUniformValue(
                "u_src", QVector4D(vp.x0, vp.y0, vp.x0 + vp.size, vp.y0 + vp.size)
            )
            m, off = yuv_matrix(frame_standard(frame))
            for name, row in zip(("u_r", "u_g", "u_b"), m, strict=True):
                program.setUniformValue(name, QVector3D(*map(float, row)))
            program.setUniformValue("u_off", QVector3D(*map(float, off)))
            program.setUniformValue1f("u_nv12", 1.0 if frame.format == "nv12" else 0.0)
            units = 2 if frame.format == "nv12" else 3
            for unit, name in enumerate(("u_y", "u_u", "u_v")):
                program.setUniformValue1i(name, min(unit, units - 1))
            for unit in range(units):
                self._textures[unit].bind(unit)
            self._vao.bind()
            if not self._vao.isCreated():
                self._vbo.bind()
                loc = program.attributeLocation("a_pos")
                program.enableAttributeArray(loc)
                program.setAttributeBuffer(loc, gl_float, 0, 2, 0)
            self.context().functions().glDrawArrays(gl_triangle_strip, 0, 4)
            self._vao.release()
            for unit in range(units):
                self._textures[unit].release(unit)
            program.release()

    return _GLVideoView


# --- the tile -----------------------------------------------------------------------------


class VideoTile(QWidget):
    """A video tile: picture (GL or raster), overlays, zoom; pulls frames from a source."""

    def __init__(self, parent: QWidget | None = None, renderer: str = "auto") -> None:
        super().__init__(parent)
        self.renderer = choose_renderer(renderer)
        self.viewport = Viewport()
        self.camera_name = ""
        self.state = "no_signal"
        self.recording = False
        self.alarm_lit = False  # an open alarm on this camera: the border flashes
        self.show_clock = True
        self.boxes: Sequence[OverlayBox] = ()
        self.shapes: Sequence[OverlayShape] = ()
        self.frames_received = 0
        self._frame: VideoFrame | None = None
        self._source: FrameSource | None = None
        self._source_seq: int | None = None
        self._pan_from: QPointF | None = None
        self.view: QWidget = GLVideoView(self) if self.renderer == "gl" else RasterVideoView(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self._reset_button = QToolButton(self)
        self._reset_button.setIcon(icon("zoom-reset"))
        self._reset_button.setToolTip(_tr("Reset zoom (0)"))
        self._reset_button.setAutoRaise(True)
        self._reset_button.clicked.connect(self.reset_zoom)
        self._reset_button.hide()
        self.ptz: TilePtz | None = None  # set for a PTZ camera (set_ptz)
        self._ptz_button = QToolButton(self)
        self._ptz_button.setText("PTZ")
        self._ptz_button.setCheckable(True)
        self._ptz_button.setToolTip(_tr("Steer the camera: drag, wheel, arrow keys, right-click"))
        self._ptz_button.toggled.connect(self._ptz_toggled)
        self._ptz_button.hide()
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.setMinimumSize(QSize(32, 18))

    # frames

    @property
    def frame(self) -> VideoFrame | None:
        return self._frame

    @property
    def source(self) -> FrameSource | None:
        return self._source

    def set_source(self, source: FrameSource | None) -> None:
        """Show frames from ``source`` (None: nothing). Polled by the shared FramePump."""
        self._source = source
        self._source_seq = None
        pump = FramePump.instance()
        if source is None:
            pump.discard(self)
        else:
            pump.add(self)
            self.poll()

    def poll(self) -> bool:
        """Take the source's newest frame if it is new; True when a repaint was asked for."""
        source = self._source
        if source is None:
            return False
        seq = getattr(source, "seq", None)
        if seq is not None and seq == self._source_seq:
            return False
        got = source.latest()
        frame = got[1] if isinstance(got, tuple) else got  # app.live.slot.FrameSlot: (seq, frame)
        self._source_seq = seq
        if frame is self._frame:
            return False
        if frame is None:
            if seq is None:
                return False  # nothing yet
            self.set_frame(None)  # the source was cleared: show no stale picture
            return True
        self.set_frame(frame)
        return True

    def set_frame(self, frame: VideoFrame | None) -> None:
        """Show ``frame`` now (used by poll, and by anyone who pushes frames)."""
        if frame is not None and frame.format not in ("yuv420p", "nv12"):
            raise ValueError(f"unsupported frame format {frame.format!r} (yuv420p or nv12)")
        self._frame = frame
        if frame is not None:
            self.frames_received += 1
            if self.state == "no_signal":
                self.state = "live"
        self.view.update()

    def release(self) -> None:
        """Stop polling and free GPU resources (call before the tile is deleted)."""
        self.set_source(None)
        release_gl = getattr(self.view, "release_gl", None)
        if release_gl is not None:
            release_gl()

    @property
    def paints(self) -> int:
        return self.view.paints

    # overlay state

    def set_camera_name(self, name: str) -> None:
        self.camera_name = name
        self.view.update()

    def set_state(self, state: str) -> None:
        if state not in STATES:
            raise ValueError(f"unknown tile state {state!r}; one of {', '.join(STATES)}")
        self.state = state
        self.view.update()

    def set_recording(self, recording: bool) -> None:
        self.recording = recording
        self.view.update()

    def set_alarm_lit(self, lit: bool) -> None:
        if lit != self.alarm_lit:
            self.alarm_lit = lit
            self.view.update()

    def set_boxes(self, boxes: Sequence[OverlayBox]) -> None:
        self.boxes = boxes
        self.view.update()

    def set_shapes(self, shapes: Sequence[OverlayShape]) -> None:
        self.shapes = shapes
        self.view.update()

    # geometry

    def picture_rect(self) -> QRectF:
        """Where the (zoomed) picture lands in widget coordinates (letterboxed)."""
        f = self._frame
        if f is None:
            return QRectF(self.rect())
        return fit_rect(self.width(), self.height(), f.width, f.height)

    def image_to_widget(self, u: float, v: float) -> QPointF:
        r, vp = self.picture_rect(), self.viewport
        return QPointF(
            r.left() + (u - vp.x0) * vp.zoom * r.width(),
            r.top() + (v - vp.y0) * vp.zoom * r.height(),
        )

    def widget_to_image(self, pos: QPointF) -> tuple[float, float]:
        r, vp = self.picture_rect(), self.viewport
        return (
            vp.x0 + (pos.x() - r.left()) / max(r.width(), 1e-9) / vp.zoom,
            vp.y0 + (pos.y() - r.top()) / max(r.height(), 1e-9) / vp.zoom,
        )

    # zoom

    @property
    def zoomed(self) -> bool:
        return self.viewport.zoom > 1.0

    def zoom_at(self, factor: float, pos: QPointF) -> None:
        u, v = self.widget_to_image(pos)
        self.viewport.zoom_about(factor, min(max(u, 0.0), 1.0), min(max(v, 0.0), 1.0))
        self._zoom_changed()

    def reset_zoom(self) -> None:
        self.viewport.reset()
        self._zoom_changed()

    def _zoom_changed(self) -> None:
        self._reset_button.setVisible(self.zoomed)
        self._reset_button.raise_()
        self.view.update()

    # PTZ (ui/tile_ptz.py): while its mode is on, gestures steer the camera

    def set_ptz(self, ptz: TilePtz | None) -> None:
        """Offer PTZ for the camera on this tile (None: a camera without it)."""
        if self.ptz is not None:
            self.ptz.changed.disconnect(self.view.update)
        self.ptz = ptz
        self._ptz_button.setChecked(False)
        self._ptz_button.setVisible(ptz is not None)
        if ptz is not None:
            ptz.changed.connect(self.view.update)
        self.resizeEvent(None)

    @property
    def steering(self) -> bool:
        return self.ptz is not None and self.ptz.active

    def _ptz_toggled(self, on: bool) -> None:
        if self.ptz is not None:
            self.ptz.set_active(on)
            if on:
                self.setFocus()
        self.view.update()

    def contextMenuEvent(self, event) -> None:
        if self.steering:
            assert self.ptz is not None
            self.ptz.menu(self).popup(event.globalPos())
            event.accept()
        else:
            event.ignore()

    def keyReleaseEvent(self, event) -> None:
        if self.steering and not event.isAutoRepeat():
            assert self.ptz is not None
            if self.ptz.key(Qt.Key(event.key()), pressed=False):
                event.accept()
                return
        super().keyReleaseEvent(event)

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps == 0:
            event.ignore()
            return
        if self.steering:
            assert self.ptz is not None
            self.ptz.wheel(steps)
        else:
            self.zoom_at(1.25**steps, event.position())
        event.accept()

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.steering:
            assert self.ptz is not None
            self.ptz.press(event.position())
            event.accept()
            return
        # Panning only while zoomed; otherwise the wall cell takes the press (tile drag/swap).
        if event.button() == Qt.MouseButton.LeftButton and self.zoomed:
            self._pan_from = event.position()
            event.accept()
        else:
            event.ignore()

    def mouseMoveEvent(self, event) -> None:
        if self.steering:
            assert self.ptz is not None
            self.ptz.drag(event.position(), self.width(), self.height())
            event.accept()
            return
        if self._pan_from is None:
            event.ignore()
            return
        pos = event.position()
        r, vp = self.picture_rect(), self.viewport
        du = -(pos.x() - self._pan_from.x()) / max(r.width(), 1e-9) / vp.zoom
        dv = -(pos.y() - self._pan_from.y()) / max(r.height(), 1e-9) / vp.zoom
        vp.pan(du, dv)
        self._pan_from = pos
        self.view.update()
        event.accept()

    def mouseReleaseEvent(self, event) -> None:
        if self.steering:
            assert self.ptz is not None
            self.ptz.release()
            event.accept()
            return
        if self._pan_from is None:
            event.ignore()
            return
        self._pan_from = None
        event.accept()

    def mouseDoubleClickEvent(self, event) -> None:
        event.ignore()  # the wall maximises

    def keyPressEvent(self, event) -> None:
        if self.steering and not event.isAutoRepeat():
            assert self.ptz is not None
            if self.ptz.key(Qt.Key(event.key()), pressed=True):
                event.accept()
                return
        if event.key() == Qt.Key.Key_0 and self.zoomed:
            self.reset_zoom()
            event.accept()
        else:
            super().keyPressEvent(event)

    def resizeEvent(self, event) -> None:
        if event is not None:
            super().resizeEvent(event)
        self._reset_button.move(
            4, max(0, self.height() - self._reset_button.sizeHint().height() - 4)
        )
        hint = self._ptz_button.sizeHint()
        self._ptz_button.resize(hint)
        self._ptz_button.move(
            max(0, self.width() - hint.width() - 4), max(0, self.height() - 2 * hint.height() - 8)
        )

    # overlays

    def paint_overlay(self, p: QPainter) -> None:
        """Everything drawn over the picture, in widget coordinates (both renderers call it)."""
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        h = self.height()
        font = QFont(p.font())
        font.setPixelSize(int(min(max(h / 22, 10), 15)))
        p.setFont(font)
        picture = self.picture_rect()
        frame = self._frame
        if frame is not None:
            p.save()
            p.setClipRect(picture)
            for shape in self.shapes:
                self._paint_shape(p, shape)
            for box in self.boxes:
                self._paint_box(p, box)
            p.restore()
        shadow = QColor(0, 0, 0, 150)
        if self.camera_name:
            _text_box(p, 4, 4, self.camera_name, QColor(DARK.text_bright), shadow)
        if self.recording:
            d = max(8.0, font.pixelSize() * 0.7)
            p.setPen(QPen(QColor(0, 0, 0, 160), 1))
            p.setBrush(QColor(DARK.alarm))
            p.drawEllipse(QRectF(self.width() - d - 8, 8, d, d))
        if self.steering:
            assert self.ptz is not None
            _text_box(p, 4, 8 + font.pixelSize() * 1.6, self.ptz.text, QColor("#000000"),
                      QColor(DARK.warning))  # fmt: skip
        if self.alarm_lit:
            width = max(3.0, h / 60)
            p.setPen(QPen(QColor(DARK.alarm), width))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(QRectF(self.rect()).adjusted(width / 2, width / 2, -width / 2, -width / 2))
        if frame is not None and self.show_clock:
            text = clock_text(frame.pts_us)
            _text_box_from_corner(p, self.width() - 4, h - 4, text, QColor(DARK.text), shadow)
        if frame is None or self.state == "no_signal":
            self._paint_banner(p, _tr("No signal"), QColor(DARK.text_dim), veil=frame is not None)
        elif self.state == "reconnecting":
            self._paint_banner(p, _tr("Reconnecting…"), QColor(DARK.warning), veil=True)
        elif self.state == "keyframes_only":
            fm = QFontMetrics(font)
            _text_box(
                p,
                4,
                h - fm.height() - 6,
                _tr("Key frames only"),
                QColor("#000000"),
                QColor(DARK.warning),
            )

    def _paint_banner(self, p: QPainter, text: str, color: QColor, veil: bool) -> None:
        if veil:
            p.fillRect(self.rect(), QColor(0, 0, 0, 140))
        p.setPen(color)
        p.drawText(QRectF(self.rect()), Qt.AlignmentFlag.AlignCenter, text)

    def _paint_box(self, p: QPainter, box: OverlayBox) -> None:
        color = label_color(box.label or "object")
        x0, y0, x1, y1 = box_coords(box)
        a, b = self.image_to_widget(x0, y0), self.image_to_widget(x1, y1)
        rect = QRectF(a, b).normalized()
        p.setPen(QPen(color, 2))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(rect)
        parts = [box.label] if box.label else []
        if box.score is not None:
            parts.append(f"{box.score:.2f}")
        if box.track_id is not None:
            parts.append(f"#{box.track_id}")
        if parts:
            text = " ".join(parts)
            fm = QFontMetrics(p.font())
            th = fm.height() + 2
            y = rect.top() - th if rect.top() - th >= 0 else rect.top()
            _text_box(p, rect.left() - 1, y, text, QColor("#000000"), color)

    def _paint_shape(self, p: QPainter, shape: OverlayShape) -> None:
        points = [self.image_to_widget(u, v) for u, v in shape.points]
        if len(points) < 2:
            return
        accent = QColor(DARK.accent)
        if shape.kind == "zone":
            path = QPainterPath()
            path.addPolygon(QPolygonF(points))
            path.closeSubpath()
            fill = QColor(accent)
            fill.setAlpha(40)
            p.fillPath(path, fill)
            p.setPen(QPen(accent, 1.5))
            p.drawPath(path)
        else:
            p.setPen(QPen(QColor(DARK.warning), 2))
            p.drawPolyline(QPolygonF(points))
        if shape.name:
            p.setPen(QColor(DARK.text_bright))
            p.drawText(points[0] + QPointF(4, -4), shape.name)

    def changeEvent(self, event) -> None:
        if event.type() == event.Type.LanguageChange:
            self._reset_button.setToolTip(_tr("Reset zoom (0)"))
        super().changeEvent(event)
