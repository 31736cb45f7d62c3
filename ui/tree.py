"""The resource tree: recorders → cameras with status icons, a filter box, drag to the wall.

A view of ``app.cameratree.CameraTree``: the model is rebuilt from ``filtered(text)`` whenever
the tree changes (changes are coalesced, so a burst of status messages costs one rebuild).
Dragging a camera carries the wall's camera mime ("server_id/camera_id"); double-click or Enter
asks for it on the wall's current tile.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QCoreApplication, QEvent, QMimeData, QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QAbstractItemView, QLineEdit, QTreeView, QVBoxLayout, QWidget

from app.cameratree import CameraNode, CameraTree, RecorderNode
from ui.bridge import bridge
from ui.theme import camera_status_icon, icon
from ui.wall import CAMERA_MIME, camera_mime

CAMERA_ROLE = Qt.ItemDataRole.UserRole + 1  # "server_id/camera_id" on camera rows
RECORDER_ROLE = Qt.ItemDataRole.UserRole + 2  # server id on recorder rows
REBUILD_DELAY_MS = 100


def _tr(text: str) -> str:
    return QCoreApplication.translate("ResourceTree", text)


def state_text(state: str) -> str:
    """A camera or recorder state in the user's language."""
    names = {
        "online": _tr("online"),
        "offline": _tr("offline"),
        "connecting": _tr("connecting"),
        "reconnecting": _tr("reconnecting"),
        "error": _tr("error"),
        "stopped": _tr("stopped"),
        "disabled": _tr("disabled"),
        "unknown": _tr("unknown"),
    }
    return names.get(state, state)


class CameraModel(QStandardItemModel):
    """Items whose camera rows drag as the wall's camera mime."""

    def mimeTypes(self) -> list[str]:
        return [CAMERA_MIME]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData | None:
        for index in indexes:
            camera = index.data(CAMERA_ROLE)
            if camera:
                return camera_mime(camera)
        return None

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction


class ResourceTree(QWidget):
    """Filter box above a tree of recorders and their cameras."""

    camera_activated = Signal(str)  # "server_id/camera_id"

    def __init__(self, tree: CameraTree, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.source = tree
        self.filter = QLineEdit(self)
        self.filter.setClearButtonEnabled(True)
        self.model = CameraModel(self)
        self.view = QTreeView(self)
        self.view.setModel(self.model)
        self.view.setHeaderHidden(True)
        self.view.setDragEnabled(True)
        self.view.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.activated.connect(self._activated)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(self.filter)
        layout.addWidget(self.view)
        self._collapsed: set[str] = set()  # recorders the user folded
        self.view.collapsed.connect(lambda i: self._fold(i, True))
        self.view.expanded.connect(lambda i: self._fold(i, False))
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REBUILD_DELAY_MS)
        self._timer.timeout.connect(self.rebuild)
        self.filter.textChanged.connect(lambda _t: self.rebuild())
        self._focus = QShortcut(QKeySequence("Ctrl+F"), self, self.filter.setFocus)
        self._focus.setContext(Qt.ShortcutContext.WindowShortcut)
        self._disconnect = bridge().connect(tree.changed, lambda _t: self._timer.start())
        self.retranslate()
        self.rebuild()

    def retranslate(self) -> None:
        self.filter.setPlaceholderText(_tr("Filter cameras (Ctrl+F)"))
        self.rebuild()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def _fold(self, index: QModelIndex, folded: bool) -> None:
        sid = index.data(RECORDER_ROLE)
        if sid:
            (self._collapsed.add if folded else self._collapsed.discard)(sid)

    # model

    def rebuild(self) -> None:
        """Re-read the camera tree through the filter (keeps selection and folding)."""
        selected = self.selected_camera()
        self.model.clear()
        for rec in self.source.filtered(self.filter.text()):
            self.model.appendRow(self._recorder_item(rec))
        for row in range(self.model.rowCount()):
            index = self.model.index(row, 0)
            self.view.setExpanded(index, index.data(RECORDER_ROLE) not in self._collapsed)
        if selected:
            found = self.index_of(selected)
            if found.isValid():
                self.view.setCurrentIndex(found)

    def _recorder_item(self, rec: RecorderNode) -> QStandardItem:
        item = QStandardItem(icon("recorder"), rec.name)
        item.setData(rec.server_id, RECORDER_ROLE)
        item.setToolTip(f"{rec.name} — {state_text(rec.state)}")
        item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        if rec.state != "online":
            item.setText(f"{rec.name} ({state_text(rec.state)})")
        for cam in rec.cameras:
            item.appendRow(self._camera_item(cam))
        return item

    def _camera_item(self, cam: CameraNode) -> QStandardItem:
        item = QStandardItem(camera_status_icon(cam.status), cam.name)
        item.setData(f"{cam.server_id}/{cam.camera_id}", CAMERA_ROLE)
        item.setData(cam.status, Qt.ItemDataRole.StatusTipRole)
        tip = f"{cam.name} ({cam.camera_id}) — {state_text(cam.status)}"
        if cam.reason:
            tip += f"\n{cam.reason}"
        item.setToolTip(tip)
        item.setFlags(
            Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled
        )
        return item

    # reading

    def cameras(self) -> list[tuple[str, str]]:
        """(camera, status) of every camera row shown, in order."""
        out = []
        for r in range(self.model.rowCount()):
            rec = self.model.item(r)
            for c in range(rec.rowCount()):
                item = rec.child(c)
                out.append((item.data(CAMERA_ROLE), item.data(Qt.ItemDataRole.StatusTipRole)))
        return out

    def index_of(self, camera: str) -> QModelIndex:
        for r in range(self.model.rowCount()):
            rec = self.model.item(r)
            for c in range(rec.rowCount()):
                if rec.child(c).data(CAMERA_ROLE) == camera:
                    return rec.child(c).index()
        return QModelIndex()

    def selected_camera(self) -> str | None:
        index = self.view.currentIndex()
        return index.data(CAMERA_ROLE) if index.isValid() else None

    def _activated(self, index: QModelIndex) -> None:
        camera = index.data(CAMERA_ROLE)
        if camera:
            self.camera_activated.emit(camera)

    def close_tree(self) -> None:
        self._disconnect()
        self._timer.stop()
