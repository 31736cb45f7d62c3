"""The analytics pipeline end to end in process: real H.264 packets through the fan-out, the
real default detector (YOLOv3-tiny from Darknet), the tracker, zones, lines, events and stores.

Packets are fed faster than real time with wall times computed from their timestamps, so the
frame times of events can be checked exactly; the pipeline's own queues are waited on (idle),
never slept on.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from server.analytics.detector import Detector
from server.analytics.models import default_model
from server.analytics.service import Analytics
from server.analytics.zones import points_in_polygon
from server.catalog import Catalog
from server.catalog.analytics import AnalyticsCatalog, AnalyticsSettings, ZoneRow
from server.clock import SystemClock
from server.config import AnalyticsConfig
from server.live.fanout import Fanout
from server.protocol.timeutil import rescale
from server.sim.clips import transcode_to_h264
from server.sim.footage import VTEST
from tests.conftest import wait_until
from tests.helpers import clip_packets, ingest_packet
from tests.test_detector import _const_model

BASE_US = 1_700_000_000_000_000
SID = "a1b2c3d4e5f6"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return default_model(tmp_path_factory.mktemp("models"))


class Rig:
    """A data dir with a catalog, one camera, a fan-out and the analytics of the recorder."""

    def __init__(self, root: Path, model: Path, camera: str = "cam", **config) -> None:
        self.root = root
        self.camera = camera
        root.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(root / "catalog.db")
        self.catalog.upsert_camera(camera, camera, {"main": ("file:///x.mp4", True)}, now_us=1)
        self.db = AnalyticsCatalog(self.catalog)
        self.fanout = Fanout()
        self.published: list[tuple[str, bytes]] = []
        # nothing dropped unless a test asks for small queues
        # every frame at the analysis rate, whatever the machine's load: pinned, not defaults
        pinned = {"main_key_frames_only": False, "shed_load": False}
        cfg = AnalyticsConfig(**{"model": str(model), "queue": 100_000, **pinned, **config})
        self.analytics = Analytics(
            cfg,
            self.catalog,
            root,
            SID,
            SystemClock(),
            self.fanout.subscribe,
            publish=lambda s, p: self.published.append((s, p)),
        )

    def settings(self, **kw) -> None:
        s = AnalyticsSettings(self.camera, stream="main", **kw)
        self.db.set_settings(s, 1)

    def zone(self, zone: ZoneRow) -> None:
        self.db.put_zone(zone, 1)

    def run(self, clip: Path) -> dict:
        """Feed the clip's packets and wait until every analysed frame is finished."""
        self.analytics.start()
        assert self.analytics.service.ready.wait(60)
        assert self.analytics.service.error is None
        info, packets = clip_packets(clip)
        cam = self.analytics.cameras()[self.camera]
        sink = self.fanout.sink(self.camera, "main")
        sink.on_connect(info)
        tb: Fraction = info.time_base
        frame_us = {}
        for data, pts, dts, key in packets:
            wait_until(lambda: cam.backlog() < 200, 60, "analytics to take packets")
            recv = BASE_US + rescale(dts * tb.numerator, 1_000_000, tb.denominator)
            frame_us[pts] = BASE_US + rescale(pts * tb.numerator, 1_000_000, tb.denominator)
            sink.on_packet(ingest_packet(data, pts, dts, key, recv, tb))
        wait_until(cam.idle, 120, "analytics to finish the clip")
        self.analytics.tracks.flush()
        self.analytics.motion.flush()
        return {"counters": cam.counters, "frame_us": sorted(frame_us.values())}

    def tracks(self) -> list[dict]:
        return self.analytics.tracks.read(self.camera, BASE_US - 1, BASE_US + 10**9).to_pylist()

    def close(self) -> None:
        self.analytics.stop()
        self.catalog.close()


@pytest.fixture
def rig(tmp_path: Path, model: Path):
    r = Rig(tmp_path / "data", model)
    yield r
    r.close()


def _bottom_centre(row: dict) -> tuple[float, float]:
    return ((row["x1"] + row["x2"]) / 2, row["y2"])


