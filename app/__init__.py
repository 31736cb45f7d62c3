"""Vigia workstation engine: discovery, sessions, live pipeline, playback (no widgets)."""
