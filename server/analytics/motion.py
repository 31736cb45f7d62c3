"""Motion on a small grey image, reported per frame and as a coarse grid of cells.

Each luma frame is shrunk to ``work_width`` (INTER_AREA, which also averages sensor noise
away), blurred, and compared with the previous analysed frame. Differencing against the
previous frame rather than a slow background model means that an object which stops moving
stops counting at once (motion events end when the motion does), and slow light changes
(dusk, clouds) cancel out between two frames a fraction of a second apart. The changed pixels
are counted per cell of a ``cols`` x ``rows`` grid; the grid, packed one bit per cell, is what
the motion store keeps for area search.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_BLUR_KERNEL = (5, 5)


@dataclass(frozen=True, slots=True)
class MotionResult:
    active: bool  # at least ``min_cells`` cells changed
    fraction: float  # share of the work image's pixels that changed, 0..1
    grid: bytes  # cols x rows bits, row-major, numpy.packbits order; bit set = motion in the cell


class MotionDetector:
    """Frame-difference motion for one camera; not thread-safe (one per analysis thread).

    Buffers are allocated when the frame size is first seen (or changes, which also restarts
    the comparison), so a frame costs no large allocation.
    """

    def __init__(
        self,
        cols: int = 32,
        rows: int = 18,
        work_width: int = 160,
        pixel_threshold: int = 25,
        cell_fraction: float = 0.02,
        min_cells: int = 1,
    ) -> None:
        if cols < 1 or rows < 1:
            raise ValueError(f"motion grid must have at least one cell, got {cols}x{rows}")
        if work_width < cols:
            raise ValueError(f"work_width {work_width} is narrower than the grid ({cols} columns)")
        if not 0 < pixel_threshold < 256:
            raise ValueError(f"pixel_threshold must be 1..255, got {pixel_threshold}")
        if not 0.0 < cell_fraction <= 1.0:
            raise ValueError(f"cell_fraction must be in (0, 1], got {cell_fraction}")
        if min_cells < 1:
            raise ValueError(f"min_cells must be at least 1, got {min_cells}")
        self.cols = cols
        self.rows = rows
        self.work_width = work_width
        self.pixel_threshold = pixel_threshold
        self.cell_fraction = cell_fraction
        self.min_cells = min_cells
        self.grid_bytes = (cols * rows + 7) // 8
        self._empty_grid = bytes(self.grid_bytes)
        self._shape: tuple[int, int] | None = None  # source frame (h, w) the buffers are for
        self._have_previous = False
        self._cells = np.empty((rows, cols), np.float32)
        self._on = np.empty((rows, cols), np.bool_)

    def reset(self) -> None:
        """Forget the previous frame (after a gap in the stream, a seek, a new source)."""
        self._have_previous = False

    def _allocate(self, h: int, w: int) -> None:
        work_w = self.work_width
        work_h = max(self.rows, round(work_w * h / w))
        self._work_size = (work_w, work_h)  # cv2 order: width, height
        self._small = np.empty((work_h, work_w), np.uint8)
        self._current = np.empty((work_h, work_w), np.uint8)
        self._previous = np.empty((work_h, work_w), np.uint8)
        self._diff = np.empty((work_h, work_w), np.uint8)
        self._mask = np.empty((work_h, work_w), np.uint8)
        self._mask_f = np.empty((work_h, work_w), np.float32)
        self._pixels = work_w * work_h
        self._shape = (h, w)
        self._have_previous = False

    def update(self, luma: np.ndarray) -> MotionResult:
        """Compare ``luma`` (uint8 HxW, rows may be padded) with the previous frame."""
        if luma.ndim != 2 or luma.dtype != np.uint8:
            raise ValueError(
                f"motion needs the luma plane as a 2-D uint8 array, got {luma.dtype} "
                f"{luma.shape} (pass frame.to_ndarray(format='gray') or the Y plane)"
            )
        h, w = luma.shape
        if h < 2 or w < 2:
            raise ValueError(f"frame too small for motion: {w}x{h}")
        if self._shape != (h, w):
            self._allocate(h, w)
        cv2.resize(luma, self._work_size, dst=self._small, interpolation=cv2.INTER_AREA)
        cv2.GaussianBlur(self._small, _BLUR_KERNEL, 0, dst=self._current)
        if not self._have_previous:
            self._swap()
            self._have_previous = True
            return MotionResult(False, 0.0, self._empty_grid)
        cv2.absdiff(self._current, self._previous, dst=self._diff)
        self._swap()
        # THRESH_BINARY keeps values strictly above the threshold: "changed by more than N".
        cv2.threshold(self._diff, self.pixel_threshold, 1, cv2.THRESH_BINARY, dst=self._mask)
        changed = cv2.countNonZero(self._mask)
        if changed == 0:
            return MotionResult(False, 0.0, self._empty_grid)
        np.copyto(self._mask_f, self._mask)
        # INTER_AREA down to one pixel per cell = the share of changed pixels in each cell.
        cv2.resize(
            self._mask_f, (self.cols, self.rows), dst=self._cells, interpolation=cv2.INTER_AREA
        )
        np.greater_equal(self._cells, self.cell_fraction, out=self._on)
        cells_on = int(np.count_nonzero(self._on))
        grid = np.packbits(self._on).tobytes() if cells_on else self._empty_grid
        return MotionResult(cells_on >= self.min_cells, changed / self._pixels, grid)

    def _swap(self) -> None:
        self._previous, self._current = self._current, self._previous


def grid_cells(grid: bytes, cols: int = 32, rows: int = 18) -> np.ndarray:
    """Unpack a packed grid into a (rows, cols) bool array (for tests, overlays and the API)."""
    if len(grid) != (cols * rows + 7) // 8:
        raise ValueError(f"grid has {len(grid)} bytes, a {cols}x{rows} grid needs that many bits")
    bits = np.unpackbits(np.frombuffer(grid, np.uint8), count=cols * rows)
    return bits.reshape(rows, cols).astype(bool)
