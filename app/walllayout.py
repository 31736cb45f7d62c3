"""A wall layout as data: grid size, cells with spans, and the camera in each cell.

Plain Python (no Qt), so that the named-layout store (``app.layouts``) checks a layout before it
keeps or shows it, and the wall widget (``ui.wall``) draws what it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PRESETS: dict[str, tuple[int, int]] = {
    "1": (1, 1),
    "2x2": (2, 2),
    "3x3": (3, 3),
    "4x4": (4, 4),
    "5x5": (5, 5),
    "8x8": (8, 8),
}
# spanned layouts of control rooms: one large tile (the camera that matters) among small ones
SPANNED: dict[str, tuple[int, int, tuple[tuple[int, int, int, int], ...]]] = {
    "1+5": (3, 3, ((0, 0, 2, 2),)),
    "1+7": (4, 4, ((0, 0, 3, 3),)),
    "1+12": (4, 4, ((1, 1, 2, 2),)),
}
LAYOUT_NAMES = (*PRESETS, *SPANNED)
MAX_SIDE = 8
LAYOUT_VERSION = 1


def parse_camera(text: str) -> str:
    """Validate "server_id/camera_id" (both parts non-empty); returns it stripped."""
    if not isinstance(text, str):
        raise ValueError(f"camera reference must be a string, got {text!r}")
    text = text.strip()
    server, sep, camera = text.partition("/")
    if not sep or not server or not camera:
        raise ValueError(f"camera reference must be 'server_id/camera_id', got {text!r}")
    return text


@dataclass(frozen=True, slots=True)
class CellSpec:
    row: int
    col: int
    rowspan: int = 1
    colspan: int = 1


@dataclass(slots=True)
class WallLayout:
    rows: int
    cols: int
    cells: list[CellSpec] = field(default_factory=list)

    @classmethod
    def grid(cls, rows: int, cols: int) -> WallLayout:
        return cls.custom(rows, cols, [])

    @classmethod
    def preset(cls, name: str) -> WallLayout:
        if name in SPANNED:
            rows, cols, spans = SPANNED[name]
            return cls.custom(rows, cols, [CellSpec(*span) for span in spans])
        if name not in PRESETS:
            raise ValueError(f"unknown layout {name!r}; presets: {', '.join(LAYOUT_NAMES)}")
        return cls.grid(*PRESETS[name])

    @classmethod
    def custom(cls, rows: int, cols: int, spans: list[CellSpec]) -> WallLayout:
        """``spans`` cover r×c cells each; every cell they leave free becomes a 1×1 tile."""
        layout = cls(rows, cols, list(spans))
        layout._check_bounds()
        taken = layout._occupancy()
        for r in range(rows):
            for c in range(cols):
                if (r, c) not in taken:
                    layout.cells.append(CellSpec(r, c))
        layout.cells.sort(key=lambda s: (s.row, s.col))
        return layout

    def _check_bounds(self) -> None:
        if not (1 <= self.rows <= MAX_SIDE and 1 <= self.cols <= MAX_SIDE):
            raise ValueError(
                f"wall must be 1..{MAX_SIDE} rows and columns, got {self.rows}x{self.cols}"
            )
        for s in self.cells:
            if s.rowspan < 1 or s.colspan < 1:
                raise ValueError(f"cell {s} has a span below 1")
            if (
                s.row < 0
                or s.col < 0
                or s.row + s.rowspan > self.rows
                or s.col + s.colspan > self.cols
            ):
                raise ValueError(f"cell {s} does not fit a {self.rows}x{self.cols} wall")

    def _occupancy(self) -> dict[tuple[int, int], CellSpec]:
        taken: dict[tuple[int, int], CellSpec] = {}
        for s in self.cells:
            for r in range(s.row, s.row + s.rowspan):
                for c in range(s.col, s.col + s.colspan):
                    if (r, c) in taken:
                        raise ValueError(f"cells {taken[(r, c)]} and {s} overlap at ({r}, {c})")
                    taken[(r, c)] = s
        return taken

    def validate(self) -> None:
        """Raise ValueError unless the cells tile the grid exactly, without overlap."""
        self._check_bounds()
        taken = self._occupancy()
        if len(taken) != self.rows * self.cols:
            missing = [
                (r, c) for r in range(self.rows) for c in range(self.cols) if (r, c) not in taken
            ]
            raise ValueError(f"cells leave grid positions uncovered: {missing[:8]}")


def parse_layout(data: Any) -> tuple[WallLayout, list[str | None]]:
    """Check a serialised layout; ValueError says what is wrong (nothing is changed)."""
    if not isinstance(data, dict):
        raise ValueError("layout must be a JSON object")
    if data.get("version", LAYOUT_VERSION) != LAYOUT_VERSION:
        raise ValueError(f"layout version {data.get('version')!r} is not {LAYOUT_VERSION}")
    try:
        rows, cols, raw = int(data["rows"]), int(data["cols"]), data["cells"]
        specs = [
            CellSpec(
                int(c["row"]), int(c["col"]), int(c.get("rowspan", 1)), int(c.get("colspan", 1))
            )
            for c in raw
        ]
        cameras = [parse_camera(c["camera"]) if c.get("camera") else None for c in raw]
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"layout is missing or mistypes a field: {exc}") from exc
    order = sorted(range(len(specs)), key=lambda i: (specs[i].row, specs[i].col))
    layout = WallLayout(rows, cols, [specs[i] for i in order])
    layout.validate()
    return layout, [cameras[i] for i in order]
