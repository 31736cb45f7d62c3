"""The resource tree: (sites →) recorders → cameras with status icons, a filter box, drag to
the wall. Recorders of one site sit under the site's row; a recorder without a site is a top
row of its own, as before sites existed.

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

from app.cameratree import CameraNode, CameraTree, RecorderNode, SiteNode
from ui.bridge import bridge
from ui.theme import camera_status_icon, icon
from ui.wall import CAMERA_MIME, camera_mime

CAMERA_ROLE = Qt.ItemDataRole.UserRole + 1  # "server_id/camera_id" on camera rows
RECORDER_ROLE = Qt.ItemDataRole.UserRole + 2  # server id on recorder rows
SITE_ROLE = Qt.ItemDataRole.UserRole + 3  # the site's name on site rows
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


def _fold_key(index: QModelIndex) -> str:
    """What remembers a folded row: the recorder's id, or the site's name (prefixed)."""
    site = index.data(SITE_ROLE)
    return f"site:{site}" if site else (index.data(RECORDER_ROLE) or "")


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
        key = _fold_key(index)
        if key:
            (self._collapsed.add if folded else self._collapsed.discard)(key)

    # model

    def rebuild(self) -> None:
        """Re-read the camera tree through the filter (keeps selection and folding)."""
        selected = self.selected_camera()
        self.model.clear()
        for site in self.source.sites(self.filter.text()):
            if site.name:
                self.model.appendRow(self._site_item(site))
            else:
                self.model.appendRow(self._recorder_item(site.recorders[0]))
        for row in range(self.model.rowCount()):
            index = self.model.index(row, 0)
            self.view.setExpanded(index, _fold_key(index) not in self._collapsed)
            for child in range(self.model.rowCount(index)):
                inner = self.model.index(child, 0, index)
                if inner.data(RECORDER_ROLE):
                    self.view.setExpanded(inner, _fold_key(inner) not in self._collapsed)
        if selected:
            found = self.index_of(selected)
            if found.isValid():
                self.view.setCurrentIndex(found)

    def _site_item(self, site: SiteNode) -> QStandardItem:
        item = QStandardItem(icon("recorder"), site.name)
        item.setData(site.name, SITE_ROLE)
        down = [r for r in site.recorders if r.state != "online"]
        item.setToolTip(
            _tr("Site {site}: {count} recorders").format(site=site.name, count=len(site.recorders))
        )
        if down:
            item.setText(
                _tr("{site} ({down} of {count} not online)").format(
                    site=site.name, down=len(down), count=len(site.recorders)
                )
            )
        item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        for rec in site.recorders:
            item.appendRow(self._recorder_item(rec))
        return item

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

    def _camera_items(self) -> list[QStandardItem]:
        """Every camera row, in order, under recorders that may sit under a site."""
        out: list[QStandardItem] = []
        todo = [self.model.item(r) for r in range(self.model.rowCount())]
        while todo:
            item = todo.pop(0)
            if item.data(CAMERA_ROLE):
                out.append(item)
                continue
            todo[:0] = [item.child(c) for c in range(item.rowCount())]
        return out

    def cameras(self) -> list[tuple[str, str]]:
        """(camera, status) of every camera row shown, in order."""
        return [
            (item.data(CAMERA_ROLE), item.data(Qt.ItemDataRole.StatusTipRole))
            for item in self._camera_items()
        ]

    def index_of(self, camera: str) -> QModelIndex:
        for item in self._camera_items():
            if item.data(CAMERA_ROLE) == camera:
                return item.index()
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
