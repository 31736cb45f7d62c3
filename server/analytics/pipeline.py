"""Per-camera analytics: packets → decode thread → motion → shared detector → tracker → zones.

Recording never waits for analytics. ``CameraAnalytics.on_packet`` runs on the stream's ingest
thread and only copies the packet into a bounded queue; when the queue is full it drops packets
up to the next key frame (a decoder cannot use P-frames whose references are gone) and counts
them. The decode thread samples frames at the analysis rate, runs motion on the luma plane and,
when there is motion or a refresh is due, converts that one frame to RGB for the detector.

All cameras share one ``DetectionService``: a single thread that takes whatever jobs are ready
(up to ``batch``), runs the detector once on the frames that need it, then finishes every job in
arrival order (tracker, zones, events, stores, publishing). Jobs of one camera are therefore
finished in order, and the tracker and zone state need no locks. When the service falls behind,
``submit`` refuses new jobs and the camera counts a dropped frame.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

from server.analytics.detector import Detection, Detector, DetectorError, DetectorInfo
from server.analytics.events import AnalyticsEvent, MotionEvents, ObjectEvents
from server.analytics.governor import SPARSE_US
from server.analytics.motion import MotionDetector, MotionResult
from server.analytics.tracker import ByteTracker, Track
from server.analytics.zones import Line, Zone, ZoneEngine
from server.recording.packets import IngestPacket, StreamInfo

log = logging.getLogger(__name__)

US = 1_000_000
LOW_SCORE = 0.1  # the detector reports down to this; the tracker's second stage uses them
MAX_JUMP_US = 10 * US  # a timestamp jump beyond this starts a new run (as the recorder does)
NICE = 10  # analytics threads yield the cores to recording, live and the API


def lower_priority() -> None:
    """Make the calling thread (and the threads it starts, e.g. onnxruntime's) nicer (Linux:
    the nice value is per thread), so the kernel serves recording, live and the API first."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)


class Counter:
    """An integer several threads change (``+=`` on an attribute is not atomic)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self, delta: int) -> None:
        with self._lock:
            self.value += delta


@dataclass
class CameraCounters:
    """What /metrics and the camera's status show; written by one thread each, read anywhere."""

    packets: int = 0
    dropped_packets: int = 0  # queue full on the ingest thread (then up to the next key frame)
    decoded: int = 0
    analysed: int = 0
    dropped_frames: int = 0  # the detection service was behind
    detected: int = 0  # frames that went through the detector
    decode_errors: int = 0
    shed_packets: int = 0  # left undecoded on purpose: key frames only, or load shedding
    detections: dict[str, int] = field(default_factory=dict)  # by label
    last_ts_us: int = 0


@dataclass(slots=True)
class Job:
    camera: CameraAnalytics
    ts_us: int
    motion: MotionResult | None
    rgb: np.ndarray | None  # the frame scaled to the detector's input; set when it should look
    picture: av.VideoFrame | None = None  # the decoded frame, for a snapshot at full size
    end: bool = False  # the stream stopped: end every object and motion event of the camera


class Outputs:
    """Where finished frames go (stores, catalog, NATS); ``server.analytics.service`` wires it."""

    def frame(
        self, camera_id: str, ts_us: int, tracks: Sequence[Track], motion: MotionResult
    ) -> None: ...

    def events(
        self, camera_id: str, events: Sequence[AnalyticsEvent], picture: av.VideoFrame | None
    ) -> None: ...


