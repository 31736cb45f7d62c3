"""Vigia workstation widgets (PySide6)."""
