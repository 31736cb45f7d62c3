"""The workstation engine's benchmarks in one run: seek latency (``client_seek.py``) and wall
throughput (``client_wall.py``), each against its reference measured in the same run.

    python bench/client.py [--quick] [--json OUT]

Each part runs in its own process (so one's threads and caches do not colour the other's
figures) and prints its own table; ``--json`` gathers both parts' figures in one file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARTS = ("client_seek", "client_wall")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="about a minute per part")
    ap.add_argument("--json", type=Path, default=None, help="write both parts' figures here")
    args = ap.parse_args()
    figures: dict[str, object] = {}
    status = 0
    with tempfile.TemporaryDirectory(prefix="vigia-bench-client-") as tmp:
        for part in PARTS:
            out = Path(tmp) / f"{part}.json"
            cmd = [sys.executable, str(HERE / f"{part}.py"), "--json", str(out)]
            if args.quick:
                cmd.append("--quick")
            print(f"== {part}", flush=True)
            rc = subprocess.run(cmd, check=False).returncode
            status = status or rc
            if out.exists():
                figures[part] = json.loads(out.read_text())
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