class DetectionService:
    """One detector session for every camera, batching the frames that are ready together."""

    def __init__(
        self,
        make_detector: Callable[[], Detector],
        *,
        batch: int = 4,
        queue_size: int = 16,
        nice: bool = False,
    ) -> None:
        self._make_detector = make_detector
        self.nice = nice  # analytics threads at a lower priority (docs/design/analytics.md)
        self.batch = max(1, batch)
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=max(1, queue_size))
        self._thread: threading.Thread | None = None
        self.detector: Detector | None = None
        self.error: str | None = None
        self.info: DetectorInfo | None = None
        self.ready = threading.Event()  # set once the model is loaded or has failed
        self.inference_ms: list[float] = []  # recent per-batch times (bounded)
        self._pending = Counter()  # submitted and not yet finished (tests, benchmarks wait on it)
        self.frames = 0
        self.batches = 0
        self.busy_s = 0.0  # time spent finishing jobs (detector included): its CPU cost

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="analytics-detect", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 25.0) -> None:
        """Waits out the inference in flight: on a starved machine (analytics runs niced) one
        can take seconds, and a thread left inside onnxruntime at exit aborts the process.
        Within the service's stop time-out (TimeoutStopSec=30)."""
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.warning("detection thread does not take jobs; leaving it behind")
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("detection thread did not stop within %.0f s", timeout)
        self._thread = None

    def submit(self, job: Job, wait_s: float = 0.0) -> bool:
        """Queue a job; False (and nothing queued) when the queue stays full for ``wait_s``."""
        self._pending.add(1)
        try:
            if wait_s > 0:
                self._queue.put(job, timeout=wait_s)
            else:
                self._queue.put_nowait(job)
            return True
        except queue.Full:
            self._pending.add(-1)
            return False

    @property
    def pending(self) -> int:
        return self._pending.value

    @property
    def can_detect(self) -> bool:
        return self.detector is not None

    @property
    def input_size(self) -> tuple[int, int] | None:
        """(width, height) the model takes, once loaded."""
        return self.info.input_size if self.info is not None else None

    def _load(self) -> None:
        try:
            self.detector = self._make_detector()
            self.info = self.detector.info
            log.info(
                "detector %s on %s (%s, input %dx%d, %d labels)",
                self.info.model,
                self.info.provider,
                self.info.layout,
                *self.info.input_size,
                len(self.info.labels),
            )
        except DetectorError as exc:
            self.error = str(exc)
            log.error("object detection disabled: %s", exc)
        except Exception as exc:  # a broken model must not take analytics (or more) down
            self.error = f"cannot load the detection model: {exc}"
            log.exception("object detection disabled")
        finally:
            self.ready.set()

    def _run(self) -> None:
        if self.nice:
            lower_priority()  # before the model loads: onnxruntime's threads inherit it
        self._load()
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs = [job]
            while len(jobs) < self.batch * 4:  # motion-only jobs are cheap: take more of them
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._finish(jobs)
                    return
                jobs.append(more)
            t0 = time.perf_counter()
            self._finish(jobs)
            self.busy_s += time.perf_counter() - t0

    def _finish(self, jobs: list[Job]) -> None:
        want = [j for j in jobs if j.rgb is not None] if self.detector is not None else []
        results: dict[int, list[Detection]] = {}
        for first in range(0, len(want), self.batch):
            chunk = want[first : first + self.batch]
            t0 = time.perf_counter()
            try:
                found = self.detector.detect([j.rgb for j in chunk])  # type: ignore[union-attr]
            except Exception:
                log.exception("detector failed on a batch of %d frames", len(chunk))
                found = [[] for _ in chunk]
            self._timing((time.perf_counter() - t0) * 1000.0)
            self.frames += len(chunk)
            self.batches += 1
            for j, dets in zip(chunk, found, strict=True):
                results[id(j)] = dets
        for j in jobs:
            try:
                j.camera.finish(j, results.get(id(j)))
            except Exception:
                log.exception("%s: analytics failed on a frame", j.camera.camera_id)
            finally:
                self._pending.add(-1)

    def _timing(self, ms: float) -> None:
        self.inference_ms.append(ms)
        if len(self.inference_ms) > 512:
            del self.inference_ms[:256]


@dataclass(frozen=True)
class CameraSettings:
    camera_id: str
    stream: str = "sub"
    fps: float = 5.0
    labels: frozenset[str] = frozenset()  # empty: every label
    min_score: float = 0.4
    refresh_us: int = 2 * US
    motion_gate: bool = True
    key_frames_only: bool = False  # decode and analyse key frames only (a main-only camera)
    zones: tuple[Zone, ...] = ()
    lines: tuple[Line, ...] = ()


