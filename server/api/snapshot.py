"""A still image from recorded bytes: decode one key frame, encode it as JPEG."""

from __future__ import annotations

import io

import av
import cv2

from server.api.errors import ApiError


def jpeg_of_first_frame(mp4: bytes, quality: int = 85) -> bytes:
    """``mp4`` is an init segment plus one fragment; its first frame is a key frame."""
    try:
        with av.open(io.BytesIO(mp4)) as container:
            for frame in container.decode(video=0):
                image = frame.to_ndarray(format="bgr24")
                break
            else:
                raise ApiError(404, "no_video", "the fragment holds no decodable frame")
    except av.FFmpegError as exc:
        raise ApiError(500, "decode_failed", f"cannot decode the latest fragment: {exc}") from None
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ApiError(500, "encode_failed", "JPEG encoding failed")
    return jpeg.tobytes()


PROBE_PACKETS = 250  # a camera sends a key frame at least every ~10 s at 25 fps


def probe_snapshot(source, quality: int = 80) -> bytes:
    """JPEG of the first key frame a freshly opened ``Source`` delivers (the camera "test" of
    the settings dialog shows what the camera sees before it is added)."""
    info = source.info
    ctx = av.CodecContext.create(info.codec, "r")
    ctx.thread_count = 1  # no worker threads to join (with the GIL held) when it is freed
    if info.extradata and info.extradata.startswith((b"\0\0\1", b"\0\0\0\1")):
        ctx.extradata = info.extradata
    started = False
    for i, packet in enumerate(source.packets()):
        if i >= PROBE_PACKETS:
            break
        started = started or packet.key
        if not started:
            continue
        try:
            frames = ctx.decode(av.Packet(bytes(packet.packet)))
        except av.FFmpegError:
            continue
        if frames:
            image = frames[0].to_ndarray(format="bgr24")
            ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok:
                return jpeg.tobytes()
    raise ApiError(422, "probe_failed", "the camera sent no decodable picture")
