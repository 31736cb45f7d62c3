"""Settings page: this workstation's own preferences (``app.settings.Preferences``): language
(applied at once), decoder preference, and the tile width from which tiles show the main stream.
New live tiles use the decoder and threshold; tiles already playing keep theirs."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.settings import DECODERS
from app.workstation import Workstation
from ui import theme
from ui.dialogs.common import Page

LANGUAGE_NAMES = {"en": "English", "pt_BR": "Português (Brasil)"}  # each in its own language


class PreferencesPage(Page):
    title = "Preferences"
    context = "PreferencesPage"

    def __init__(self, workstation: Workstation, parent: QWidget | None = None) -> None:
        super().__init__(workstation, parent)
        t = self.texts
        self.language = QComboBox()
        for code in theme.LANGUAGES:
            self.language.addItem(LANGUAGE_NAMES.get(code, code), code)
        self.decoder = QComboBox()
        for d in DECODERS:
            self.decoder.addItem(d, d)
        self.threshold = QSpinBox()
        self.threshold.setRange(1, 16384)
        self.threshold.setSuffix(" px")
        self.apply_button = QPushButton()
        t.bind(self.apply_button.setText, "Apply")
        self.apply_button.clicked.connect(self.apply)
        form = QFormLayout()
        form.addRow(t.label("Language"), self.language)
        form.addRow(t.label("Video decoder"), self.decoder)
        form.addRow(t.label("Main stream for tiles at least this wide"), self.threshold)
        hint = t.label(
            "'auto' uses a hardware decoder when the machine offers one, else software. "
            "Changes apply to tiles opened from now on."
        )
        hint.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.apply_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(hint)
        layout.addStretch(1)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        self.retranslate()
        self.load()

    def retranslate(self) -> None:
        super().retranslate()
        self.decoder.setItemText(0, self.tr_("auto (hardware when available)"))
        self.decoder.setItemText(1, self.tr_("software"))

    def activate(self) -> None:
        self.load()

    def load(self) -> None:
        prefs = self.ws.settings.preferences
        lang = prefs.language or "en"
        self.language.setCurrentIndex(max(0, self.language.findData(lang)))
        self.decoder.setCurrentIndex(max(0, self.decoder.findData(prefs.decoder)))
        self.threshold.setValue(prefs.tile_stream_threshold_px)

    def apply(self) -> None:
        """Save (a small local file) and switch the language now."""
        language = str(self.language.currentData())
        try:
            self.ws.settings.set_preferences(
                language=language,
                decoder=str(self.decoder.currentData()),
                tile_stream_threshold_px=self.threshold.value(),
            )
        except (ValueError, OSError) as exc:
            self.status.error(str(exc))
            return
        app = QApplication.instance()
        if isinstance(app, QApplication):
            theme.install_language(app, language)  # widgets retranslate on LanguageChange
        self.status.ok(self.tr_("Saved"))