class CameraAnalytics:
    """A ``PacketSink`` (subscribed to one stream of a camera) and that camera's analysis state."""

    def __init__(
        self,
        settings: CameraSettings,
        service: DetectionService,
        outputs: Outputs,
        *,
        queue_packets: int = 256,
    ) -> None:
        self.settings = settings
        self.camera_id = settings.camera_id
        self.service = service
        self.outputs = outputs
        self.counters = CameraCounters()
        self._packets: queue.Queue[tuple | None] = queue.Queue(maxsize=queue_packets)
        self._pending = Counter()  # queued packets not yet decoded
        self._skip_to_key = True
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.motion = MotionDetector()
        self.tracker = make_tracker(settings.min_score)
        self.objects = ObjectEvents(self.camera_id)
        self.zones = ZoneEngine(self.camera_id, settings.zones, settings.lines)
        self.motion_events = MotionEvents(self.camera_id)
        self.tracks: list[Track] = []
        self.connected = False
        self.error: str | None = None  # decoding problem of this camera
        self._zone_lock = threading.Lock()
        self._new_zones: tuple[tuple[Zone, ...], tuple[Line, ...]] | None = None
        self.shed = 0  # load shedding level, set by the governor (server/analytics/governor.py)
        self.sparse_us = SPARSE_US  # at level 3, the least time between analysed key frames
        self.cpu_s = 0.0  # CPU time of the decode thread (the governor's measure)
        self._keys_only = settings.key_frames_only
        self._next_key_us = 0

    # --- PacketSink, on the ingest thread --------------------------------------------------

    def on_connect(self, info: StreamInfo) -> None:
        self._put(("connect", info))
        self._skip_to_key = True

    def on_packet(self, packet: IngestPacket) -> None:
        self.counters.packets += 1
        shed = self.shed
        keys_only = self.settings.key_frames_only or shed >= 2
        if keys_only != self._keys_only:
            self._keys_only = keys_only
            self._skip_to_key = True  # back to every frame: P-frames need their key frame
        if keys_only and (
            not packet.key or (shed >= 3 and packet.recv_us < self._next_key_us)
        ):  # never copied nor decoded: the cheapest way to analyse less
            self.counters.shed_packets += 1
            return
        if keys_only and shed >= 3:
            self._next_key_us = packet.recv_us + self.sparse_us
        if self._skip_to_key and not packet.key:
            self.counters.dropped_packets += 1
            return
        item = ("packet", bytes(packet.packet), packet.dts, packet.pts, packet.key, packet.recv_us)
        if self._put(item):
            self._skip_to_key = False
        else:
            self._skip_to_key = True
            self.counters.dropped_packets += 1

    def on_disconnect(self, reason: str) -> None:
        self._put(("disconnect", reason))

    def _put(self, item: tuple) -> bool:
        self._pending.add(1)
        try:
            self._packets.put_nowait(item)
            return True
        except queue.Full:
            self._pending.add(-1)
            return False

    def backlog(self) -> int:
        """Packets waiting for the decode thread."""
        return self._packets.qsize()

    def idle(self) -> bool:
        """Nothing queued or in flight, here or at the detector (for tests and benchmarks)."""
        return self._pending.value == 0 and self.service.pending == 0

    # --- control ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._decode_loop, name=f"analytics-{self.camera_id}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop decoding; the camera's open events end (on the detection thread, in order)."""
        self._stopping = True
        with contextlib.suppress(queue.Full):
            self._packets.put(None, timeout=timeout)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s: analytics decode thread did not stop", self.camera_id)

    def set_zones(self, zones: Sequence[Zone], lines: Sequence[Line]) -> None:
        """Applied between two frames on the service thread, so no frame sees half of it."""
        with self._zone_lock:
            self._new_zones = (tuple(zones), tuple(lines))

    # --- decode thread ----------------------------------------------------------------------

    def _decode_loop(self) -> None:
        if self.service.nice:
            lower_priority()
        self._codec: av.CodecContext | None = None
        self._last_us = 0  # wall time of the newest decoded frame
        self._clock = _RunClock()
        self._interval_us = int(US / self.settings.fps)
        self._next_us = 0
        self._last_detect_us = 0
        while True:
            try:
                item = self._packets.get(timeout=0.5)
            except queue.Empty:
                if self._stopping:  # the stop marker did not fit in a full queue
                    item = None
                else:
                    continue
            if item is None or self._stopping:
                self._end_events()
                return
            t0 = time.thread_time()
            try:
                self._handle(item)
            except Exception:
                log.exception("%s: analytics failed on a packet", self.camera_id)
            finally:
                self.cpu_s += time.thread_time() - t0
                self._pending.add(-1)

    def _handle(self, item: tuple) -> None:
        kind = item[0]
        if kind == "connect":
            info: StreamInfo = item[1]
            self._codec = None
            self._codec = _open_decoder(info)
            self._clock.reset(info.time_base)
            self.motion.reset()
            self.connected = True
            return
        if kind == "disconnect":
            self.connected = False
            self._codec = None
            self._end_events()  # objects and motion end with the stream, not at its return
            return
        if self._codec is None:
            return
        _, data, dts, pts, _key, recv_us = item
        ts_us = self._clock.wall_us(dts, pts, recv_us)
        pkt = av.Packet(data)
        pkt.pts, pkt.dts = pts, dts
        try:
            frames = self._codec.decode(pkt)
        except av.error.FFmpegError as exc:
            self.counters.decode_errors += 1
            if self.counters.decode_errors in (1, 100, 10_000):
                log.warning("%s: analytics decode error: %s", self.camera_id, exc)
            return
        for frame in frames:
            self.counters.decoded += 1
            self._analyse(frame, self._clock.frame_us(frame.pts, ts_us))

    def _end_events(self) -> None:
        """Queued behind the camera's frames, so it ends what they started; waits for room."""
        if not self.service.submit(Job(self, self._last_us, None, None, end=True), wait_s=5.0):
            log.warning(
                "%s: detection thread busy; open events end at the next start", self.camera_id
            )

    def _analyse(self, frame: av.VideoFrame, f_us: int) -> None:
        """Sample at the analysis rate; motion always, the detector when it is worth it."""
        self._last_us = f_us
        if f_us < self._next_us:
            return
        interval = self._interval_us * (2 if self.shed == 1 else 1)
        self._next_us = max(self._next_us + interval, f_us + interval // 2)
        motion = self.motion.update(_luma(frame))
        can = self.service.can_detect
        detect = can and (
            not self.settings.motion_gate
            or motion.active
            or f_us - self._last_detect_us >= self.settings.refresh_us
        )
        rgb = self._detector_rgb(frame) if detect else None
        if self.service.submit(Job(self, f_us, motion, rgb, frame if detect else None)):
            self.counters.analysed += 1
            if detect:
                self._last_detect_us = f_us
        else:
            self.counters.dropped_frames += 1

    def _detector_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """RGB at the size the detector letterboxes to, in one swscale pass (colour conversion
        and scaling together), rather than full-size RGB that the detector then shrinks."""
        size = self.service.input_size
        if size is None:
            return frame.to_ndarray(format="rgb24")
        gain = min(size[0] / frame.width, size[1] / frame.height)
        if gain >= 1.0:
            return frame.to_ndarray(format="rgb24")
        w, h = round(frame.width * gain), round(frame.height * gain)
        return frame.reformat(width=w, height=h, format="rgb24").to_ndarray()

    # --- service thread ---------------------------------------------------------------------

    def finish(self, job: Job, detections: list[Detection] | None) -> None:
        """Tracker, zones, events and outputs for one analysed frame, in arrival order."""
        with self._zone_lock:
            new, self._new_zones = self._new_zones, None
        if new is not None:
            self.zones = ZoneEngine(self.camera_id, *new)
        ts = job.ts_us
        if job.end:
            self._finish_all(ts)
            return
        assert job.motion is not None
        lost: list[Track] = []
        if detections is not None:
            s = self.settings
            # below min_score a detection only continues a track (ByteTrack's second stage)
            kept = [d for d in detections if not s.labels or d.label in s.labels]
            for d in kept:
                if d.score >= s.min_score:
                    self.counters.detections[d.label] = self.counters.detections.get(d.label, 0) + 1
            self.counters.detected += 1
            self.tracks = self.tracker.update(kept, ts)
            lost = list(self.tracker.lost)
        events = self.objects.update(self.tracks, lost, ts)
        events += self.zones.update(self.tracks, lost, ts)
        events += self.motion_events.update(job.motion.active, ts)
        self.counters.last_ts_us = ts
        self.outputs.frame(self.camera_id, ts, self.tracks, job.motion)
        if events:
            self.outputs.events(self.camera_id, events, job.picture)

    def _finish_all(self, ts: int) -> None:
        """The stream stopped: every tracked object leaves (at its last sighting), motion ends."""
        lost = self.tracker.finish()
        self.tracks = []
        events = self.objects.update([], lost, ts) + self.zones.update([], lost, ts)
        if self.motion_events.active:
            events.append(self.motion_events.finish())
        if events:
            self.outputs.events(self.camera_id, events, None)


def make_tracker(min_score: float) -> ByteTracker:
    """Tuned on vtest.avi at 5 fps with YOLOv3-tiny: a low first-stage IoU keeps walkers whose
    boxes jump between analysed frames, a longer memory bridges missed detections. A
    ``min_score`` under ``LOW_SCORE`` (the API allows 0.01) lowers the second stage with it."""
    return ByteTracker(
        high_threshold=min_score,
        low_threshold=min(LOW_SCORE, min_score),
        match_iou=0.05,
        low_match_iou=0.3,
        max_lost_us=3 * US,
    )


def _open_decoder(info: StreamInfo) -> av.CodecContext:
    ctx = av.CodecContext.create(info.codec, "r")
    extra = info.extradata or b""
    if extra.startswith((b"\0\0\1", b"\0\0\0\1")):
        ctx.extradata = extra  # Annex B parameter sets; packets also carry them at key frames
    ctx.thread_count = 1  # many cameras share few cores; one thread each is fairest
    return ctx


def _luma(frame: av.VideoFrame) -> np.ndarray:
    plane = frame.planes[0]
    buf = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
    return buf[: frame.height, : frame.width]


class _RunClock:
    """Wall time of packets the way the recorder places them: per run (a connection or a
    stretch without a timestamp jump), ``offset = min(recv_us - media_us)`` so far."""

    def __init__(self) -> None:
        self.reset(Fraction(1, 90_000))

    def reset(self, time_base: Fraction) -> None:
        self._tb = time_base
        self._base: int | None = None
        self._prev: int | None = None
        self._offset = 0
        self._last_pts: int | None = None
        self._last_pts_us = 0

    def _us(self, ticks: int) -> int:
        return ticks * self._tb.numerator * US // self._tb.denominator

    def wall_us(self, dts: int, pts: int, recv_us: int) -> int:
        if self._prev is not None and abs(self._us(dts - self._prev)) > MAX_JUMP_US:
            self._base = None
        self._prev = dts
        if self._base is None:
            self._base = dts
            self._offset = recv_us
        media = self._us(dts - self._base)
        self._offset = min(self._offset, recv_us - media)
        return self._offset + self._us(pts - self._base)

    def frame_us(self, pts: int | None, fallback_us: int) -> int:
        """Decoded frames come out in presentation order: their own pts gives their time."""
        if pts is None or self._base is None:
            return fallback_us
        return self._offset + self._us(pts - self._base)
