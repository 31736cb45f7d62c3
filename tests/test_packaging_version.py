"""The version is visible everywhere: both command lines and the workstation's About box
(``GET /api/v1/server`` is checked in tests/test_packaging_service.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from keyring.backends import null
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from app.settings import SecretStore, Settings
from app.workstation import Workstation
from server import __version__
from ui.about import LICENCE, workstation_version
from ui.mainwindow import MainWindow

ROOT = Path(__file__).resolve().parent.parent


def test_command_lines_print_the_version() -> None:
    for module, name in (("server", "vigia-server"), ("ui.main", "vigia")):
        out = subprocess.run(
            [sys.executable, "-m", module, "--version"],
            capture_output=True, text=True, cwd=ROOT, timeout=60, check=True,
        )  # fmt: skip
        assert out.stdout.strip() == f"{name} {__version__}"


def test_one_version_for_both_programs() -> None:
    assert workstation_version() == __version__
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog  # this version's work, until it is released
    assert "## [0.1.0] - " in changelog  # the last release (tests/fixtures/catalog-0.1.0)


def test_help_about_names_version_and_licence(qtbot, tmp_path: Path) -> None:
    """Help > About Vigia in the real main window."""
    settings = Settings(tmp_path / "config", secrets=SecretStore(null.Keyring()))
    workstation = Workstation(settings, start_discovery=False)
    window = MainWindow(workstation, renderer="raster")
    qtbot.addWidget(window)
    seen: list[str] = []

    def read_and_close() -> None:
        box = QApplication.activeModalWidget()
        assert isinstance(box, QMessageBox)
        seen.append(box.windowTitle() + "\n" + box.text())
        box.accept()

    QTimer.singleShot(0, read_and_close)
    try:
        about = window.actions_by_key["about"]
        assert about in window.help_menu.actions()
        about.trigger()  # a modal box: returns once it is closed
    finally:
        window.shutdown()
        workstation.close()
    (text,) = seen
    assert "About Vigia" in text
    assert f"Vigia {__version__}" in text
    assert LICENCE in text
