"""Archive-only footage end to end, against a real SeaweedFS and real recorders
(docs/design/archive.md): a minute of frame-coded video recorded with the recorder's own
segmenter reaches the bucket; retention then deletes every local copy; the workstation engine
plays the exact frame at random instants from the bucket alone and an export over it verifies.
Then ``archive restore`` rebuilds a new data dir from the bucket alone, and a recorder on it
plays the same frames and signs exports with the original recorder's key."""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import pytest

from app.api import ApiClient
from app.export import ExportClient
from app.loop import AsyncRunner
from app.playback import PlaybackEngine, SegmentFetcher
from server.catalog import Catalog
from server.datadir import DataDir
from server.export.manifest import load_public_key
from server.protocol.manifest import Manifest
from server.recording.segmenter import RecordingSettings, SegmentWriter
from server.sim.clips import ClipSpec, make_clip, read_frame_number
from tests.conftest import ROOT, ServerProcess, camera_toml, wait_until
from tests.helpers import clip_packets, ingest_packet
from tests.s3server import ACCESS_KEY, SECRET_KEY, SeaweedS3

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ARTIFACTS = ROOT / "tests" / "artifacts"

S = 1_000_000
FRAME_US = 40_000  # 25 fps
CLIP_FRAMES = 200  # the frame code repeats every 200 frames (8 s clips)
GOP = 50
SECONDS = 60  # recorded offline, in 10 s segments (the demo segment length)
PASSWORD = "archive-play-pass"
PREFIX = "play/"


@dataclass
class Site:
    s3: SeaweedS3
    root: Path
    data: Path
    start_us: int  # first frame (frame code 0)
    end_us: int
    segment_ids: list[int]
    original_key: bytes  # the original recorder's signing public key
    server_id: str
    runner: AsyncRunner
    base_url: str  # the recorder serving the archive-only footage


