"""The welcome screen: what the main window shows while there is no session.

In the manner of Nx Witness's connection screen: the sites and recorders found on the network
(and saved ones) on the left, the login on the right; pick one (or type an address), type the
password, Enter. A view of ``app.welcome.Welcome``; the login runs off the Qt thread and its
failure is said on the screen itself (docs/design/workstation.md).
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.welcome import LoginError, Welcome, WelcomeRecorder, WelcomeSite, login_error
from ui.bridge import bridge
from ui.theme import DARK, icon
from ui.tree import state_text

log = logging.getLogger(__name__)

ADDRESS_ROLE = Qt.ItemDataRole.UserRole + 1  # the address a row fills in
USER_ROLE = Qt.ItemDataRole.UserRole + 2  # the saved user, if any
RELOAD_DELAY_MS = 100


def _tr(text: str) -> str:
    return QCoreApplication.translate("WelcomeScreen", text)


def describe(error: LoginError, address: str) -> str:
    """A login failure in the user's words."""
    if error.kind == "address":
        return _tr("{address} is not a recorder address: {detail}").format(
            address=address, detail=error.detail
        )
    if error.kind == "refused":
        return _tr("Wrong user name or password ({detail})").format(detail=error.detail)
    if error.kind == "unreachable":
        text = _tr("Cannot reach {address}. Is the recorder running, and is the address right?")
        return text.format(address=address) + f"\n({error.detail})"
    return _tr("{address} refused the login: {detail}").format(address=address, detail=error.detail)


