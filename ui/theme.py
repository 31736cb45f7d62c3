"""The workstation's look: one dark theme, SVG icons and the pt_BR translation.

Operators watch the wall for hours, so the theme stays calm: near-black surfaces, grey text, one
blue accent for focus and selection, red only for recording and alarms (the habit of Nx Witness
and Milestone). Colours live here once (``DARK``) for widgets that paint themselves; the QSS in
``resources/themes/`` styles the stock widgets with the same values.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PySide6.QtCore import QLocale, QTranslator
from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

log = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
LANGUAGES = ("en", "pt_BR")


@dataclass(frozen=True, slots=True)
class ThemeColors:
    window: str = "#121417"
    panel: str = "#17191d"
    base: str = "#0e0f11"
    tile: str = "#000000"
    border: str = "#2a2e34"
    text: str = "#c9ced6"
    text_dim: str = "#8a9099"
    text_bright: str = "#e6e9ee"
    accent: str = "#2f80ed"
    alarm: str = "#e5484d"  # recording dot, alarms, errors
    warning: str = "#e0a43a"
    recorded: str = "#2f6f4f"  # timeline: recorded ranges
    archived: str = "#3b5f8f"  # timeline: recorded, only in the archive (local copy gone)
    gap: str = "#1a1d21"  # timeline: nothing recorded


DARK = ThemeColors()

# Event colours by label: stable across runs (the timeline and the overlays agree), and the common
# COCO labels get hand-picked hues; anything else gets a hue from a CRC of its name.
_LABEL_COLORS = {
    "motion": "#7d8a5a",
    "person": "#e0a43a",
    "car": "#4fb3d9",
    "truck": "#3f8fb0",
    "bus": "#3f8fb0",
    "motorcycle": "#9b7fd4",
    "motorbike": "#9b7fd4",
    "bicycle": "#9b7fd4",
    "dog": "#d9774f",
    "cat": "#d9774f",
    "alarm": DARK.alarm,
}


def label_color(label: str) -> QColor:
    """A stable colour for an event or detection label."""
    name = _LABEL_COLORS.get(label.lower())
    if name is not None:
        return QColor(name)
    hue = zlib.crc32(label.lower().encode()) % 360
    return QColor.fromHsl(hue, 150, 140)


def stylesheet(name: str = "dark") -> str:
    path = RESOURCES / "themes" / f"{name}.qss"
    if not path.is_file():
        raise FileNotFoundError(f"no theme {name!r} (looked for {path})")
    return path.read_text(encoding="utf-8")


def palette(colors: ThemeColors = DARK) -> QPalette:
    """A QPalette in step with the QSS, for widgets and styles that read the palette."""
    p = QPalette()
    roles = QPalette.ColorRole
    for role, value in (
        (roles.Window, colors.window),
        (roles.WindowText, colors.text),
        (roles.Base, colors.base),
        (roles.AlternateBase, colors.panel),
        (roles.ToolTipBase, colors.panel),
        (roles.ToolTipText, colors.text_bright),
        (roles.PlaceholderText, colors.text_dim),
        (roles.Text, colors.text),
        (roles.Button, colors.panel),
        (roles.ButtonText, colors.text),
        (roles.BrightText, colors.alarm),
        (roles.Highlight, colors.accent),
        (roles.HighlightedText, "#ffffff"),
        (roles.Link, colors.accent),
    ):
        p.setColor(role, QColor(value))
    for role in (roles.Text, roles.ButtonText, roles.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#555b63"))
    return p


def apply_theme(app: QApplication, name: str = "dark") -> None:
    """Fusion style + palette + QSS, app-wide (Fusion honours palettes on every platform)."""
    fusion = QStyleFactory.create("Fusion")
    if fusion is not None:
        app.setStyle(fusion)
    app.setPalette(palette())
    app.setStyleSheet(stylesheet(name))


def icon_names() -> list[str]:
    return sorted(p.stem for p in (RESOURCES / "icons").glob("*.svg"))


@cache
def icon(name: str) -> QIcon:
    """The SVG icon ``resources/icons/<name>.svg`` (cached; needs a QGuiApplication)."""
    path = RESOURCES / "icons" / f"{name}.svg"
    if not path.is_file():
        raise KeyError(f"no icon {name!r}; known: {', '.join(icon_names())}")
    return QIcon(str(path))


def camera_status_icon(state: str) -> QIcon:
    """Icon for a camera state as the recorder reports it (online/offline/error/...)."""
    if state == "online":
        return icon("camera-online")
    if state in ("error", "failed"):
        return icon("camera-error")
    return icon("camera-offline")


def translation_file(language: str) -> Path:
    return RESOURCES / "translations" / f"vigia_{language}.qm"


_installed: list[QTranslator] = []


def install_language(app: QApplication, language: str) -> bool:
    """Switch the UI language ('en' or 'pt_BR'); returns whether a translation is now active.

    Widgets pick the change up through their LanguageChange event (they retranslate there).
    """
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; choose one of {', '.join(LANGUAGES)}")
    for translator in _installed:
        app.removeTranslator(translator)
    _installed.clear()
    QLocale.setDefault(QLocale(language))
    if language == "en":
        return False
    path = translation_file(language)
    translator = QTranslator(app)
    if not translator.load(str(path)):
        log.warning("translation %s missing or unreadable (compile it with pyside6-lrelease)", path)
        return False
    app.installTranslator(translator)
    _installed.append(translator)
    return True