def test_vtest_people_tracks_and_zone_events(rig: Rig, tmp_path: Path) -> None:
    clip = transcode_to_h264(VTEST, tmp_path / "vtest.mp4", max_seconds=30)
    corridor = ((0.55, 0.35), (0.95, 0.35), (0.95, 0.7), (0.55, 0.7))  # the right-hand walkway
    rig.settings(fps=5.0, labels=("person",))
    rig.zone(ZoneRow(rig.camera, "walkway", "zone", "Walkway", corridor))
    out = rig.run(clip)
    c = out["counters"]
    assert c.dropped_frames == 0 and c.dropped_packets == 0 and c.decode_errors == 0
    assert c.analysed == pytest.approx(150, abs=2)  # 30 s of 10 fps footage analysed at 5 fps

    rows = rig.tracks()
    by_track: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        by_track[r["track_id"]].append(r)
    # the detector finds people in (nearly) every analysed frame: vtest always has walkers
    with_people = {r["ts_us"] for r in rows if r["label"] == "person"}
    assert len(with_people) >= 0.9 * c.analysed
    # tracks hold on to the walkers: most boxes belong to tracks of 2 s and more
    long = [t for t in by_track.values() if t[-1]["ts_us"] - t[0]["ts_us"] >= 2_000_000]
    assert sum(map(len, long)) >= 0.8 * len(rows), f"{len(by_track)} tracks, {len(long)} long"
    # an id switch shows as a track ending where another starts just after: few of those
    switches = 0
    for t in by_track.values():
        x, y = _bottom_centre(t[0])
        for u in by_track.values():
            gap = t[0]["ts_us"] - u[-1]["ts_us"]
            ux, uy = _bottom_centre(u[-1])
            if u is not t and 0 < gap <= 1_000_000 and abs(ux - x) < 0.05 and abs(uy - y) < 0.05:
                switches += 1
                break
    assert switches <= 6, f"{switches} likely id switches in {len(by_track)} tracks"

    # zone events: each enter is a frame where the track's feet are inside the walkway and
    # were not on its previous frame; each leave ends on a frame inside followed by one outside
    # (or by the end of the track); the stay between them is inside throughout
    events = rig.db.events(0, 2**62, cameras=[rig.camera], kinds=["enter", "leave"])
    enters = [e for e in events if e.kind == "enter"]
    leaves = [e for e in events if e.kind == "leave"]
    assert len(enters) >= 3 and leaves
    poly = np.array(corridor)
    inside: dict[int, dict[int, bool]] = {}
    for tid, t in by_track.items():
        flags = points_in_polygon(np.array([_bottom_centre(r) for r in t]), poly)
        inside[tid] = {r["ts_us"]: bool(f) for r, f in zip(t, flags, strict=True)}
    for e in enters:
        times = sorted(inside[e.track_id])
        i = times.index(e.start_us)
        assert inside[e.track_id][e.start_us], f"enter of track {e.track_id} outside"
        assert i == 0 or not inside[e.track_id][times[i - 1]], f"enter of {e.track_id} late"
    for e in leaves:
        times = sorted(inside[e.track_id])
        i, j = times.index(e.start_us), times.index(e.end_us)
        assert all(inside[e.track_id][t] for t in times[i : j + 1]), f"stay of {e.track_id}"
        assert j + 1 == len(times) or not inside[e.track_id][times[j + 1]]
    # object events carry a JPEG of their best frame; detections went out for every frame
    objects = rig.db.events(0, 2**62, cameras=[rig.camera], kinds=["object"])
    assert objects and all(o.snapshot for o in objects)
    snap = cv2.imread(str(rig.root / objects[0].snapshot))
    assert snap is not None and snap.shape[:2] == (576, 768)
    ai = [s for s, _ in rig.published if s == f"vigia.{SID}.ai.{rig.camera}"]
    assert len(ai) == c.analysed