def _record(catalog: Catalog, data: DataDir, clip: Path, start_us: int) -> int:
    """``SECONDS`` of a looped clip through the recorder's segmenter, as if received live from
    ``start_us``; returns the end. Each segment closes with its SHA-256, which queues it for
    upload (the catalog's trigger)."""
    writer = SegmentWriter(catalog, data.root, "cam", "main", RecordingSettings(segment_us=10 * S))
    info, packets = clip_packets(clip, loops=SECONDS * S // (CLIP_FRAMES * FRAME_US))
    writer.on_connect(info)
    tb, first = info.time_base, packets[0][2]
    for payload, pts, dts, key in packets:
        recv = start_us + int((dts - first) * tb * S)
        writer.on_packet(ingest_packet(payload, pts, dts, key, recv, tb))
    writer.close()
    return start_us + len(packets) * FRAME_US


def _config(root: Path, name: str, s3: SeaweedS3 | None, retention_days: float | None) -> Path:
    """The camera is configured but disabled: only the footage recorded offline is there."""
    archive = ""
    if s3 is not None:
        archive = "\n".join(["[archive]", f'endpoint = "{s3.endpoint}"', f'bucket = "{s3.bucket}"',
                             f'prefix = "{PREFIX}"', "retry_max_s = 2"])  # fmt: skip
    toml = camera_toml([("cam", "file:///dev/null", None)], archive)
    toml = toml.replace("min_free_bytes = 0", "min_free_bytes = 0\nretention_interval_s = 1")
    toml += "enabled = false\n"
    if retention_days is not None:
        toml += f"retention_days = {retention_days}\n"
    path = root / name
    path.write_text(toml)
    return path


ENV = {"VIGIA_ARCHIVE_ACCESS_KEY": ACCESS_KEY, "VIGIA_ARCHIVE_SECRET_KEY": SECRET_KEY,
       "VIGIA_ADMIN_PASSWORD": PASSWORD}  # fmt: skip


def _query(data: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(f"file:{data / 'catalog.db'}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, clip_dir: Path) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("archive-play")
    s3 = SeaweedS3(root / "s3")
    s3.start()
    runner = AsyncRunner("test-archive-play").start()
    procs: list[ServerProcess] = []
    try:
        spec = ClipSpec(320, 180, fps=25, seconds=8, gop=GOP, label="archive")
        clip = make_clip(clip_dir / "archive-play-320.mp4", spec)
        data = DataDir(root / "data")
        data.create()
        catalog = Catalog(data.catalog)
        start = time.time_ns() // 1000 - 3 * 86_400 * S  # three days ago
        catalog.upsert_camera("cam", "cam", {"main": ("file:///dev/null", True)}, now_us=start)
        end = _record(catalog, data, clip, start)
        snap = data.root / "snapshots" / "cam" / "1.jpg"
        snap.parent.mkdir(parents=True)
        snap.write_bytes(b"\xff\xd8snapshot\xff\xd9")
        with catalog.transaction() as c:
            c.execute("INSERT INTO events (id, camera_id, kind, label, score, start_us, end_us,"
                      " snapshot) VALUES (5, 'cam', 'object', 'person', 0.9, ?, ?, ?)",
                      (start + 20 * S, start + 24 * S, "snapshots/cam/1.jpg"))  # fmt: skip
        ids = [r[0] for r in catalog.read("SELECT id FROM segments ORDER BY start_us")]
        catalog.close()
        assert len(ids) >= 5

        # 1: a recorder with an archive sends the footage, the event and its identity
        rec = ServerProcess(data.root, _config(root, "a.toml", s3, None), root / "a.log")
        procs.append(rec)
        rec.start(env=ENV)
        wait_until(lambda: len(_query(data.root, "SELECT * FROM archived")) == len(ids), 90,
                   "every segment archived")  # fmt: skip
        wait_until(lambda: f"{PREFIX}catalog/server.json" in s3.objects(PREFIX + "catalog/")
                   and f"{PREFIX}catalog/events/5.json" in s3.objects(PREFIX + "catalog/"),
                   60, "the recorder's identity and the event in the bucket")  # fmt: skip
        rec.stop()
        key = load_public_key(data)
        assert key is not None

        # 2: retention (1 day) deletes every local copy; the recorder serves them from the bucket
        rec = ServerProcess(data.root, _config(root, "b.toml", s3, 1.0), root / "b.log")
        procs.append(rec)
        rec.start(env=ENV)
        wait_until(lambda: not _query(data.root, "SELECT * FROM segments")
                   and not list((data.root / "recordings").rglob("*.mp4")), 60,
                   "retention deleting the local copies (rows, then files)")  # fmt: skip
        yield Site(s3, root, data.root, start, end, ids, key, data.server_id(), runner,
                   rec.base_url)  # fmt: skip
        rec.stop()
    finally:
        for p in procs:  # a recorder left by a failed step
            if p.proc is not None and p.proc.poll() is None:
                p.kill9()
        runner.stop()
        s3.stop()


def _login(site: Site, base_url: str) -> ApiClient:
    async def login() -> ApiClient:
        api = ApiClient(base_url)
        await api.login("admin", PASSWORD)
        return api

    return site.runner.call(login(), 10)


def _plays_exact_frames(site: Site, api: ApiClient, seed: int, n: int = 25) -> None:
    """The engine shows the frame whose time holds each random instant, by its frame code."""
    rng = random.Random(seed)
    with PlaybackEngine(SegmentFetcher(site.runner, api, "cam")) as engine:
        for _ in range(n):
            t = rng.randrange(site.start_us, site.end_us - FRAME_US)
            frame = engine.seek(t).result(15)
            assert frame is not None, t - site.start_us
            assert frame.pts_us <= t < frame.pts_us + FRAME_US, (t, frame.pts_us)
            expected = (t - site.start_us) // FRAME_US % CLIP_FRAMES
            assert read_frame_number(frame.luma) == expected, (t - site.start_us) / S


def _export_verifies(site: Site, api: ApiClient, out: Path) -> Manifest:
    """An exact export over [12.3 s, 27.1 s) of the footage: signed by the original recorder's
    key, every frame there once, in order, from the one at the start."""
    a, b = site.start_us + 12_300_000, site.start_us + 27_100_000

    async def run() -> tuple[Path, object]:
        return await ExportClient(api).run([("cam", "main")], a, b, out, exact=True,
                                           trusted_public_key=site.original_key)  # fmt: skip

    folder, report = site.runner.call(run(), 120)
    assert report.ok and report.trusted, report.problems  # type: ignore[attr-defined]
    manifest = report.manifest  # type: ignore[attr-defined]
    (video,) = [folder / f.name for f in manifest.files]
    with av.open(str(video)) as c:
        codes = [read_frame_number(f.to_ndarray(format="gray")) for f in c.decode(video=0)]
    first = (a - site.start_us + FRAME_US - 1) // FRAME_US  # the first frame starting in range
    want = [(first + i) % CLIP_FRAMES for i in range((b - site.start_us) // FRAME_US - first + 1)]
    assert codes == want, "each frame of the range once, in order, none other"
    return manifest


def test_archive_only_footage_plays_exact_frames_and_exports_verify(
    site: Site, tmp_path: Path
) -> None:
    api = _login(site, site.base_url)
    try:
        segs = site.runner.call(api.get_json("/cameras/cam/segments", {
            "start_us": site.start_us, "end_us": site.end_us}), 10)  # fmt: skip
        assert [s["id"] for s in segs] == site.segment_ids
        assert {s["location"] for s in segs} == {"archived"}
        rec = site.runner.call(api.get_json("/recordings", {
            "camera": "cam", "start_us": site.start_us, "end_us": site.end_us}), 10)  # fmt: skip
        assert [x["where"] for x in rec["locations"]] == ["archived"]
        _plays_exact_frames(site, api, seed=14)
        manifest = _export_verifies(site, api, tmp_path)
        assert manifest.server_id == site.server_id
    finally:
        site.runner.call(api.close(), 5)


def test_restore_from_the_bucket_alone_plays_and_signs_with_the_original_key(
    site: Site, tmp_path: Path
) -> None:
    new = tmp_path / "restored"
    config = _config(tmp_path, "restore.toml", site.s3, None)
    cli = subprocess.run(
        [sys.executable, "-m", "server", "archive", "restore", "--data-dir", str(new),
         "--config", str(config), "--signing-key", str(site.data / "keys" / "export-signing.pem")],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, **ENV},
    )  # fmt: skip
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert f"restored 1 camera(s), {len(site.segment_ids)} segment(s)" in cli.stdout, cli.stdout
    assert "1 event(s)" in cli.stdout and f"recorder id {site.server_id}" in cli.stdout
    assert [
        r[0] for r in _query(new, "SELECT id FROM segments ORDER BY start_us")
    ] == site.segment_ids
    (ev,) = _query(new, "SELECT id, label, start_us, end_us, snapshot FROM events")
    assert ev[:4] == (5, "person", site.start_us + 20 * S, site.start_us + 24 * S)
    assert (new / ev[4]).read_bytes() == b"\xff\xd8snapshot\xff\xd9"
    assert DataDir(new).server_id() == site.server_id

    rec = ServerProcess(new, _config(tmp_path, "r.toml", None, None), tmp_path / "r.log")
    rec.start(env=ENV)
    try:
        api = _login(site, rec.base_url)
        try:
            window = {"camera": "cam", "start_us": site.start_us, "end_us": site.end_us}
            rec_json = site.runner.call(api.get_json("/recordings", window), 10)
            assert rec_json["ranges"][0]["start_us"] <= site.start_us + FRAME_US
            _plays_exact_frames(site, api, seed=41)
            manifest = _export_verifies(site, api, tmp_path / "exports")
            assert manifest.server_id == site.server_id
        finally:
            site.runner.call(api.close(), 5)
    finally:
        rec.stop()

    # a key that is not the archived recorder's is refused
    other = tmp_path / "other.pem"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))  # fmt: skip
    cli = subprocess.run(
        [sys.executable, "-m", "server", "archive", "restore", "--data-dir", str(tmp_path / "x"),
         "--config", str(config), "--signing-key", str(other)],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, **ENV},
    )  # fmt: skip
    assert cli.returncode == 1 and "not the archived recorder's key" in cli.stderr, cli.stderr


def test_timeline_colours_footage_only_in_the_archive(qtbot, site: Site) -> None:
    """The workstation's timeline model learns from ``GET /recordings`` which ranges are only in
    the archive, and the widget paints them in the archive's colour (local footage stays in the
    recorded colour, nothing in the gap colour); the screenshot is tests/artifacts/
    timeline-archive.png."""
    from PySide6.QtGui import QColor

    from app.timeline import TimelineModel
    from ui.playback_bar import TimelineAdapter
    from ui.theme import DARK
    from ui.timeline import ListTimelineModel, TimelineWidget

    api = _login(site, site.base_url)
    try:
        data = TimelineModel(site.runner, api, "cam")
        a, b = site.start_us - 30 * S, site.end_us + 30 * S
        view = data.set_window(a, b, 800)
        assert view.ranges and view.archived == view.ranges, (view.ranges, view.archived)
        widget = TimelineWidget(model=TimelineAdapter(data, "cam"))
        qtbot.addWidget(widget)
        widget.resize(800, 64)
        widget.set_view(a, b - a)
        widget.show()
        qtbot.waitExposed(widget)
        lane = widget.lanes()["recorded"]
        y = int(lane.center().y())

        def colour(t_us: int) -> str:
            image = widget.grab().toImage()
            return image.pixelColor(int(widget.us_to_x(t_us)), y).name()

        mid = (site.start_us + site.end_us) // 2
        assert colour(mid) == QColor(DARK.archived).name()
        assert colour(a + 10 * S) == QColor(DARK.gap).name()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert widget.grab().save(str(ARTIFACTS / "timeline-archive.png"))
        # beside footage that is still local (or in both places): two colours
        widget.set_model(ListTimelineModel(recorded=[(site.start_us, site.end_us)],
                                           archived=[(site.start_us, mid)]))  # fmt: skip
        assert colour(site.start_us + 5 * S) == QColor(DARK.archived).name()
        assert colour(site.end_us - 5 * S) == QColor(DARK.recorded).name()
        assert QColor(DARK.archived).name() != QColor(DARK.recorded).name()
    finally:
        site.runner.call(api.close(), 5)
