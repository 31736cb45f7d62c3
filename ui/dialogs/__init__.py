"""Dialogs of the workstation: settings (recorders, cameras, recording, AI, users, preferences)
and export."""

from ui.dialogs.export import ExportDialog, open_export_dialog
from ui.dialogs.settings import PAGES, SettingsDialog, open_settings

__all__ = ["PAGES", "ExportDialog", "SettingsDialog", "open_export_dialog", "open_settings"]
