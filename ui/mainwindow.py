"""The workstation's main window: resource tree, video wall, playback bar, events, menus.

While there is no session (nothing logged in, nothing logging in) the window shows the welcome
screen (``ui.welcome``) in place of the wall, with the docks put away; the wall and the docks
come back as soon as a recorder is logged in (docs/design/workstation.md).

One place builds and wires the widgets around a ``Workstation`` (the engine, Qt-free). Panels
written elsewhere (playback bar, events panel, export and settings dialogs) are imported when
first needed, so a missing one shows a placeholder instead of stopping the program.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QFormLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QStackedWidget,
    QWidget,
)

from app.alarms import AlarmFeed
from app.layouts import Layouts, NamedLayout, pick_layouts
from app.remote import ApiError
from app.session import Session
from app.welcome import Welcome
from app.workstation import Workstation
from ui.alarm_console import AlarmConsole
from ui.bridge import bridge
from ui.layouts import Tour
from ui.sources import LiveSources
from ui.statusbar import WorkstationStatus
from ui.theme import install_language
from ui.tree import ResourceTree
from ui.wall import LAYOUT_NAMES, VideoWall
from ui.welcome import WelcomeScreen

log = logging.getLogger(__name__)

PRESET_KEYS = {"1": "Ctrl+1", "2x2": "Ctrl+2", "3x3": "Ctrl+3", "4x4": "Ctrl+4", "5x5": "Ctrl+5",
               "8x8": "Ctrl+8"}  # fmt: skip
DEFAULT_TOUR_S = 10


def _tr(text: str) -> str:
    return QCoreApplication.translate("MainWindow", text)


def optional_widget(module: str, name: str, *args: Any) -> QWidget | None:
    """``module.name(*args)`` when that module exists; None (logged) when it does not."""
    try:
        cls = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        log.info("%s is not available: %s", module, exc)
        return None
    return cls(*args)


def optional_call(module: str, name: str) -> Callable[..., Any] | None:
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return None


def placeholder(text: str) -> QLabel:
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setEnabled(False)
    return label


def first_cameras(workstation: Workstation, count: int) -> list[str]:
    return [f"{c.server_id}/{c.camera_id}" for c in workstation.tree.cameras()][:count]


def fill_wall(wall: VideoWall, cameras: list[str]) -> None:
    """Put ``cameras`` on the wall's empty cells, in order (cameras already shown are skipped)."""
    shown = set(wall.cameras)
    todo = [c for c in cameras if c not in shown]
    for index, camera in enumerate(wall.cameras):
        if camera is None and todo:
            wall.assign(index, todo.pop(0))


class ConnectDialog(QDialog):
    """Recorder address, user and password."""

    def __init__(self, parent: QWidget | None = None, server: str = "", user: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle(_tr("Connect to recorder"))
        self.server = QLineEdit(server or "http://127.0.0.1:8480")
        self.user = QLineEdit(user or "admin")
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.remember = QCheckBox(_tr("Remember this recorder"))
        self.remember.setChecked(True)
        form = QFormLayout(self)
        form.addRow(_tr("Recorder"), self.server)
        form.addRow(_tr("User"), self.user)
        form.addRow(_tr("Password"), self.password)
        form.addRow(self.remember)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        if server and user:
            self.password.setFocus()


class SaveLayoutDialog(QDialog):
    def __init__(self, parent: QWidget | None, names: list[str]) -> None:
        super().__init__(parent)
        self.setWindowTitle(_tr("Save layout"))
        self.name = QLineEdit()
        self.name.setPlaceholderText(", ".join(names[:5]))
        self.shared = QCheckBox(_tr("Shared with all users (kept by the recorder)"))
        form = QFormLayout(self)
        form.addRow(_tr("Name"), self.name)
        form.addRow(self.shared)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)