class WelcomeScreen(QWidget):
    """Found sites and recorders, address, user, password, Log in; ``logged_in`` after one."""

    logged_in = Signal(object)  # Session

    def __init__(self, welcome: Welcome, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("welcomeScreen")
        self.welcome = welcome
        self.logging_in = False
        self.heading = QLabel()
        self.heading.setObjectName("welcomeHeading")
        self.heading.setStyleSheet("font-size: 22px; font-weight: 600;")
        self.intro = QLabel()
        self.intro.setWordWrap(True)
        self.found_label = QLabel()
        self.found = QTreeWidget()
        self.found.setColumnCount(4)
        self.found.setRootIsDecorated(True)
        self.found.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.found.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.found.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.found.currentItemChanged.connect(lambda item, _old: self._picked(item))
        self.found.itemActivated.connect(lambda _item, _col: self._activated())
        self.empty = QLabel()
        self.empty.setWordWrap(True)
        self.empty.setEnabled(False)

        self.address = QLineEdit()
        self.address.setPlaceholderText("192.0.2.10:8480")
        self.user = QLineEdit("admin")
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.remember = QCheckBox()
        self.remember.setChecked(True)
        self.login_button = QPushButton()
        self.login_button.setDefault(True)
        self.login_button.clicked.connect(self.login)
        for field in (self.address, self.user, self.password):
            field.returnPressed.connect(self.login)
        self.message = QLabel()
        self.message.setObjectName("welcomeMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message_kind = ""  # 'busy' | 'error' | ''

        left = QVBoxLayout()
        left.addWidget(self.found_label)
        left.addWidget(self.found, 1)
        left.addWidget(self.empty)
        self.form = QFormLayout()
        self.address_label, self.user_label, self.password_label = QLabel(), QLabel(), QLabel()
        self.form.addRow(self.address_label, self.address)
        self.form.addRow(self.user_label, self.user)
        self.form.addRow(self.password_label, self.password)
        self.form.addRow("", self.remember)
        self.form.addRow("", self.login_button)
        self.form.addRow(self.message)
        card = QFrame()
        card.setFrameShape(QFrame.Shape.StyledPanel)
        card.setMinimumWidth(340)
        card.setLayout(self.form)
        right = QVBoxLayout()
        right.addWidget(card)
        right.addStretch(1)
        body = QHBoxLayout()
        body.addLayout(left, 3)
        body.addLayout(right, 2)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(48, 36, 48, 36)
        outer.addWidget(self.heading)
        outer.addWidget(self.intro)
        outer.addSpacing(12)
        outer.addLayout(body, 1)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(RELOAD_DELAY_MS)
        self._timer.timeout.connect(self.reload)
        self._disconnect = bridge().connect(welcome.changed, lambda _w: self._timer.start())
        self._closed = False
        self.retranslate()
        self.address.setFocus()

    # --- texts ------------------------------------------------------------------------------

    def retranslate(self) -> None:
        self.heading.setText(_tr("Welcome to Vigia"))
        self.intro.setText(
            _tr(
                "Log in to a site or a recorder: pick one found on the network, or type its "
                "address."
            )
        )
        self.found_label.setText(_tr("Sites and recorders on the network"))
        self.found.setHeaderLabels([_tr("Name"), _tr("Address"), _tr("Version"), _tr("State")])
        self.empty.setText(
            _tr(
                "None found yet: recorders on this network appear here by themselves. "
                "For one elsewhere, type its address."
            )
        )
        self.address_label.setText(_tr("Address"))
        self.user_label.setText(_tr("User"))
        self.password_label.setText(_tr("Password"))
        self.remember.setText(_tr("Remember and log in by itself next time"))
        self.login_button.setText(_tr("Log in"))
        self.reload()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    # --- the list ---------------------------------------------------------------------------

    def reload(self) -> None:
        """Re-read the sites and recorders (keeps the selection); not while the wall is shown
        (the main window reloads it when it shows the screen again)."""
        if self._closed or self.isHidden():
            return
        current = self.found.currentItem()
        keep = current.data(0, ADDRESS_ROLE) if current is not None else None
        self.found.blockSignals(True)
        try:
            self.found.clear()
            for site in self.welcome.entries():
                self.found.addTopLevelItem(self._site_item(site))
            self.found.expandAll()
            for col in (1, 2, 3):
                self.found.resizeColumnToContents(col)
            if keep:
                for item in self._items():
                    if item.data(0, ADDRESS_ROLE) == keep:
                        self.found.setCurrentItem(item)
                        break
        finally:
            self.found.blockSignals(False)
        self.empty.setVisible(self.found.topLevelItemCount() == 0)

    def _items(self) -> list[QTreeWidgetItem]:
        out = []
        for i in range(self.found.topLevelItemCount()):
            top = self.found.topLevelItem(i)
            out.append(top)
            out += [top.child(c) for c in range(top.childCount())]
        return out

    def _site_item(self, site: WelcomeSite) -> QTreeWidgetItem:
        if not site.name:
            return self._recorder_item(site.recorders[0])
        count = len(site.recorders)
        if count == 1:
            text = _tr("Site {site} (1 recorder)").format(site=site.name)
        else:
            text = _tr("Site {site} ({count} recorders)").format(site=site.name, count=count)
        shown = site.address.removeprefix("http://")
        item = QTreeWidgetItem([text, shown, site.version, ""])
        item.setIcon(0, icon("recorder"))
        item.setData(0, ADDRESS_ROLE, site.address)
        item.setData(0, USER_ROLE, site.user)
        for rec in site.recorders:
            item.addChild(self._recorder_item(rec))
        return item

    def _recorder_item(self, rec: WelcomeRecorder) -> QTreeWidgetItem:
        address = (
            rec.base_url.split("://", 1)[-1] if rec.base_url.startswith("http:") else rec.base_url
        )
        if rec.state:
            state = state_text(rec.state)
        elif rec.found:
            state = _tr("on the network")
        else:
            state = _tr("saved")
        item = QTreeWidgetItem([rec.name, address, rec.version, state])
        item.setIcon(0, icon("recorder"))
        item.setData(0, ADDRESS_ROLE, rec.base_url)
        item.setData(0, USER_ROLE, rec.user)
        item.setToolTip(0, rec.key)
        return item

    def entry_names(self) -> list[str]:
        """The first column of every row, in order (sites, then their recorders): for tests."""
        return [item.text(0) for item in self._items()]

    def select_address(self, address: str) -> bool:
        """Pick the row of ``address`` (as a click would); False when no row has it."""
        for item in self._items():
            if address in (item.data(0, ADDRESS_ROLE), item.text(1)):
                self.found.setCurrentItem(item)
                self._picked(item)  # also when it was current already
                return True
        return False

    def _picked(self, item: QTreeWidgetItem | None) -> None:
        if item is None:
            return
        self.address.setText(item.data(0, ADDRESS_ROLE) or "")
        user = item.data(0, USER_ROLE)
        if user:
            self.user.setText(user)
        self._say("", "")

    def _activated(self) -> None:
        """Enter or double-click on a row: log in when the password is typed, else ask it."""
        if self.password.text():
            self.login()
        else:
            self.password.setFocus()

    # --- logging in -------------------------------------------------------------------------

    def _say(self, kind: str, text: str) -> None:
        self.message_kind = kind
        color = DARK.alarm if kind == "error" else DARK.text_dim
        self.message.setStyleSheet(f"color: {color};")
        self.message.setText(text)

    def login(self) -> None:
        """Log in with what the fields say (Enter in any field, or the button)."""
        if self.logging_in:
            return
        address, user = self.address.text().strip(), self.user.text().strip()
        if not address:
            self._say("error", _tr("Type the address of a recorder, or pick one in the list"))
            self.address.setFocus()
            return
        if not user:
            self._say("error", _tr("Type your user name"))
            self.user.setFocus()
            return
        password, remember = self.password.text(), self.remember.isChecked()
        self.logging_in = True
        self.login_button.setEnabled(False)
        self._say("busy", _tr("Logging in to {address}…").format(address=address))

        def work() -> Any:
            return self.welcome.login(address, user, password, remember=remember)

        def done(future: Any) -> None:
            if self._closed:
                return
            self.logging_in = False
            self.login_button.setEnabled(True)
            try:
                session = future.result()
            except Exception as exc:  # LoginError, or what a bug raised: say it either way
                error = login_error(exc)
                log.info("login to %s failed: %s", address, exc)
                self._say("error", describe(error, address))
                field = self.password if error.kind == "refused" else self.address
                field.setFocus()
                field.selectAll()
                return
            self.password.clear()
            self._say("", "")
            self.logged_in.emit(session)

        bridge().run(work, done)

    def close_screen(self) -> None:
        self._closed = True
        self._timer.stop()
        self._disconnect()
