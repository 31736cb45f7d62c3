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
