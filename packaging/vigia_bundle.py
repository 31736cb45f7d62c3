"""Entry point of the PyInstaller workstation bundle (packaging/build_packages.py)."""

import sys

from ui.main import main

if __name__ == "__main__":
    sys.exit(main())