class WallWindow(QMainWindow):
    """A window with its own video wall (the detached copy of a layout); F11 full screen."""

    closed = Signal(object)

    def __init__(self, workstation: Workstation, layout: dict | None, renderer: str = "auto"):
        super().__init__()
        self.workstation = workstation
        self.sources = LiveSources(workstation)
        self.wall = VideoWall(self, provider=self.sources, renderer=renderer)
        self.sources.attach(self.wall)
        if layout is not None:
            self.wall.from_dict(layout)
        self.setCentralWidget(self.wall)
        self.setWindowTitle(_tr("Vigia — detached wall"))
        full = QAction(_tr("Full screen"), self)
        full.setShortcut(QKeySequence("F11"))
        full.triggered.connect(lambda: toggle_full_screen(self))
        self.addAction(full)
        self.resize(960, 540)
        self._shut = False

    def shutdown(self) -> None:
        if self._shut:
            return
        self._shut = True
        self.wall.clear()
        self.sources.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        self.closed.emit(self)
        super().closeEvent(event)


def toggle_full_screen(window: QMainWindow) -> None:
    if window.isFullScreen():
        window.showNormal()
    else:
        window.showFullScreen()


class MainWindow(QMainWindow):
    """Tree on the left, wall in the centre, playback below, events on the right."""

    connected = Signal(object)  # Session, after a login from this window
    connect_failed = Signal(str)

    def __init__(
        self,
        workstation: Workstation,
        *,
        renderer: str = "auto",
        layout: str = "2x2",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.workstation = workstation
        self.renderer = renderer
        self.layouts = Layouts(workstation)
        self.sources = LiveSources(workstation)
        self.wall = VideoWall(self, provider=self.sources, renderer=renderer, layout=layout)
        self.sources.attach(self.wall)
        self.welcome_model = Welcome(workstation)
        self.welcome = WelcomeScreen(self.welcome_model, self)
        self.welcome.logged_in.connect(self._welcome_logged_in)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.wall)
        self.stack.addWidget(self.welcome)
        self.setCentralWidget(self.stack)
        self._put_away: list[QDockWidget] | None = None  # docks the welcome screen hid
        self.detached: list[WallWindow] = []
        self.tour: Tour | None = None
        self.saved_layouts: list[NamedLayout] | None = None  # None until first fetched
        self._saved_generation = 0
        self._saved_waiting: list[Callable[[], None]] = []  # ``then``s of refresh_saved
        self._shut = False

        self.tree = ResourceTree(workstation.tree, self)
        self.tree.camera_activated.connect(self.show_camera)
        self.tree_dock = self._dock("resources", self.tree, Qt.DockWidgetArea.LeftDockWidgetArea)

        self.playback_bar = optional_widget(
            "ui.playback_bar", "PlaybackBar", workstation, self.wall, self
        )
        bottom = self.playback_bar or placeholder(_tr("Playback controls are not installed"))
        self.playback_dock = self._dock("playback", bottom, Qt.DockWidgetArea.BottomDockWidgetArea)

        self.events_panel = optional_widget(
            "ui.events_panel", "EventsPanel", workstation, self.wall, self
        )
        play = getattr(self.events_panel, "play_requested", None)
        if play is not None:
            play.connect(self.play_from)
        right = self.events_panel or placeholder(_tr("The events panel is not installed"))
        self.events_dock = self._dock("events", right, Qt.DockWidgetArea.RightDockWidgetArea)

        self.motion_panel = optional_widget(
            "ui.motion_search", "MotionSearchPanel", workstation, self
        )
        if self.motion_panel is not None:
            self.motion_panel.play_requested.connect(self.play_from)
            self.motion_dock = self._dock(
                "motion", self.motion_panel, Qt.DockWidgetArea.RightDockWidgetArea
            )
            self.tabifyDockWidget(self.events_dock, self.motion_dock)
            self.events_dock.raise_()
            # a tool armed on a tile whose camera changed would search the old camera
            self.wall.camera_assigned.connect(lambda index, _camera: self._tile_changed(index))
            self.wall.tiles_swapped.connect(lambda a, b: self._tile_changed(a, b))

        # open alarms of every recorder; their cameras' tiles flash (docs/design/rules.md)
        self.alarm_feed = AlarmFeed(workstation.runner, workstation.sessions)
        self.alarm_console = AlarmConsole(
            self.alarm_feed, self, workstation, renderer, current_camera=self._current_camera
        )
        self.alarm_console.flash.connect(lambda cams, lit: self.wall.flash_alarms(cams, lit))
        self.alarms_dock = self._dock(
            "alarms", self.alarm_console, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.tabifyDockWidget(self.events_dock, self.alarms_dock)
        self.events_dock.raise_()

        self.status = WorkstationStatus(workstation, self.wall, self.sources, self)
        self.setStatusBar(self.status)
        self._build_menus()
        self._undo = [
            bridge().connect(workstation.settings.changed, lambda _s: self._apply_language()),
            bridge().connect(workstation.sessions.added, lambda _s: self._session_added()),
            bridge().connect(workstation.sessions.removed, lambda _s: self.refresh_saved()),
            bridge().connect(self.welcome_model.changed, lambda _w: self.update_welcome()),
        ]
        self._language = workstation.settings.preferences.language
        self.retranslate()
        self.resize(1400, 860)
        self.update_welcome()

    # --- welcome screen ---------------------------------------------------------------------

    def welcome_shown(self) -> bool:
        return self.stack.currentWidget() is self.welcome

    def update_welcome(self) -> None:
        """The welcome screen while there is no session, else the wall (and the docks)."""
        if self._shut:
            return
        docks = [self.tree_dock, self.playback_dock, self.events_dock, self.alarms_dock]
        if self.motion_panel is not None:
            docks.append(self.motion_dock)
        if self.welcome_model.needed():
            if self._put_away is None:
                self._put_away = [d for d in docks if not d.isHidden()]
                for dock in self._put_away:
                    dock.hide()
                self.stack.setCurrentWidget(self.welcome)
                self.welcome.reload()
                self.welcome.address.setFocus()
            return
        if self._put_away is not None:
            for dock in self._put_away:
                dock.show()
            self._put_away = None
            self.stack.setCurrentWidget(self.wall)

    def show_welcome_error(self, message: str, address: str = "") -> None:
        """A login made elsewhere (``vigia --server``) failed: say it on the welcome screen."""
        if address:
            self.welcome.address.setText(address)
        self.welcome._say("error", message)
        self.welcome.password.setFocus()

    def _welcome_logged_in(self, session: Session) -> None:
        self.status.showMessage(_tr("Connected to {name}").format(name=session.name), 5000)
        self._update_title()
        self.update_welcome()
        self.connected.emit(session)

    def _dock(self, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(self)
        dock.setObjectName(f"dock-{name}")
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        self.addDockWidget(area, dock)
        return dock

    # --- menus ------------------------------------------------------------------------------

    def _action(
        self, menu: QMenu, key: str, slot: Callable[[], Any], shortcut: str = ""
    ) -> QAction:
        action = QAction(self)
        action.setObjectName(key)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(lambda _checked=False: slot())
        menu.addAction(action)
        self.actions_by_key[key] = action
        return action

    def _build_menus(self) -> None:
        self.actions_by_key: dict[str, QAction] = {}
        bar = self.menuBar()
        self.file_menu = bar.addMenu("")
        self._action(self.file_menu, "connect", self.connect_dialog, "Ctrl+O")
        self._action(self.file_menu, "export", self.open_export, "Ctrl+E")
        self.file_menu.addSeparator()
        self._action(self.file_menu, "quit", self.close, "Ctrl+Q")

        self.view_menu = bar.addMenu("")
        self.layout_menu = self.view_menu.addMenu("")
        group = QActionGroup(self)
        for preset in LAYOUT_NAMES:
            action = self._action(
                self.layout_menu,
                f"layout-{preset}",
                lambda p=preset: self.set_preset(p),
                PRESET_KEYS.get(preset, ""),
            )
            action.setCheckable(True)
            group.addAction(action)
        self.saved_menu = self.view_menu.addMenu("")
        self.saved_menu.aboutToShow.connect(self._show_saved_menu)
        self._action(self.view_menu, "save-layout", self.save_layout_dialog, "Ctrl+S")
        self._action(self.view_menu, "delete-layout", self.delete_layout_dialog)
        self.view_menu.addSeparator()
        self._action(self.view_menu, "tour", self.tour_dialog, "Ctrl+T")
        self._action(self.view_menu, "stop-tour", self.stop_tour, "Ctrl+Shift+T")
        self.view_menu.addSeparator()
        self._action(self.view_menu, "detach", self.detach_layout, "Ctrl+D")
        self._action(self.view_menu, "full-screen", lambda: toggle_full_screen(self), "F11")
        self._action(self.view_menu, "motion-search", self.motion_search, "Ctrl+M")
        self.view_menu.addSeparator()
        docks = [self.tree_dock, self.playback_dock, self.events_dock, self.alarms_dock]
        if self.motion_panel is not None:
            docks.append(self.motion_dock)
        for dock in docks:
            self.view_menu.addAction(dock.toggleViewAction())

        self.settings_menu = bar.addMenu("")
        self._action(self.settings_menu, "settings", lambda: self.open_settings(None), "Ctrl+,")
        self._action(self.settings_menu, "recorders", lambda: self.open_settings("recorders"))
        self._action(self.settings_menu, "cameras", lambda: self.open_settings("cameras"))
        self._action(self.settings_menu, "preferences", lambda: self.open_settings("preferences"))

        self.help_menu = bar.addMenu("")
        self._action(self.help_menu, "shortcuts", self.show_shortcuts, "F1")
        self._action(self.help_menu, "about", self.show_about)

    def retranslate(self) -> None:
        texts = {
            "connect": _tr("&Connect to recorder…"),
            "export": _tr("&Export…"),
            "quit": _tr("&Quit"),
            "save-layout": _tr("&Save layout…"),
            "delete-layout": _tr("&Delete saved layout…"),
            "tour": _tr("Start &tour…"),
            "stop-tour": _tr("Stop tour"),
            "detach": _tr("&Detach layout to a new window"),
            "full-screen": _tr("&Full screen"),
            "motion-search": _tr("&Motion search on this tile"),
            "settings": _tr("&Settings…"),
            "recorders": _tr("&Recorders…"),
            "cameras": _tr("&Cameras…"),
            "preferences": _tr("&Preferences…"),
            "shortcuts": _tr("&Keyboard shortcuts"),
            "about": _tr("&About Vigia"),
        }
        for preset in LAYOUT_NAMES:
            texts[f"layout-{preset}"] = (
                _tr("Single tile")
                if preset == "1"
                else preset.replace("x", "×").replace("+", " + ")
            )
        for key, text in texts.items():
            self.actions_by_key[key].setText(text)
        self.file_menu.setTitle(_tr("&File"))
        self.view_menu.setTitle(_tr("&View"))
        self.layout_menu.setTitle(_tr("&Layout"))
        self.saved_menu.setTitle(_tr("Saved &layouts"))
        self.settings_menu.setTitle(_tr("&Settings"))
        self.help_menu.setTitle(_tr("&Help"))
        self.tree_dock.setWindowTitle(_tr("Cameras"))
        self.playback_dock.setWindowTitle(_tr("Playback"))
        self.events_dock.setWindowTitle(_tr("Events"))
        self.alarms_dock.setWindowTitle(_tr("Alarms"))
        if self.motion_panel is not None:
            self.motion_dock.setWindowTitle(_tr("Motion search"))
        self._update_title()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def _apply_language(self) -> None:
        language = self.workstation.settings.preferences.language
        if language == self._language:
            return
        self._language = language
        app = QApplication.instance()
        if isinstance(app, QApplication):
            install_language(app, language or "en")

    def _session_added(self) -> None:
        self._update_title()
        self.refresh_saved()
        self.alarm_feed.refresh()  # the new recorder's open alarms
        self.alarm_console.reload()  # its manual rules and failed notifications

    def _update_title(self) -> None:
        names = [s.name for s in self.workstation.sessions.sessions()]
        suffix = f" — {', '.join(names)}" if names else ""
        self.setWindowTitle(_tr("Vigia") + suffix)

    # --- recorders --------------------------------------------------------------------------

    def connect_to(self, server: str, user: str, password: str, *, remember: bool = False) -> None:
        """Log in in the background; ``connected`` or ``connect_failed`` tells how it went."""

        def work() -> Session:
            return self.workstation.connect(server, user, password, remember=remember)

        def done(future: Any) -> None:
            if self._shut:
                return
            self.welcome_model.busy(-1)
            self.update_welcome()
            try:
                session = future.result()
            except (ApiError, ValueError, TimeoutError) as exc:
                message = _tr("Could not connect to {server}: {error}").format(
                    server=server, error=getattr(exc, "message", None) or str(exc)
                )
                log.warning("%s", message)
                self.status.showMessage(message, 10_000)
                self.connect_failed.emit(message)
                return
            self.status.showMessage(_tr("Connected to {name}").format(name=session.name), 5000)
            self._update_title()
            self.connected.emit(session)

        self.status.showMessage(_tr("Connecting to {server}…").format(server=server))
        self.welcome_model.busy(+1)
        self.update_welcome()
        bridge().run(work, done)

    def connect_dialog(self) -> None:
        dialog = ConnectDialog(self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        self.connect_to(
            dialog.server.text(),
            dialog.user.text().strip(),
            dialog.password.text(),
            remember=dialog.remember.isChecked(),
        )

    # --- wall -------------------------------------------------------------------------------

    def set_preset(self, preset: str) -> None:
        self.wall.set_layout(preset)
        action = self.actions_by_key.get(f"layout-{preset}")
        if action is not None:
            action.setChecked(True)

    def show_camera(self, camera: str) -> None:
        """Put ``camera`` on the current tile, else on the first empty one, else the first."""
        index = self.wall.current
        if index < 0:
            cameras = self.wall.cameras
            index = cameras.index(None) if None in cameras else 0
        self.wall.assign(index, camera)
        self.wall.set_current(index)

    def motion_search(self) -> None:
        """Draw a rectangle on the current tile to find when something moved there."""
        if self.motion_panel is None:
            return
        index = self.wall.current
        camera = self.wall.cameras[index] if 0 <= index < len(self.wall.cameras) else None
        if camera is None:
            self.statusBar().showMessage(_tr("Choose a tile with a camera first"), 4000)
            return
        server_id, _, camera_id = camera.partition("/")
        self.motion_dock.show()
        self.motion_dock.raise_()
        self.motion_panel.arm(self.wall.tile(index), server_id, camera_id)

    def _tile_changed(self, *indexes: int) -> None:
        tool = self.motion_panel.tool if self.motion_panel is not None else None
        if tool is None:
            return
        cells = self.wall.cells
        if any(0 <= i < len(cells) and cells[i].tile is tool.tile for i in indexes):
            self.motion_panel.disarm()

    def _current_camera(self) -> str | None:
        """The camera of the wall's current tile (the alarm console fires manual rules on it)."""
        cur = self.wall.current
        cells = self.wall.cells
        return cells[cur].camera if 0 <= cur < len(cells) else None

    def play_from(self, server_id: str, camera_id: str, start_us: int) -> None:
        """Show the camera (its tile if on the wall) and play it back from ``start_us``."""
        camera = f"{server_id}/{camera_id}"
        cameras = self.wall.cameras
        if camera in cameras:
            self.wall.set_current(cameras.index(camera))
        else:
            self.show_camera(camera)
        playback = getattr(self.playback_bar, "playback", None)
        if playback is not None:
            playback.seek(int(start_us))

    def start_wall(self, preset: str | None = None) -> None:
        """The first wall after connecting: ``preset`` filled with the first cameras, else
        the wall as the user left it, else 2×2 with the first four cameras."""
        if preset is None:
            last = self.layouts.local().last()
            if last is not None:
                try:
                    self.wall.from_dict(last)
                    return
                except ValueError as exc:
                    log.warning("last layout unusable: %s", exc)
            preset = "2x2"
        self.set_preset(preset)
        fill_wall(self.wall, first_cameras(self.workstation, len(self.wall.cells)))

    def save_layout(self, name: str, *, shared: bool = False) -> list[str]:
        """Keep the current wall under ``name`` (see ``Layouts.save``). Blocks for the
        recorders' answers: scripts and tests; the menus use ``save_layout_dialog``."""
        where = self.layouts.save(name, self.wall.to_dict(), shared=shared)
        self.refresh_saved()
        return where

    def restore_layout(self, name: str) -> bool:
        """Show the layout ``name``. Blocks for the recorders' answers: scripts and tests;
        the menu and tours show layouts fetched in the background."""
        return self.show_layout(self.layouts.get(name), name)

    def show_layout(self, found: NamedLayout | None, name: str = "") -> bool:
        if found is None:
            self.status.showMessage(_tr("No layout named {name}").format(name=name), 5000)
            return False
        try:
            self.wall.from_dict(found.layout)
        except ValueError as exc:  # a camera reference the wall refuses: say so, keep the wall
            self.status.showMessage(str(exc), 5000)
            return False
        return True

    def saved_names(self) -> list[str]:
        """Names of the layouts last fetched (``refresh_saved``); no network here."""
        return sorted({lay.name for lay in self.saved_layouts or []}, key=str.casefold)

    def refresh_saved(self, then: Callable[[], None] | None = None) -> None:
        """Fetch the saved layouts in the background into ``saved_layouts``; ``then`` runs
        on the Qt thread once they are in (not when the fetch failed)."""
        self._saved_generation += 1
        generation = self._saved_generation
        if then is not None:
            self._saved_waiting.append(then)

        def done(future: Any) -> None:
            if self._shut or generation != self._saved_generation:
                return  # a newer fetch is under way: it answers the waiting ones
            waiting, self._saved_waiting = self._saved_waiting, []
            try:
                self.saved_layouts = future.result()
            except (ApiError, ValueError, OSError, TimeoutError) as exc:
                log.warning("layouts: %s", exc)
                return
            if self.saved_menu.isVisible():
                self._fill_saved_menu()
            for fn in waiting:
                fn()

        bridge().run(self.layouts.list, done)

    def save_layout_dialog(self) -> None:
        dialog = SaveLayoutDialog(self, self.saved_names())
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        name = dialog.name.text().strip()
        layout, shared = self.wall.to_dict(), dialog.shared.isChecked()

        def done(future: Any) -> None:
            if self._shut:
                return
            try:
                future.result()
            except (ValueError, ApiError, OSError, TimeoutError) as exc:
                QMessageBox.warning(self, _tr("Save layout"), str(exc))
                return
            self.status.showMessage(_tr("Layout {name} saved").format(name=name), 5000)
            self.refresh_saved()

        bridge().run(lambda: self.layouts.save(name, layout, shared=shared), done)

    def delete_layout_dialog(self) -> None:
        if self.saved_layouts is None:
            self.refresh_saved(then=self.delete_layout_dialog)
            return
        names = self.saved_names()
        if not names:
            return
        name, ok = QInputDialog.getItem(self, _tr("Delete layout"), _tr("Layout"), names, 0, False)
        if not (ok and name):
            return

        def done(future: Any) -> None:
            if self._shut:
                return
            try:
                future.result()
            except (ApiError, OSError, TimeoutError) as exc:
                log.warning("deleting layout %r: %s", name, exc)
            self.refresh_saved()

        bridge().run(lambda: self.layouts.delete(name), done)

    def _show_saved_menu(self) -> None:
        self._fill_saved_menu()
        self.refresh_saved()  # refills the open menu when the answer is in

    def _fill_saved_menu(self) -> None:
        self.saved_menu.clear()
        layouts = self.saved_layouts
        if not layouts:
            text = _tr("Loading…") if layouts is None else _tr("(none saved)")
            empty = self.saved_menu.addAction(text)
            empty.setEnabled(False)
        for lay in layouts or []:
            label = lay.name
            if lay.shared:
                label += " " + _tr("(shared by {owner})").format(owner=lay.owner)
            elif lay.origin != "local":
                label += " " + _tr("(on the recorder)")
            self.saved_menu.addAction(label).triggered.connect(
                lambda _c=False, found=lay: self.show_layout(found, found.name)
            )

    # --- tours ------------------------------------------------------------------------------

    def start_tour(self, names: list[str], interval_s: float) -> Tour:
        """Cycle through ``names``; the layouts are fetched once in the background, and the
        first is shown when they are in."""
        self.stop_tour()
        tour = self.tour = Tour(names, interval_s, self)
        tour.step.connect(lambda name: self.show_layout(tour.layouts.get(name), name))

        def done(future: Any) -> None:
            if self._shut or self.tour is not tour:
                return
            try:
                found = future.result()
            except (ApiError, ValueError, OSError, TimeoutError) as exc:
                self.status.showMessage(str(exc), 5000)
                self.stop_tour()
                return
            tour.layouts = pick_layouts(found, names, self.layouts.user())
            tour.start()

        bridge().run(self.layouts.list, done)
        return tour

    def stop_tour(self) -> None:
        if self.tour is not None:
            self.tour.stop()
            self.tour.deleteLater()
            self.tour = None

    def tour_dialog(self) -> None:
        if self.saved_layouts is None:  # not fetched yet: ask once, then come back
            self.refresh_saved(then=self.tour_dialog)
            return
        names = self.saved_names()
        if len(names) < 2:
            QMessageBox.information(
                self, _tr("Tour"), _tr("Save at least two layouts to tour through them.")
            )
            return
        seconds, ok = QInputDialog.getInt(
            self, _tr("Tour"), _tr("Seconds per layout"), DEFAULT_TOUR_S, 1, 3600
        )
        if ok:
            self.start_tour(names, seconds)

    # --- windows ----------------------------------------------------------------------------

    def detach_layout(self) -> WallWindow:
        """The current layout in a window of its own (drag it to another monitor)."""
        window = WallWindow(self.workstation, self.wall.to_dict(), self.renderer)
        window.closed.connect(self._detached_closed)
        self.detached.append(window)
        window.show()
        return window

    def _detached_closed(self, window: WallWindow) -> None:
        if window in self.detached:
            self.detached.remove(window)
        window.deleteLater()

    # --- dialogs by other modules -----------------------------------------------------------

    def open_export(self) -> None:
        fn = optional_call("ui.dialogs.export", "open_export_dialog")
        if fn is None:
            self._missing(_tr("Export"))
            return
        fn(self, self.workstation, self.wall)

    def open_settings(self, page: str | None) -> None:
        fn = optional_call("ui.dialogs.settings", "open_settings")
        if fn is None:
            self._missing(_tr("Settings"))
            return
        fn(self, self.workstation, page)

    def _missing(self, what: str) -> None:
        self.status.showMessage(_tr("{what} is not installed").format(what=what), 5000)

    def show_shortcuts(self) -> None:
        lines = [
            f"{a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)}\t"
            f"{a.text().replace('&', '')}"
            for a in self.actions_by_key.values()
            if not a.shortcut().isEmpty()
        ]
        lines += [
            _tr("Enter\tMaximise the selected tile (Esc: back)"),
            _tr("Wheel / drag\tDigital zoom and pan on a tile (0: reset)"),
            _tr("Ctrl++ / Ctrl+- / Ctrl+Left / Ctrl+Right\tZoom and pan the timeline"),
        ]
        QMessageBox.information(self, _tr("Keyboard shortcuts"), "\n".join(lines))

    def show_about(self) -> None:
        from ui.about import show_about

        show_about(self)

    # --- end --------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop tours, detached walls, panels and live tiles; remember the wall. Idempotent;
        the Workstation itself is closed by whoever made it."""
        if self._shut:
            return
        self._shut = True
        self.stop_tour()
        for window in list(self.detached):
            window.close()
        if self.workstation.sessions.sessions() and any(self.wall.cameras):
            try:
                self.layouts.local().save_last(self.wall.to_dict())
            except (OSError, ValueError) as exc:
                log.warning("could not remember the wall: %s", exc)
        if self.motion_panel is not None:
            self.motion_panel.disarm()
        for panel in (self.playback_bar, self.events_panel):
            stop = getattr(panel, "shutdown", None) or getattr(panel, "close_panel", None)
            if callable(stop):
                try:
                    stop()
                except Exception:
                    log.exception("shutting down %s", type(panel).__name__)
        for undo in self._undo:
            undo()
        self.welcome.close_screen()
        self.welcome_model.close()
        self.alarm_console.close()
        self.alarm_feed.close()
        self.status.stop()
        self.tree.close_tree()
        self.wall.clear()
        self.sources.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)
