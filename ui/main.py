"""``vigia``: the desktop workstation.

For now a placeholder window: the workstation (video wall, timeline, playback) is delivered by
the workstation issues. It shows which recorder it would connect to.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

PLACEHOLDER = (
    "Vigia workstation\n\n"
    "This is a placeholder window: the video wall, timeline and playback arrive with the\n"
    "workstation issues. The recorder (vigia-server) is recording meanwhile."
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vigia",
        description="Vigia desktop workstation. PLACEHOLDER: this version only opens a window "
        "saying so; the video wall, timeline and playback come with the workstation issues.",
    )
    p.add_argument("--server", default="http://127.0.0.1:8480", help="recorder URL")
    p.add_argument("--user", default="admin", help="user name (password from VIGIA_PASSWORD)")
    p.add_argument("--quit-after", type=float, default=None, metavar="S", help=argparse.SUPPRESS)
    return p


def build_window(server: str):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QLabel, QMainWindow

    window = QMainWindow()
    window.setWindowTitle(f"Vigia — {server}")
    label = QLabel(f"{PLACEHOLDER}\n\nRecorder: {server}")
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    window.setCentralWidget(label)
    window.resize(900, 500)
    return window


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = build_window(args.server)
    window.show()
    if args.quit_after is not None:
        QTimer.singleShot(int(args.quit_after * 1000), app.quit)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
