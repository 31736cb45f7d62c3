"""Rules, alarms and notifications on the recorder (docs/design/rules.md)."""
