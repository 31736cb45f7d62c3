"""The workstation's version and About box (Help menu)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from PySide6.QtCore import QCoreApplication
from PySide6.QtWidgets import QMessageBox, QWidget

LICENCE = "Apache License 2.0"  # a name: not translated


def workstation_version() -> str:
    """The installed distribution's version (pyproject.toml takes it from ``server.__version__``;
    the PyInstaller bundle carries the metadata, packaging/vigia-workstation.spec)."""
    try:
        return version("vigia")
    except PackageNotFoundError:
        return "unknown"


def about_text() -> str:
    what = QCoreApplication.translate(
        "MainWindow", "Vigia workstation: live video, playback and search for Vigia recorders."
    )
    return f"<p><b>Vigia {workstation_version()}</b></p><p>{what}</p><p>{LICENCE}</p>"


def show_about(parent: QWidget) -> None:
    title = QCoreApplication.translate("MainWindow", "About Vigia")
    QMessageBox.about(parent, title, about_text())
