"""Motion detection on frames that went through H.264, so compression noise is real."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from server.analytics.motion import MotionDetector, MotionResult, grid_cells

W, H = 320, 180  # a sub stream; 10x10 pixels per grid cell
COLS, ROWS = 32, 18
RECT_W, RECT_H = 40, 30
NOISE_SIGMA = 4.0


def _blocks(rng: np.random.Generator, h: int, w: int, block: int, lo: int, hi: int) -> np.ndarray:
    """Random texture of flat blocks: survives the detector's downscale and blur."""
    small = rng.integers(lo, hi, size=(h // block + 1, w // block + 1), dtype=np.uint8)
    return np.kron(small, np.ones((block, block), np.uint8))[:h, :w]


def _path() -> list[tuple[int, int]]:
    """Top-left corner per frame: still, right, still, down, still."""
    pos = [(20, 40)] * 10
    for _ in range(20):
        x, y = pos[-1]
        pos.append((x + 6, y))
    pos += [pos[-1]] * 15
    for _ in range(15):
        x, y = pos[-1]
        pos.append((x, y + 4))
    pos += [pos[-1]] * 10
    return pos


def _encode_decode(frames: list[np.ndarray]) -> list[np.ndarray]:
    """H.264 round trip of grey frames (as yuv420p with neutral chroma); returns luma planes."""
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = W, H, "yuv420p"
    codec.time_base = Fraction(1, 5)
    codec.gop_size = 10
    codec.options = {"crf": "28", "preset": "veryfast", "tune": "zerolatency"}
    decoder = av.CodecContext.create("h264", "r")
    out: list[np.ndarray] = []
    chroma = np.full((H // 2, W // 2), 128, np.uint8)
    packets = []
    for i, luma in enumerate(frames):
        yuv = np.concatenate([luma, chroma.reshape(H // 4, W), chroma.reshape(H // 4, W)])
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = i
        packets += codec.encode(frame)
    packets += codec.encode(None)
    for packet in packets:
        for frame in decoder.decode(packet):
            out.append(frame.to_ndarray()[:H])  # the Y plane of yuv420p
    for frame in decoder.decode(None):
        out.append(frame.to_ndarray()[:H])
    assert len(out) == len(frames)
    return out


def _cells_of(x: int, y: int) -> np.ndarray:
    cells = np.zeros((ROWS, COLS), bool)
    cells[
        y * ROWS // H : -(-(y + RECT_H) * ROWS // H), x * COLS // W : -(-(x + RECT_W) * COLS // W)
    ] = True
    return cells


@pytest.fixture(scope="module")
def moving_clip() -> tuple[list[tuple[int, int]], list[np.ndarray]]:
    rng = np.random.default_rng(7)
    background = _blocks(rng, H, W, 8, 40, 200)
    patch = _blocks(rng, RECT_H, RECT_W, 6, 0, 255)
    path = _path()
    frames = []
    for x, y in path:
        img = background.astype(np.float32)
        img[y : y + RECT_H, x : x + RECT_W] = patch
        img += rng.normal(0, NOISE_SIGMA, img.shape)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return path, _encode_decode(frames)


def test_motion_only_where_and_when_the_rectangle_moves(moving_clip) -> None:
    path, lumas = moving_clip
    detector = MotionDetector()
    results = [detector.update(luma) for luma in lumas]
    assert results[0] == MotionResult(False, 0.0, bytes(72))  # nothing to compare with yet
    for i in range(1, len(path)):
        moved = path[i] != path[i - 1]
        r = results[i]
        assert r.active == moved, f"frame {i}: active={r.active}, rectangle moved={moved}"
        on = grid_cells(r.grid)
        if not moved:
            assert not on.any(), f"frame {i}: cells on while nothing moved"
            continue
        assert 0 < r.fraction < 0.2
        covered = _cells_of(*path[i - 1]) | _cells_of(*path[i])
        allowed = binary_dilation(covered, iterations=1)  # blur reaches into the next cell
        stray = np.argwhere(on & ~allowed)
        assert stray.size == 0, f"frame {i}: cells on away from the rectangle: {stray.tolist()}"
        found = np.count_nonzero(on & covered) / np.count_nonzero(covered)
        assert found >= 0.8, f"frame {i}: only {found:.0%} of the rectangle's cells are on"


def test_static_noisy_scene_and_slow_light_change_give_no_motion() -> None:
    rng = np.random.default_rng(3)
    background = _blocks(rng, H, W, 8, 40, 200).astype(np.float32)
    frames = []
    for i in range(40):
        img = background + i * 1.0 + rng.normal(0, NOISE_SIGMA, background.shape)  # dusk/dawn
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    detector = MotionDetector()
    results = [detector.update(luma) for luma in _encode_decode(frames)]
    assert [i for i, r in enumerate(results) if r.active] == []
    assert all(r.grid == bytes(72) for r in results)


def test_sudden_change_everywhere_is_motion_and_size_change_restarts() -> None:
    detector = MotionDetector()
    dark = np.full((H, W), 30, np.uint8)
    assert not detector.update(dark).active
    r = detector.update(np.full((H, W), 200, np.uint8))
    assert r.active and r.fraction == pytest.approx(1.0)
    assert grid_cells(r.grid).all()
    # A new resolution (the camera was reconfigured): compare nothing across it.
    assert detector.update(np.full((360, 640), 30, np.uint8)) == MotionResult(False, 0.0, bytes(72))
    assert not detector.update(np.full((360, 640), 30, np.uint8)).active


def test_padded_rows_and_min_cells() -> None:
    # A Y plane with line padding (PyAV's plane buffer) works without a copy.
    padded = np.zeros((H, W + 64), np.uint8)
    strict, loose = MotionDetector(min_cells=20), MotionDetector(min_cells=1)
    for detector in (strict, loose):
        assert not detector.update(padded[:, :W]).active
    padded[0:10, 0:30] = 255  # 3 cells, a few more through the blur
    a, b = strict.update(padded[:, :W]), loose.update(padded[:, :W])
    assert a.grid == b.grid and 3 <= np.count_nonzero(grid_cells(a.grid)) < 20
    assert not a.active and b.active


def test_bad_input_is_refused() -> None:
    detector = MotionDetector()
    with pytest.raises(ValueError, match="luma plane"):
        detector.update(np.zeros((H, W, 3), np.uint8))
    with pytest.raises(ValueError, match="luma plane"):
        detector.update(np.zeros((H, W), np.float32))
    with pytest.raises(ValueError, match="work_width"):
        MotionDetector(work_width=16)
