"""``vigia``: the desktop workstation.

``vigia [--server URL] [--user NAME] [--wall 2x2]``: opens the main window and logs in to the
recorder at URL (the password from ``VIGIA_PASSWORD``, the keyring when the server is saved, or
a dialog). Without ``--server`` the saved recorders are logged in to in the background; with
none, the window opens on the welcome screen (recorders found on the network, an address, the
login). Once a recorder is online the wall shows ``--wall`` filled with the first cameras, else
the wall as it was left, else 2×2 with the first four cameras.

Self-test (for tests and ``make demo`` checks): with ``VIGIA_SELFTEST=PATH`` the program writes
a JSON report to PATH and quits as soon as every tile of the wall has received frames (exit 0),
or after ``VIGIA_SELFTEST_TIMEOUT`` seconds (default 60; the report then has ``"ok": false``
and the exit status is 1). The report: ``ok``, ``title``, ``layout`` and, per tile, ``camera``,
``frames_received``, ``stream``, ``decoder``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SELFTEST_POLL_MS = 200

log = logging.getLogger("vigia")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vigia",
        description="Vigia desktop workstation: live video wall, playback, events and export "
        "for Vigia recorders.",
    )
    p.add_argument(
        "--server",
        default=None,
        help="recorder URL to log in to, e.g. http://127.0.0.1:8480 (default: the saved recorders)",
    )
    p.add_argument(
        "--user",
        default="admin",
        help="user name (password from VIGIA_PASSWORD, the keyring, or a dialog)",
    )
    from ui.wall import LAYOUT_NAMES

    p.add_argument(
        "--wall",
        choices=LAYOUT_NAMES,
        default=None,
        help="start with this layout filled with the first cameras",
    )
    p.add_argument(
        "--renderer",
        choices=("auto", "gl", "raster"),
        default="auto",
        help="video tile renderer (default: GPU when a hardware context exists)",
    )
    p.add_argument(
        "--no-discovery",
        action="store_true",
        help="do not look for recorders on the network (zeroconf)",
    )
    p.add_argument(
        "--config-dir",
        default=None,
        help="settings directory (default: VIGIA_CONFIG_DIR or the user's)",
    )
    from ui.about import workstation_version

    p.add_argument("--version", action="version", version=f"vigia {workstation_version()}")
    p.add_argument("--log-level", default="WARNING", help=argparse.SUPPRESS)
    return p


def pick_language(preference: str) -> str:
    """'' follows the system: pt_BR for Portuguese locales, English otherwise."""
    if preference:
        return preference
    from PySide6.QtCore import QLocale

    return "pt_BR" if QLocale.system().name().startswith("pt") else "en"


def ask_password(parent: Any, server: str, user: str) -> str | None:
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QInputDialog, QLineEdit

    text, ok = QInputDialog.getText(
        parent,
        QCoreApplication.translate("MainWindow", "Connect to recorder"),
        QCoreApplication.translate("MainWindow", "Password for {user} at {server}").format(
            user=user, server=server
        ),
        QLineEdit.EchoMode.Password,
    )
    return text if ok else None


def retry_login(window: Any, message: str) -> None:
    """Say why the login failed and offer the connect dialog again."""
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QMessageBox

    title = QCoreApplication.translate("MainWindow", "Connect to recorder")
    QMessageBox.warning(window, title, message)
    window.connect_dialog()


def login_failed(window: Any, message: str, server: str) -> None:
    """On the welcome screen when it is up (no session): the reason, the address kept; else
    the reason and the connect dialog."""
    if window.welcome_shown():
        window.show_welcome_error(message, server)
    else:
        retry_login(window, message)


class SelfTest:
    """Writes the report once every tile has frames (or at the deadline) and quits."""

    def __init__(self, window: Any, path: Path, timeout_s: float) -> None:
        from PySide6.QtCore import QTimer

        self.window, self.path = window, path
        self.exit_code: int | None = None
        self._poll = QTimer(window)
        self._poll.setInterval(SELFTEST_POLL_MS)
        self._poll.timeout.connect(self.check)
        self._poll.start()
        QTimer.singleShot(round(timeout_s * 1000), lambda: self.finish(False))

    def check(self) -> None:
        wall = self.window.wall
        tiles = [cell.tile for cell in wall.cells]
        if tiles and all(c for c in wall.cameras) and all(t.frames_received for t in tiles):
            self.finish(True)

    def report(self, ok: bool) -> dict[str, Any]:
        wall, sources = self.window.wall, self.window.sources
        tiles = []
        for i, cell in enumerate(wall.cells):
            source = sources.source_at(i)
            stats = source.stats() if source is not None else None
            tiles.append(
                {
                    "camera": cell.camera,
                    "frames_received": cell.tile.frames_received,
                    "stream": stats.stream if stats else None,
                    "decoder": stats.decoder if stats else None,
                }
            )
        return {
            "ok": ok,
            "title": self.window.windowTitle(),
            "layout": f"{wall.layout_spec.rows}x{wall.layout_spec.cols}",
            "tiles": tiles,
        }

    def finish(self, ok: bool) -> None:
        if self.exit_code is not None:
            return
        self._poll.stop()
        self.exit_code = 0 if ok else 1
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.report(ok), indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.path)
        self.window.close()
        from PySide6.QtWidgets import QApplication

        QApplication.quit()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    from PySide6.QtWidgets import QApplication

    from app.settings import Settings
    from app.workstation import Workstation
    from ui.bridge import bridge
    from ui.mainwindow import MainWindow
    from ui.theme import LANGUAGES, apply_theme, install_language

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Vigia")
    apply_theme(app)
    settings = Settings(args.config_dir)
    language = pick_language(settings.preferences.language)
    if language in LANGUAGES:
        install_language(app, language)
    workstation = Workstation(settings, start_discovery=not args.no_discovery)
    window = MainWindow(workstation, renderer=args.renderer)
    selftest_path = os.environ.get("VIGIA_SELFTEST")
    selftest = None
    if selftest_path:
        timeout = float(os.environ.get("VIGIA_SELFTEST_TIMEOUT", "60"))
        selftest = SelfTest(window, Path(selftest_path), timeout)

    started = [False]

    def first_wall(_session: Any = None) -> None:
        if not started[0] and not any(window.wall.cameras):
            started[0] = True
            window.start_wall(args.wall)

    undo = bridge().connect(workstation.sessions.added, first_wall)
    for _ in workstation.sessions.sessions():
        first_wall()
    if selftest is not None:
        window.connect_failed.connect(lambda _m: selftest.finish(False))
    else:
        window.connect_failed.connect(lambda m: login_failed(window, m, args.server or ""))
    window.show()

    if args.server:
        password = os.environ.get("VIGIA_PASSWORD")
        if password is None:
            saved = settings.server(args.server)
            if saved is not None and saved.user == args.user:
                password = settings.password(saved)
        if password is None and selftest is None:
            password = ask_password(window, args.server, args.user)
        if password is None:
            log.error("no password for %s at %s (set VIGIA_PASSWORD)", args.user, args.server)
            if selftest is not None:
                selftest.finish(False)
        else:
            window.connect_to(args.server, args.user, password)
    code = app.exec() if selftest is None or selftest.exit_code is None else 0
    undo()
    window.shutdown()
    workstation.close()
    if selftest is not None and selftest.exit_code is not None:
        return selftest.exit_code
    return code


if __name__ == "__main__":
    sys.exit(main())
