"""Real footage kept in the repo: OpenCV's ``vtest.avi`` (people walking across a square),
transcoded once to a small H.264 MP4 so that a clean clone has it (``resources/media/``).

Analytics (people, tracks, zones) needs real footage that a synthetic scene cannot stand in for;
tests and the demo read :data:`VTEST`. The file is made by this module from the original AVI
(``python -m server.sim.footage path/to/vtest.avi``) so it can be remade: same size (768×576),
same frames (795 at 10 fps), and quality chosen so the detector finds the same people as in the
original (checked on every 20th frame) at under 2 MB. Licence and attribution:
``resources/media/LICENSE-vtest.txt``.
"""

from __future__ import annotations

import argparse
import logging
import os
from fractions import Fraction
from pathlib import Path

import av

logger = logging.getLogger(__name__)

MEDIA = Path(__file__).resolve().parent.parent.parent / "resources" / "media"
VTEST = MEDIA / "vtest.mp4"

# libx264 settings of the committed file: quality over speed, long GOP and B-frames (size
# matters in a repo; a camera-like stream is made from it by ``clips.transcode_to_h264``).
CRF = 32
PRESET = "slow"
GOP = 100


def make_vtest(src: Path, dst: Path = VTEST) -> Path:
    """Transcode OpenCV's ``vtest.avi`` (or any video) to ``dst`` frame for frame, atomically."""
    dst = Path(dst)
    tmp = dst.with_name(dst.stem + ".tmp.mp4")
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        with av.open(str(src)) as inp, av.open(str(tmp), mode="w", format="mp4") as out:
            vs = inp.streams.video[0]
            fps = Fraction(vs.average_rate or 10).limit_denominator(1001)
            stream = out.add_stream("libx264", rate=fps)
            stream.width = vs.codec_context.width & ~1
            stream.height = vs.codec_context.height & ~1
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(CRF), "preset": PRESET, "g": str(GOP)}
            stream.codec_context.thread_type = "FRAME"
            for i, frame in enumerate(inp.decode(vs)):
                img = frame.reformat(stream.width, stream.height, format="yuv420p")
                img.pts, img.time_base = i, 1 / fps
                out.mux(stream.encode(img))
            out.mux(stream.encode(None))
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("wrote %s (%d bytes)", dst, dst.stat().st_size)
    return dst


def main() -> None:
    parser = argparse.ArgumentParser(description="Remake resources/media/vtest.mp4")
    parser.add_argument("src", type=Path, help="OpenCV's samples/data/vtest.avi")
    parser.add_argument("dst", type=Path, nargs="?", default=VTEST)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    make_vtest(args.src, args.dst)


if __name__ == "__main__":
    main()
