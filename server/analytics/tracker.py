"""ByteTrack-style multi-object tracker over normalised detections.

ByteTrack (Zhang et al., 2022) keeps low-score detections instead of dropping them: after the
confident detections are matched to all tracks, the leftover tracks get a second chance against
the low-score ones, so an object that is briefly occluded or blurred keeps its id. Motion is a
Kalman filter with constant velocity on (centre x, centre y, aspect ratio, height), as in SORT
and ByteTrack, but the time step comes from the frame times: analysis runs at an irregular rate
(motion gating, dropped frames), so velocities are per second and noise grows with the gap.

Differences from the reference implementation, on purpose:
- association is per label: a person never continues a car's track;
- ids are handed out at confirmation, so confirmed ids are consecutive and increasing;
- tracks end after `max_lost_us` of wall time rather than a number of frames.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy.optimize import linear_sum_assignment

log = logging.getLogger(__name__)

__all__ = ["BoxLike", "ByteTracker", "KalmanBoxFilter", "Track", "iou_matrix"]


class BoxLike(Protocol):
    """What the tracker reads from a detection (`detector.Detection` fits)."""

    @property
    def label(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def x1(self) -> float: ...
    @property
    def y1(self) -> float: ...
    @property
    def x2(self) -> float: ...
    @property
    def y2(self) -> float: ...


@dataclass(slots=True)
class Track:
    """A snapshot of one track after an update; later updates do not change it."""

    track_id: int
    label: str
    score: float  # score of the detection matched at ts_us
    x1: float  # normalised, Kalman-smoothed box
    y1: float
    x2: float
    y2: float
    ts_us: int  # last time a detection was matched
    hits: int  # detections matched so far
    confirmed: bool
    start_us: int = 0  # first time the object was seen (its first detection)

    @property
    def point(self) -> tuple[float, float]:
        """Reference point: bottom centre of the box, where a person's feet are."""
        return ((self.x1 + self.x2) * 0.5, self.y2)


# ByteTrack's noise weights, tuned per frame at 30 fps; variances grow linearly with the gap.
_STD_POS = 1.0 / 20
_STD_VEL = 1.0 / 160
_REF_DT_S = 1.0 / 30
_MIN_H = 1e-6