def _scene(model: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """vtest's empty scene (the per-pixel median of frames across the clip) and its largest
    clearly detected person (RGB crop with a margin, and its top), to walk through the scene."""
    detector = Detector(model)
    frames, best = [], None
    with av.open(str(VTEST)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i % 20:
                continue
            rgb = frame.to_ndarray(format="rgb24")
            frames.append(rgb)
            if i > 400:
                continue
            for d in detector.detect([rgb])[0]:
                area = (d.x2 - d.x1) * (d.y2 - d.y1)
                if d.label == "person" and d.score > 0.6 and (best is None or area > best[0]):
                    best = (area, d, rgb)
    assert best is not None, "no clear person in vtest's first 40 s"
    _, d, rgb = best
    h, w = rgb.shape[:2]
    # with a margin: the detector knows people by their outline against a background
    mx, my = 0.4 * (d.x2 - d.x1), 0.2 * (d.y2 - d.y1)
    y1, y2 = max(0.0, d.y1 - my), min(1.0, d.y2 + my)
    x1, x2 = max(0.0, d.x1 - mx), min(1.0, d.x2 + mx)
    crop = rgb[int(y1 * h) : int(y2 * h), int(x1 * w) : int(x2 * w)]
    return np.median(np.stack(frames), axis=0).astype(np.uint8), crop, y1


def _walk_clip(path: Path, model: Path, fps: int = 10) -> tuple[Path, dict]:
    """10 s in vtest's scene: a person stands at x=0.15 for 2 s, walks to x=0.85 over 4 s,
    and stands there; nothing else moves."""
    background, person, top_n = _scene(model)
    h, w = background.shape[:2]
    # 1.5x: as if the person walked nearer the camera; the small model is surer of them
    person = cv2.resize(person, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC)
    ph, pw = person.shape[:2]
    top = max(0, int(top_n * h) - ph // 4)
    plan = {"walk": (2.0, 6.0), "x": (0.15, 0.85), "top": top / h, "height": ph / h}
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"g": str(fps), "bf": "0", "crf": "20", "preset": "veryfast"}
        for i in range(10 * fps):
            t = i / fps
            k = min(1.0, max(0.0, (t - 2.0) / 4.0))
            cx = 0.15 + 0.7 * k
            img = background.copy()
            x0 = int(cx * w - pw / 2)
            img[top : top + ph, x0 : x0 + pw] = person
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path, plan


def test_walker_motion_events_motion_search_and_line_crossing(
    rig: Rig, model: Path, tmp_path: Path
) -> None:
    clip, plan = _walk_clip(tmp_path / "walk.mp4", model)
    rig.settings(fps=5.0, labels=("person",))
    # a vertical line at x = 0.5 drawn bottom to top: its left side is the picture's left
    rig.zone(ZoneRow(rig.camera, "door", "line", "Door", ((0.5, 0.95), (0.5, 0.05))))
    rig.zone(ZoneRow(rig.camera, "back", "line", "Back", ((0.5, 0.05), (0.5, 0.95))))
    out = rig.run(clip)
    assert out["counters"].dropped_frames == 0
    step = 200_000  # analysis interval at 5 fps
    walk_start = BASE_US + int(plan["walk"][0] * 1e6)
    walk_end = BASE_US + int(plan["walk"][1] * 1e6)

    # motion: one event, from the first analysed frame after the walk began to the first one
    # after it ended (that frame still differs from the one analysed before it)
    motion = rig.db.events(0, 2**62, cameras=[rig.camera], kinds=["motion"])
    assert len(motion) == 1
    assert walk_start < motion[0].start_us <= walk_start + step
    assert walk_end < motion[0].end_us <= walk_end + step

    # area search: the path has motion exactly while walking; above the person there is none;
    # the place where the walk ends moves only in the last part of the walk
    y1, y2 = plan["top"], plan["top"] + plan["height"]
    search = rig.analytics.motion.search
    window = (BASE_US, BASE_US + 10_000_000)
    (path_range,) = search(rig.camera, *window, (0.1, y1, 0.9, y2))
    assert path_range[0] == motion[0].start_us
    assert path_range[1] == motion[0].end_us + 1  # half-open
    assert search(rig.camera, *window, (0.0, 0.0, 1.0, 0.2)) == []
    (end_range,) = search(rig.camera, *window, (0.9, y1, 1.0, y2))
    assert end_range[0] >= walk_start + 2_500_000 and end_range[1] <= walk_end + step

    # lines: exactly one crossing each, in opposite directions because they are drawn opposite
    lines = rig.db.events(0, 2**62, cameras=[rig.camera], kinds=["line"])
    by_line = {e.zone_id: e for e in lines}
    assert len(lines) == 2 and set(by_line) == {"door", "back"}
    assert by_line["door"].direction == "left_to_right"
    assert by_line["back"].direction == "right_to_left"
    # the crossing is reported on the first analysed frame with the feet past x = 0.5
    cross_us = walk_start + int((0.5 - 0.15) / 0.7 * 4_000_000)
    assert cross_us <= by_line["door"].start_us <= cross_us + 2 * step

    # the person still stands there: their object event is open until the camera's analytics
    # stops, which ends it at the last sighting (never left "ongoing" in the catalog)
    (person,) = rig.db.events(0, 2**62, cameras=[rig.camera], kinds=["object"])
    assert person.end_us is None
    rig.settings(fps=5.0, labels=("person",), enabled=False)
    rig.analytics.sync()
    wait_until(lambda: rig.analytics.service.pending == 0, 30, "the camera's events to end")
    (person,) = rig.db.events(0, 2**62, cameras=[rig.camera], kinds=["object"])
    assert person.end_us is not None and walk_end < person.end_us <= BASE_US + 10_000_000


def test_model_errors_reach_the_status(tmp_path: Path) -> None:
    root = tmp_path / "data"
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(np.random.default_rng(1).bytes(4096))
    odd = _const_model(tmp_path / "odd.onnx", {"out": np.zeros((1, 7), np.float32)}, names="['a']")
    cases = (
        (tmp_path / "missing.onnx", "missing.onnx"),
        (bad, "broken.onnx"),
        (odd, "output layout"),
    )
    for model, words in cases:
        shutil.rmtree(root, ignore_errors=True)
        rig = Rig(root, model)
        try:
            rig.analytics.start()
            assert rig.analytics.service.ready.wait(60)
            status = rig.analytics.status(rig.camera)
            assert status["state"] == "error" and words in status["reason"]
        finally:
            rig.close()


def test_analytics_behind_drops_and_counts_never_blocks(tmp_path: Path, model: Path) -> None:
    """Packets offered far faster than the detector runs: the ingest side returns at once,
    analytics drops whole GOPs or frames and counts them, and what it decodes stays clean."""
    clip = transcode_to_h264(VTEST, tmp_path / "vtest.mp4", max_seconds=30)
    rig = Rig(tmp_path / "data", model, queue=2, batch=1)
    try:
        rig.settings(fps=10.0)
        rig.analytics.start()
        assert rig.analytics.service.ready.wait(60)
        info, packets = clip_packets(clip, loops=2)
        cam = rig.analytics.cameras()[rig.camera]
        sink = rig.fanout.sink(rig.camera, "main")
        sink.on_connect(info)
        tb = info.time_base
        for data, pts, dts, key in packets:  # no waiting: as fast as ingest could go
            recv = BASE_US + rescale(dts * tb.numerator, 1_000_000, tb.denominator)
            sink.on_packet(ingest_packet(data, pts, dts, key, recv, tb))
        wait_until(cam.idle, 120, "analytics to drain")
        c = cam.counters
        assert c.packets == len(packets)
        assert c.dropped_packets + c.dropped_frames > 0
        assert c.analysed > 0 and c.decode_errors == 0
        assert rig.fanout.stats(rig.camera, "main").consumer_errors == 0
    finally:
        rig.close()


def test_metadata_goes_with_its_video(tmp_path: Path, model: Path) -> None:
    """Retention's cut (the start of the camera's oldest video) removes older events, their
    snapshots, tracks and motion grids, and keeps what is newer."""
    from server.analytics.tracker import Track
    from server.catalog.analytics import EventRow

    rig = Rig(tmp_path / "data", model)
    hour = 3_600_000_000
    old, new = BASE_US, BASE_US + 3 * hour
    try:
        a = rig.analytics
        snap = rig.root / "events" / "cam" / "old.jpg"
        snap.parent.mkdir(parents=True)
        snap.write_bytes(b"jpeg")
        rig.db.insert_event(
            EventRow(
                "cam",
                "object",
                old,
                "person",
                0.9,
                old + 5,
                snapshot=str(snap.relative_to(rig.root)),
            )
        )
        rig.db.insert_event(EventRow("cam", "object", new, "person", 0.9, new + 5))
        for ts in (old, new):
            a.tracks.append("cam", ts, [Track(1, "person", 0.9, 0.1, 0.1, 0.2, 0.2, ts, 3, True)])
            a.motion.append("cam", ts, b"\xff" * 72)
        a.tracks.flush()
        a.motion.flush()
        assert rig.db.oldest_video_us("cam") is None  # no video yet: trim_all keeps everything
        a.trim_all()
        assert len(rig.db.events(0, 2**62)) == 2
        a.trim("cam", new - hour)
        assert [e.start_us for e in rig.db.events(0, 2**62)] == [new]
        assert not snap.exists()
        assert a.tracks.read("cam", 0, new + hour).column("ts_us").to_pylist() == [new]
        assert a.motion.search("cam", 0, new + hour, (0, 0, 1, 1)) == [(new, new + 1)]
    finally:
        rig.close()
