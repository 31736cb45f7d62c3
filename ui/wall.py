"""The video wall: a grid of tiles with presets, spans, drag and drop, maximise, JSON layouts.

The wall owns only what is on screen: which camera sits in which cell. Frames come from a
``SourceProvider`` passed in (the engine's live tiles later), acquired when a camera lands on a
cell and released when it leaves, so swapping two tiles moves their sources without restarting
any pipeline. A layout is a plain ``WallLayout`` (rows, cols, cells with spans) and serialises to
a JSON-ready dict; the named-layout store builds on ``to_dict``/``from_dict``.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from PySide6.QtCore import QByteArray, QMimeData, QPoint, Qt, Signal
from PySide6.QtGui import QDrag
from PySide6.QtWidgets import QApplication, QGridLayout, QVBoxLayout, QWidget

from app.walllayout import (
    LAYOUT_NAMES,
    LAYOUT_VERSION,
    MAX_SIDE,
    PRESETS,
    SPANNED,
    CellSpec,
    WallLayout,
    parse_camera,
    parse_layout,
)
from ui.videotile import FrameSource, VideoTile

__all__ = [
    "CAMERA_MIME",
    "LAYOUT_NAMES",
    "LAYOUT_VERSION",
    "MAX_SIDE",
    "PRESETS",
    "SPANNED",
    "TILE_MIME",
    "CellSpec",
    "VideoWall",
    "WallLayout",
    "camera_mime",
    "parse_camera",
]

log = logging.getLogger(__name__)

CAMERA_MIME = "application/x-vigia-camera"  # payload "server_id/camera_id" (UTF-8)
TILE_MIME = "application/x-vigia-tile"  # payload "<wall token>:<cell index>" (swap within a wall)


class SourceProvider(Protocol):
    """Hands out frame sources for cameras ("server_id/camera_id") and takes them back."""

    def acquire(self, camera: str) -> FrameSource | None: ...

    def release(self, camera: str, source: FrameSource) -> None: ...


def camera_mime(camera: str) -> QMimeData:
    """The drag payload for a camera (what the resource tree puts on a drag)."""
    mime = QMimeData()
    mime.setData(CAMERA_MIME, QByteArray(parse_camera(camera).encode()))
    return mime


class WallCell(QWidget):
    """One place on the wall: a tile plus the wall's mouse and drop handling for it."""

    def __init__(self, wall: VideoWall, index: int, renderer: str) -> None:
        super().__init__(wall)
        self.wall = wall
        self.index = index
        self.camera: str | None = None
        self.source: FrameSource | None = None
        self.tile = VideoTile(self, renderer=renderer)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        layout.addWidget(self.tile)
        self.setAcceptDrops(True)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self._press: QPoint | None = None

    def _set_property(self, name: str, value: bool) -> None:
        if self.property(name) == value:
            return
        self.setProperty(name, value)
        self.style().unpolish(self)
        self.style().polish(self)

    # mouse: press selects, drag moves the camera to another cell, double-click maximises

    def mousePressEvent(self, event) -> None:
        self.wall.set_current(self.index)
        if event.button() == Qt.MouseButton.LeftButton:
            self._press = event.position().toPoint()
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        if self._press is None or self.camera is None:
            return
        distance = (event.position().toPoint() - self._press).manhattanLength()
        if distance < QApplication.startDragDistance():
            return
        self._press = None
        drag = QDrag(self)
        mime = camera_mime(self.camera)
        mime.setData(TILE_MIME, QByteArray(f"{self.wall.token}:{self.index}".encode()))
        drag.setMimeData(mime)
        drag.setPixmap(self.tile.grab().scaledToWidth(160))
        drag.exec(Qt.DropAction.MoveAction | Qt.DropAction.CopyAction)

    def mouseReleaseEvent(self, event) -> None:
        self._press = None
        event.accept()

    def mouseDoubleClickEvent(self, event) -> None:
        self.wall.toggle_maximise(self.index)
        event.accept()

    # drops

    def dragEnterEvent(self, event) -> None:
        mime = event.mimeData()
        if mime.hasFormat(TILE_MIME) or mime.hasFormat(CAMERA_MIME):
            self._set_property("dropTarget", True)
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        event.acceptProposedAction()

    def dragLeaveEvent(self, event) -> None:
        self._set_property("dropTarget", False)
        event.accept()

    def dropEvent(self, event) -> None:
        self._set_property("dropTarget", False)
        if self.wall.handle_drop(self.index, event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()


class VideoWall(QWidget):
    """A grid of tiles. Signals carry cell indices (row-major order of the layout's cells)."""

    camera_assigned = Signal(int, str)  # cell index, camera ("" when cleared)
    tiles_swapped = Signal(int, int)
    maximised_changed = Signal(int)  # cell index, -1 when the wall is back to its layout
    layout_changed = Signal()
    current_changed = Signal(int)

    def __init__(
        self,
        parent: QWidget | None = None,
        provider: SourceProvider | None = None,
        renderer: str = "auto",
        layout: WallLayout | str = "2x2",
    ) -> None:
        super().__init__(parent)
        self.provider = provider
        self.renderer = renderer
        self.token = f"{id(self):x}"  # tells our own tile drags from another wall's
        self.cells: list[WallCell] = []
        self._layout = WallLayout.grid(1, 1)
        self._maximised: int | None = None
        self._current = -1
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(0)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.set_layout(layout)

    # layout

    @property
    def layout_spec(self) -> WallLayout:
        return self._layout

    @property
    def cameras(self) -> list[str | None]:
        return [cell.camera for cell in self.cells]

    def tile(self, index: int) -> VideoTile:
        return self.cells[index].tile

    def set_layout(self, layout: WallLayout | str, cameras: list[str | None] | None = None) -> None:
        """Switch layout; cameras stay in cell order (those beyond the new count are released)."""
        if isinstance(layout, str):
            layout = WallLayout.preset(layout)
        layout.validate()
        if cameras is None:
            cameras = self.cameras
        cameras = [parse_camera(c) if c else None for c in cameras]
        self.restore()
        for cell in self.cells:
            self._grid.removeWidget(cell)
        count = len(layout.cells)
        for cell in self.cells[count:]:
            self._put(cell, None)
            cell.tile.release()
            cell.deleteLater()
        del self.cells[count:]
        while len(self.cells) < count:
            self.cells.append(WallCell(self, len(self.cells), self.renderer))
        for r in range(MAX_SIDE):
            self._grid.setRowStretch(r, 1 if r < layout.rows else 0)
            self._grid.setColumnStretch(r, 1 if r < layout.cols else 0)
        for cell, spec in zip(self.cells, layout.cells, strict=True):
            self._grid.addWidget(cell, spec.row, spec.col, spec.rowspan, spec.colspan)
            cell.show()
        self._layout = layout
        for i, cell in enumerate(self.cells):
            self._put(cell, cameras[i] if i < len(cameras) else None)
        if self._current >= count:
            self.set_current(-1)
        self.layout_changed.emit()

    # cameras

    def _put(self, cell: WallCell, camera: str | None) -> None:
        if cell.camera == camera:
            return
        if cell.source is not None and self.provider is not None and cell.camera is not None:
            self.provider.release(cell.camera, cell.source)
        cell.camera, cell.source = camera, None
        if camera is not None and self.provider is not None:
            cell.source = self.provider.acquire(camera)
        self._show(cell)
        self.camera_assigned.emit(cell.index, camera or "")

    def _show(self, cell: WallCell) -> None:
        tile = cell.tile
        tile.set_source(cell.source)
        if cell.source is None:
            tile.set_frame(None)
        tile.reset_zoom()
        name = ""
        if cell.camera is not None:
            namer = getattr(self.provider, "display_name", None)
            name = namer(cell.camera) if callable(namer) else cell.camera
        tile.set_camera_name(name)
        tile.set_state("no_signal" if tile.frame is None else tile.state)
        ptz_for = getattr(self.provider, "ptz_for", None)
        if callable(ptz_for):  # a PTZ camera gets the tile's PTZ button (ui/tile_ptz.py)
            tile.set_ptz(ptz_for(cell.camera, tile) if cell.camera is not None else None)

    def flash_alarms(self, cameras: set[tuple[str, str]], lit: bool) -> None:
        """Light or dim the border of the tiles showing a camera with an open alarm
        (``ui.alarm_console.AlarmConsole.flash``)."""
        marked = {f"{sid}/{cam}" for sid, cam in cameras}
        for cell in self.cells:
            self.tile(cell.index).set_alarm_lit(lit and cell.camera in marked)

    def assign(self, index: int, camera: str | None) -> None:
        """Put ``camera`` ("server_id/camera_id", or None to clear) on cell ``index``."""
        if camera is not None:
            camera = parse_camera(camera)
        self._put(self.cells[index], camera)

    def swap(self, a: int, b: int) -> None:
        """Exchange two cells' cameras and sources (nothing is released or re-acquired)."""
        if a == b:
            return
        ca, cb = self.cells[a], self.cells[b]
        ca.camera, cb.camera = cb.camera, ca.camera
        ca.source, cb.source = cb.source, ca.source
        frame_a, frame_b = ca.tile.frame, cb.tile.frame
        self._show(ca)
        self._show(cb)
        ca.tile.set_frame(frame_b)
        cb.tile.set_frame(frame_a)
        self.tiles_swapped.emit(a, b)

    def handle_drop(self, index: int, mime: QMimeData) -> bool:
        """A drop on cell ``index``: our own tile swaps; a camera (any other drag) is assigned."""
        if mime.hasFormat(TILE_MIME):
            token, _, src = (
                bytes(mime.data(TILE_MIME).data()).decode(errors="replace").partition(":")
            )
            if token == self.token and src.isdigit() and int(src) < len(self.cells):
                self.swap(int(src), index)
                return True
        if mime.hasFormat(CAMERA_MIME):
            text = bytes(mime.data(CAMERA_MIME).data()).decode(errors="replace")
            try:
                self.assign(index, text)
            except ValueError as exc:
                log.warning("drop refused: %s", exc)
                return False
            return True
        return False

    # maximise

    @property
    def maximised(self) -> int | None:
        return self._maximised

    def maximise(self, index: int) -> None:
        if self._maximised == index:
            return
        self.restore()
        cell = self.cells[index]
        for other in self.cells:
            if other is not cell:
                other.hide()
        self._grid.removeWidget(cell)
        self._grid.addWidget(cell, 0, 0, self._layout.rows, self._layout.cols)
        self._maximised = index
        self.maximised_changed.emit(index)

    def restore(self) -> None:
        if self._maximised is None:
            return
        cell = self.cells[self._maximised]
        spec = self._layout.cells[self._maximised]
        self._grid.removeWidget(cell)
        self._grid.addWidget(cell, spec.row, spec.col, spec.rowspan, spec.colspan)
        for other in self.cells:
            other.show()
        self._maximised = None
        self.maximised_changed.emit(-1)

    def toggle_maximise(self, index: int) -> None:
        if self._maximised is None:
            self.maximise(index)
        else:
            self.restore()

    # selection and keys

    @property
    def current(self) -> int:
        return self._current

    def set_current(self, index: int) -> None:
        if index == self._current:
            return
        for cell in self.cells:
            cell._set_property("selected", cell.index == index)
        self._current = index
        self.current_changed.emit(index)

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Escape and self._maximised is not None:
            self.restore()
            event.accept()
        elif event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self._current >= 0:
            self.toggle_maximise(self._current)
            event.accept()
        else:
            super().keyPressEvent(event)

    # serialisation

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready layout: grid size and every cell with its span and camera."""
        return {
            "version": LAYOUT_VERSION,
            "rows": self._layout.rows,
            "cols": self._layout.cols,
            "cells": [
                {
                    "row": s.row,
                    "col": s.col,
                    "rowspan": s.rowspan,
                    "colspan": s.colspan,
                    "camera": cell.camera,
                }
                for s, cell in zip(self._layout.cells, self.cells, strict=True)
            ],
        }

    parse_dict = staticmethod(parse_layout)

    def from_dict(self, data: Any) -> None:
        layout, cameras = self.parse_dict(data)
        self.set_layout(layout, cameras)

    def clear(self) -> None:
        """Release every source and GPU resource (call before dropping the wall)."""
        for cell in self.cells:
            self._put(cell, None)
            cell.tile.release()