class KalmanBoxFilter:
    """Constant-velocity Kalman filter on (cx, cy, a, h), batched over tracks.

    State rows are [cx, cy, a, h, vcx, vcy, va, vh] with velocities per second; noise is
    proportional to the box height, so it works the same for near and far objects.
    """

    _H_IDX = 3

    @staticmethod
    def initiate(measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New states (N, 8) and covariances (N, 8, 8) from measurements (N, 4)."""
        n = measurement.shape[0]
        mean = np.zeros((n, 8))
        mean[:, :4] = measurement
        h = measurement[:, 3]
        vel = _STD_VEL / _REF_DT_S
        std = np.stack(
            [
                2 * _STD_POS * h,
                2 * _STD_POS * h,
                np.full(n, 1e-2),
                2 * _STD_POS * h,
                10 * vel * h,
                10 * vel * h,
                np.full(n, 1e-5 / _REF_DT_S),
                10 * vel * h,
            ],
            axis=1,
        )
        cov = np.zeros((n, 8, 8))
        idx = np.arange(8)
        cov[:, idx, idx] = std * std
        return mean, cov

    @staticmethod
    def predict(mean: np.ndarray, cov: np.ndarray, dt_s: float) -> None:
        """Advance states (N, 8) and covariances (N, 8, 8) in place by dt_s seconds."""
        if dt_s <= 0 or mean.shape[0] == 0:
            return
        f = np.eye(8)
        f[:4, 4:] = np.eye(4) * dt_s
        h = np.maximum(mean[:, 3], _MIN_H)
        scale = dt_s / _REF_DT_S
        vel = _STD_VEL / _REF_DT_S
        n = mean.shape[0]
        var = np.stack(
            [
                (_STD_POS * h) ** 2,
                (_STD_POS * h) ** 2,
                np.full(n, 1e-4),
                (_STD_POS * h) ** 2,
                (vel * h) ** 2,
                (vel * h) ** 2,
                np.full(n, (1e-5 / _REF_DT_S) ** 2),
                (vel * h) ** 2,
            ],
            axis=1,
        )
        mean[:] = mean @ f.T
        mean[:, 3] = np.maximum(mean[:, 3], _MIN_H)
        cov[:] = f @ cov @ f.T
        idx = np.arange(8)
        cov[:, idx, idx] += var * scale

    @staticmethod
    def update(mean: np.ndarray, cov: np.ndarray, measurement: np.ndarray) -> None:
        """Correct states (M, 8) and covariances (M, 8, 8) in place with measurements (M, 4)."""
        if mean.shape[0] == 0:
            return
        h = np.maximum(mean[:, 3], _MIN_H)
        r = np.stack([_STD_POS * h, _STD_POS * h, np.full(h.shape, 1e-1), _STD_POS * h], axis=1)
        s = cov[:, :4, :4].copy()
        idx = np.arange(4)
        s[:, idx, idx] += r * r
        pht = cov[:, :, :4]  # P Hᵀ, (M, 8, 4)
        # K = P Hᵀ S⁻¹; S is symmetric, so Kᵀ = S⁻¹ H P.
        gain = np.linalg.solve(s, pht.transpose(0, 2, 1)).transpose(0, 2, 1)
        innovation = measurement - mean[:, :4]
        mean += (gain @ innovation[:, :, None])[:, :, 0]
        mean[:, 3] = np.maximum(mean[:, 3], _MIN_H)
        cov -= gain @ s @ gain.transpose(0, 2, 1)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N, 4) with every box in b (M, 4); boxes are x1, y1, x2, y2."""
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _to_xyah(boxes: np.ndarray) -> np.ndarray:
    w = boxes[:, 2] - boxes[:, 0]
    h = np.maximum(boxes[:, 3] - boxes[:, 1], _MIN_H)
    return np.stack(
        [(boxes[:, 0] + boxes[:, 2]) * 0.5, (boxes[:, 1] + boxes[:, 3]) * 0.5, w / h, h], 1
    )


def _to_xyxy(mean: np.ndarray) -> np.ndarray:
    h = mean[:, 3]
    w = mean[:, 2] * h
    cx, cy = mean[:, 0], mean[:, 1]
    return np.stack([cx - w * 0.5, cy - h * 0.5, cx + w * 0.5, cy + h * 0.5], 1)


_NO_MATCH = 1e6


def _associate(
    track_boxes: np.ndarray,
    track_labels: np.ndarray,
    det_boxes: np.ndarray,
    det_labels: np.ndarray,
    min_iou: float,
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Optimal one-to-one matching on IoU, only between equal labels and at least min_iou."""
    n, m = track_boxes.shape[0], det_boxes.shape[0]
    if n == 0 or m == 0:
        return [], list(range(n)), list(range(m))
    iou = iou_matrix(track_boxes, det_boxes)
    allowed = (track_labels[:, None] == det_labels[None, :]) & (iou >= min_iou)
    cost = np.where(allowed, 1.0 - iou, _NO_MATCH)
    rows, cols = linear_sum_assignment(cost)
    keep = allowed[rows, cols]
    matches = list(zip(rows[keep].tolist(), cols[keep].tolist(), strict=True))
    matched_t = set(rows[keep].tolist())
    matched_d = set(cols[keep].tolist())
    return (
        matches,
        [i for i in range(n) if i not in matched_t],
        [j for j in range(m) if j not in matched_d],
    )


class _State:
    """Internal, mutable life of one track."""

    __slots__ = (
        "confirmed",
        "cov",
        "hits",
        "label",
        "label_id",
        "last_us",
        "mean",
        "score",
        "start_us",
        "track_id",
        "visible",
    )

    def __init__(
        self, mean: np.ndarray, cov: np.ndarray, label: str, label_id: int, score: float, ts_us: int
    ) -> None:
        self.mean = mean
        self.cov = cov
        self.label = label
        self.label_id = label_id
        self.score = score
        self.start_us = ts_us
        self.last_us = ts_us
        self.hits = 1
        self.confirmed = False
        self.track_id = 0
        self.visible = True  # matched in the last update

    def snapshot(self, box: Sequence[float]) -> Track:
        return Track(
            track_id=self.track_id,
            label=self.label,
            score=self.score,
            x1=box[0],
            y1=box[1],
            x2=box[2],
            y2=box[3],
            ts_us=self.last_us,
            hits=self.hits,
            confirmed=self.confirmed,
            start_us=self.start_us,
        )


def _snapshots(states: list[_State]) -> list[Track]:
    """Track snapshots of states, boxes converted in one batch."""
    if not states:
        return []
    boxes = _to_xyxy(np.array([s.mean for s in states])).tolist()
    return [s.snapshot(b) for s, b in zip(states, boxes, strict=True)]


class ByteTracker:
    """Tracks objects across analysed frames of one camera; not thread-safe (one per camera).

    `update` returns the confirmed tracks matched in that frame. A confirmed track that misses
    frames is kept (predicted by its Kalman filter) for up to `max_lost_us`; when that runs out
    it is listed once in `lost`, after the update that ended it.
    """

    def __init__(
        self,
        high_threshold: float = 0.5,
        low_threshold: float = 0.1,
        match_iou: float = 0.2,
        max_lost_us: int = 2_000_000,
        min_hits: int = 2,
        *,
        low_match_iou: float = 0.5,
    ) -> None:
        if not 0.0 <= low_threshold <= high_threshold <= 1.0:
            raise ValueError(
                f"need 0 <= low ({low_threshold}) <= high ({high_threshold}) threshold <= 1"
            )
        if not 0.0 < match_iou <= 1.0 or not 0.0 < low_match_iou <= 1.0:
            raise ValueError(f"match IoUs must be in (0, 1]: {match_iou}, {low_match_iou}")
        if max_lost_us < 0 or min_hits < 1:
            raise ValueError(f"need max_lost_us >= 0 and min_hits >= 1: {max_lost_us}, {min_hits}")
        self.high_threshold = high_threshold
        self.low_threshold = low_threshold
        self.match_iou = match_iou
        self.low_match_iou = low_match_iou
        self.max_lost_us = max_lost_us
        self.min_hits = min_hits
        self.lost: list[Track] = []
        self._states: list[_State] = []
        self._label_ids: dict[str, int] = {}
        self._next_id = 1
        self._last_ts_us: int | None = None

    def update(self, detections: Sequence[BoxLike], ts_us: int) -> list[Track]:
        """Feed one analysed frame's detections taken at ts_us; returns its confirmed tracks."""
        if self._last_ts_us is not None and ts_us < self._last_ts_us:
            raise ValueError(
                f"frame time went backwards: {ts_us} after {self._last_ts_us}; "
                "use one tracker per camera and feed frames in order"
            )
        boxes, labels, scores, label_names = self._detection_arrays(detections)
        dt_s = 0.0 if self._last_ts_us is None else (ts_us - self._last_ts_us) / 1e6
        self._last_ts_us = ts_us
        states = self._states
        self._predict(dt_s)

        high = np.flatnonzero(scores >= self.high_threshold)
        low = np.flatnonzero((scores >= self.low_threshold) & (scores < self.high_threshold))

        confirmed = [i for i, s in enumerate(states) if s.confirmed]
        tentative = [i for i, s in enumerate(states) if not s.confirmed]
        t_boxes = _to_xyxy(np.array([s.mean for s in states])) if states else np.zeros((0, 4))
        t_labels = np.array([s.label_id for s in states], dtype=np.int64)
        matches: list[tuple[int, int]] = []  # (state index, detection index)

        # 1: confident detections against every confirmed track, visible or lost.
        m, rest_t, rest_high = self._match(
            confirmed, high, t_boxes, t_labels, boxes, labels, self.match_iou
        )
        matches += m
        # 2: low-score detections against confirmed tracks still visible in the last frame.
        visible = [i for i in rest_t if states[i].visible]
        m, _, _ = self._match(visible, low, t_boxes, t_labels, boxes, labels, self.low_match_iou)
        matches += m
        # 3: remaining confident detections against tentative tracks.
        m, _, new = self._match(
            tentative, rest_high, t_boxes, t_labels, boxes, labels, self.match_iou
        )
        matches += m

        if matches:
            ti = np.fromiter((t for t, _ in matches), np.int64, len(matches))
            di = np.fromiter((d for _, d in matches), np.int64, len(matches))
            mean = np.array([states[t].mean for t in ti])
            cov = np.array([states[t].cov for t in ti])
            KalmanBoxFilter.update(mean, cov, _to_xyah(boxes[di]))
            for k, (t, d) in enumerate(matches):
                s = states[t]
                s.mean, s.cov = mean[k], cov[k]
                s.score = float(scores[d])
                s.last_us = ts_us
                s.hits += 1
                s.visible = True
                if not s.confirmed and s.hits >= self.min_hits:
                    self._confirm(s)
        matched = {t for t, _ in matches}

        kept: list[_State] = []
        ended: list[_State] = []
        for i, s in enumerate(states):
            if i in matched:
                kept.append(s)
            elif not s.confirmed:
                continue  # a tentative track that misses a frame was noise (as in ByteTrack)
            elif ts_us - s.last_us > self.max_lost_us:
                ended.append(s)
            else:
                s.visible = False
                kept.append(s)

        if new:
            new_idx = np.asarray(new, dtype=np.int64)
            mean, cov = KalmanBoxFilter.initiate(_to_xyah(boxes[new_idx]))
            for k, d in enumerate(new):
                s = _State(mean[k], cov[k], label_names[d], int(labels[d]), float(scores[d]), ts_us)
                if self.min_hits <= 1:
                    self._confirm(s)
                kept.append(s)
        self._states = kept
        self.lost = _snapshots(ended)
        shown = [s for s in kept if s.confirmed and s.last_us == ts_us and s.visible]
        shown.sort(key=lambda s: s.track_id)
        return _snapshots(shown)

    def finish(self) -> list[Track]:
        """End every confirmed track now (camera stopped); returns them, like `lost`."""
        ended = _snapshots([s for s in self._states if s.confirmed])
        self._states = []
        self.lost = ended
        return ended

    @property
    def active_count(self) -> int:
        """Confirmed tracks alive, visible or not."""
        return sum(1 for s in self._states if s.confirmed)

    def _confirm(self, s: _State) -> None:
        s.confirmed = True
        s.track_id = self._next_id
        self._next_id += 1
        log.debug("track %d (%s) confirmed", s.track_id, s.label)

    def _predict(self, dt_s: float) -> None:
        if not self._states or dt_s <= 0:
            return
        mean = np.array([s.mean for s in self._states])
        cov = np.array([s.cov for s in self._states])
        # As ByteTrack: a lost track keeps its path but stops growing or shrinking.
        hidden = np.fromiter((not s.visible for s in self._states), bool, len(self._states))
        mean[hidden, 7] = 0.0
        KalmanBoxFilter.predict(mean, cov, dt_s)
        for k, s in enumerate(self._states):
            s.mean, s.cov = mean[k], cov[k]

    def _detection_arrays(
        self, detections: Sequence[BoxLike]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        n = len(detections)
        boxes = np.empty((n, 4))
        scores = np.empty(n)
        labels = np.empty(n, dtype=np.int64)
        names: list[str] = []
        ids = self._label_ids
        for k, d in enumerate(detections):
            boxes[k] = (d.x1, d.y1, d.x2, d.y2)
            scores[k] = d.score
            lid = ids.get(d.label)
            if lid is None:
                lid = ids[d.label] = len(ids)
            labels[k] = lid
            names.append(d.label)
        ok = (
            np.isfinite(boxes).all(axis=1)
            & np.isfinite(scores)
            & (boxes[:, 2] >= boxes[:, 0])
            & (boxes[:, 3] >= boxes[:, 1])
        )
        if not ok.all():
            bad = detections[int(np.flatnonzero(~ok)[0])]
            raise ValueError(
                f"detection needs a finite score and box with x1 <= x2 and y1 <= y2: {bad!r}"
            )
        return boxes, labels, scores, names

    @staticmethod
    def _match(
        rows: list[int],
        cols: np.ndarray | list[int],
        t_boxes: np.ndarray,
        t_labels: np.ndarray,
        boxes: np.ndarray,
        labels: np.ndarray,
        min_iou: float,
    ) -> tuple[list[tuple[int, int]], list[int], list[int]]:
        """Match tracks `rows` to detections `cols` (indices); returns matches and leftovers."""
        cols_a = np.asarray(cols, dtype=np.int64)
        rows_a = np.asarray(rows, dtype=np.int64)
        pairs, rest_r, rest_c = _associate(
            t_boxes[rows_a], t_labels[rows_a], boxes[cols_a], labels[cols_a], min_iou
        )
        return (
            [(rows[r], int(cols_a[c])) for r, c in pairs],
            [rows[r] for r in rest_r],
            [int(cols_a[c]) for c in rest_c],
        )
