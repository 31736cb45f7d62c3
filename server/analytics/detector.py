"""Object detection with onnxruntime: letterbox, one session run per batch, decode, class-aware NMS.

Output layouts understood (``DetectorInfo.layout``), found from the output shapes and names:

- ``yolov8``: one output B×(4+C)×N (YOLOv8 / YOLO11): cx, cy, w, h in input pixels, class scores.
- ``yolov5``: one output B×N×(5+C) (YOLOv3/v5/v7, our Darknet import): cx, cy, w, h in input
  pixels, objectness, class probabilities; score = objectness × class probability.
- ``rtdetr``: one output B×N×(4+C) (Ultralytics RT-DETR export): cx, cy, w, h normalised 0..1,
  class scores. Told from a transposed ``yolov8`` by N > 4+C; no NMS (the model does not need it).
- ``detr``: two outputs, boxes B×N×4 (cx, cy, w, h normalised) and scores B×N×C (sigmoid applied
  when the output's name says logits): RT-DETR / D-FINE heads, HF-style exports. No NMS.
- ``detr-postprocessed``: labels B×N, boxes B×N×4 (x1, y1, x2, y2 in input pixels, or in the
  ``orig_target_sizes`` given as a second input, which we set to the input size) and scores B×N:
  the official RT-DETR / D-FINE deploy exports. No NMS.

Class names come from a labels file when one is given (one name per line), else from the model's
metadata ``names`` (JSON or Ultralytics' Python-dict text); a model with neither is refused.
"""

from __future__ import annotations

import ast
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

log = logging.getLogger(__name__)

PAD_VALUE = 114  # grey of Ultralytics' letterbox
MAX_DETECTIONS = 300
MAX_BATCH = 32
LAYOUTS = ("yolov8", "yolov5", "rtdetr", "detr", "detr-postprocessed")


@dataclass(frozen=True, slots=True)
class Detection:
    label: str
    score: float
    x1: float  # normalised 0..1 of the source frame, x right, y down
    y1: float
    x2: float
    y2: float


class DetectorError(Exception):
    """The model cannot be used; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class DetectorInfo:
    model: str
    provider: str  # the execution provider that runs the model, e.g. CPUExecutionProvider
    layout: str  # one of LAYOUTS
    input_size: tuple[int, int]  # (width, height) of the network input
    labels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Letterbox:
    gain: float
    left: int
    top: int
    width: int  # source frame
    height: int


def _ort_errors() -> tuple[type[BaseException], ...]:
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = (
        "Fail",
        "InvalidArgument",
        "NoSuchFile",
        "NoModel",
        "EngineError",
        "RuntimeException",
        "InvalidProtobuf",
        "ModelLoaded",
        "NotImplemented",
        "InvalidGraph",
        "EPFail",
    )
    found = tuple(getattr(state, n) for n in names if isinstance(getattr(state, n, None), type))
    return (*found, RuntimeError, ValueError)


def parse_names(text: str) -> list[str] | None:
    """Class names from a metadata value: JSON or Python-literal dict {index: name}, or a list."""
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, dict) and value:
        try:
            by_index = {int(k): str(v) for k, v in value.items()}
        except (TypeError, ValueError):
            return None
        if sorted(by_index) == list(range(len(by_index))):
            return [by_index[i] for i in range(len(by_index))]
    return None


def _read_labels(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DetectorError(f"cannot read the labels file {path}: {exc}") from None
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if not labels:
        raise DetectorError(f"the labels file {path} is empty (expected one class name per line)")
    return labels


def _dim(value: object) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


class Detector:
    """One onnxruntime session; ``detect`` may be called from several threads at once."""

    def __init__(
        self,
        model: Path,
        labels: Path | None = None,
        providers: Sequence[str] | None = None,
        score_threshold: float = 0.25,
        nms_iou: float = 0.45,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        from server.analytics.providers import pick_providers

        model = Path(model)
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        if not model.is_file():
            raise DetectorError(f"model file {model} not found: check the detector's model path")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or 0
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Analytics shares the cores with decoding and recording: idle threads must sleep.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        chosen = pick_providers(providers)
        errors = _ort_errors()
        try:
            self._session = ort.InferenceSession(str(model), opts, providers=chosen)
        except errors as exc:
            raise DetectorError(
                f"cannot load the model {model}: not a usable ONNX file ({_short(exc)})"
            ) from None
        provider = self._session.get_providers()[0]
        self._errors = errors

        inputs = self._session.get_inputs()
        image = next((i for i in inputs if len(i.shape) == 4), None)
        if image is None:
            shapes = ", ".join(f"{i.name} {i.shape}" for i in inputs)
            raise DetectorError(f"model {model} has no image input (N×3×H×W); inputs: {shapes}")
        self._input = image.name
        self._dtype = np.float16 if image.type == "tensor(float16)" else np.float32
        if image.type not in ("tensor(float)", "tensor(float16)"):
            raise DetectorError(f"model {model}: image input is {image.type}, expected float")
        meta = self._session.get_modelmeta().custom_metadata_map
        batch, channels, height, width = image.shape
        if _dim(channels) not in (None, 3):
            raise DetectorError(f"model {model} takes {channels}-channel images, not RGB")
        height, width = _dim(height), _dim(width)
        if height is None or width is None:
            height, width = _imgsz(meta.get("imgsz"))
        self._w, self._h = width, height
        self._batch = _dim(batch)  # None: dynamic, any batch size
        self._sizes_input: str | None = None
        for extra in inputs:
            if extra.name == self._input:
                continue
            if "size" in extra.name and len(extra.shape) == 2:
                self._sizes_input = extra.name
            else:
                raise DetectorError(
                    f"model {model} needs an input this detector cannot fill: "
                    f"{extra.name} {extra.shape}"
                )

        if labels is not None:
            names = _read_labels(Path(labels))
        elif "names" in meta:
            parsed = parse_names(meta["names"])
            if parsed is None:
                raise DetectorError(
                    f"model {model}: metadata 'names' is not a list of class names; "
                    "give a labels file (one name per line)"
                )
            names = parsed
        else:
            raise DetectorError(
                f"model {model} has no class names in its metadata: give a labels file "
                "(one class name per line, in class order)"
            )
        self._labels = tuple(names)

        outputs = self._session.get_outputs()
        self._output_names = [o.name for o in outputs]
        probe = self._run(np.zeros((self._batch or 1, 3, height, width), self._dtype), model)
        self._layout, self._roles = self._find_layout(model, probe)
        self.info = DetectorInfo(str(model), provider, self._layout, (width, height), self._labels)
        log.info(
            "detector %s: layout %s, input %dx%d, %d classes, provider %s, batch %s",
            model.name,
            self._layout,
            width,
            height,
            len(self._labels),
            provider,
            self._batch or "dynamic",
        )

    # -- layout -------------------------------------------------------------------------------

    def _find_layout(self, model: Path, probe: list[np.ndarray]) -> tuple[str, dict[str, int]]:
        shapes = [tuple(a.shape) for a in probe]
        names = [n.lower() for n in self._output_names]
        described = ", ".join(f"{n} {s}" for n, s in zip(self._output_names, shapes, strict=True))
        nl = len(self._labels)

        def unknown(why: str) -> DetectorError:
            return DetectorError(
                f"model {model} has an output layout this detector does not know ({described}): "
                f"{why}. Supported: YOLOv8/YOLO11 1×(4+C)×N, YOLOv5-style 1×N×(5+C), "
                "RT-DETR/D-FINE boxes 1×N×4 + scores 1×N×C (or labels + boxes + scores)"
            )

        def classes_match(c: int) -> None:
            if c != nl:
                raise DetectorError(
                    f"model {model} predicts {c} classes but has {nl} labels: "
                    "give the labels file that belongs to this model"
                )

        if len(probe) == 1:
            if len(shapes[0]) != 3:
                raise unknown("one output, but not of rank 3")
            _, d1, d2 = shapes[0]
            v8, v5, detr = d1 == 4 + nl, d2 == 5 + nl, d2 == 4 + nl
            if v8 and (not (v5 or detr) or d1 < d2):  # N > 4+C breaks a tie
                return "yolov8", {"out": 0}
            if v5:
                return "yolov5", {"out": 0}
            if detr:
                return "rtdetr", {"out": 0}
            if 4 < d1 < d2:
                classes_match(d1 - 4)
            if 5 < d2 < d1:
                classes_match(d2 - 5)
            raise unknown("the sizes fit no known layout")
        rank3_4 = [i for i, s in enumerate(shapes) if len(s) == 3 and s[2] == 4]
        if len(probe) == 2 and len(rank3_4) >= 1:
            boxes = next((i for i in rank3_4 if "box" in names[i]), rank3_4[0])
            scores = 1 - boxes
            if len(shapes[scores]) != 3 or shapes[scores][1] != shapes[boxes][1]:
                raise unknown("boxes and scores do not pair up")
            classes_match(shapes[scores][2])
            return "detr", {
                "boxes": boxes,
                "scores": scores,
                "logits": int("logit" in names[scores]),
            }
        if len(probe) == 3 and len(rank3_4) == 1:
            boxes = rank3_4[0]
            rest = [i for i in range(3) if i != boxes and shapes[i] == shapes[boxes][:2]]
            if len(rest) != 2:
                raise unknown("labels and scores must be B×N like the boxes")
            integer = [i for i in rest if np.issubdtype(probe[i].dtype, np.integer)]
            by_name = [i for i in rest if "label" in names[i] or "class" in names[i]]
            labels_at = (integer or by_name or [None])[0]
            if labels_at is None:
                raise unknown("cannot tell the labels output from the scores output")
            scores = next(i for i in rest if i != labels_at)
            return "detr-postprocessed", {"boxes": boxes, "scores": scores, "labels": labels_at}
        raise unknown(f"{len(probe)} outputs")

    # -- running ------------------------------------------------------------------------------

    def _run(self, blob: np.ndarray, model: Path | str = "") -> list[np.ndarray]:
        feed = {self._input: blob}
        if self._sizes_input is not None:
            feed[self._sizes_input] = np.tile(
                np.array([[self._w, self._h]], np.int64), (blob.shape[0], 1)
            )
        try:
            return self._session.run(None, feed)
        except self._errors as exc:
            raise DetectorError(
                f"model {model or self.info.model} fails to run: {_short(exc)}"
            ) from None

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Detections per frame (RGB uint8 H×W×3), best first; batched when the model allows."""
        if not frames:
            return []
        for f in frames:
            if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
                raise ValueError(f"frames must be RGB uint8 H×W×3 arrays, got {f.dtype} {f.shape}")
        step = self._batch or MAX_BATCH
        results: list[list[Detection]] = []
        for start in range(0, len(frames), step):
            chunk = frames[start : start + step]
            images = np.full((self._batch or len(chunk), self._h, self._w, 3), PAD_VALUE, np.uint8)
            boxes = [self._letterbox(f, images[i]) for i, f in enumerate(chunk)]
            blob = images.transpose(0, 3, 1, 2).astype(self._dtype) * self._dtype(1 / 255)
            outs = self._run(np.ascontiguousarray(blob))
            results.extend(self._decode(outs, i, lb) for i, lb in enumerate(boxes))
        return results

    def prepare(self, frame: np.ndarray) -> dict[str, np.ndarray]:
        """The model's input feed for one frame, as ``detect`` makes it (for benchmarks that
        time ``session.run`` alone against the whole pipeline)."""
        image = np.full((1, self._h, self._w, 3), PAD_VALUE, np.uint8)
        self._letterbox(frame, image[0])
        blob = image.transpose(0, 3, 1, 2).astype(self._dtype) * self._dtype(1 / 255)
        return {self._input: np.ascontiguousarray(blob)}

    @property
    def session(self) -> Any:  # onnxruntime.InferenceSession (imported lazily)
        return self._session

    def _letterbox(self, frame: np.ndarray, out: np.ndarray) -> _Letterbox:
        h, w = frame.shape[:2]
        gain = min(self._w / w, self._h / h)
        nw, nh = round(w * gain), round(h * gain)
        left = round((self._w - nw) / 2 - 0.1)
        top = round((self._h - nh) / 2 - 0.1)
        resized = (
            frame
            if (nw, nh) == (w, h)
            else cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
        )
        out[top : top + nh, left : left + nw] = resized
        return _Letterbox(gain, left, top, w, h)

    def _decode(self, outs: list[np.ndarray], i: int, lb: _Letterbox) -> list[Detection]:
        thr, layout, roles = self.score_threshold, self._layout, self._roles
        nms = layout in ("yolov8", "yolov5")
        if layout in ("yolov8", "yolov5", "rtdetr"):
            out = outs[roles["out"]][i]
            pred = out.T if layout == "yolov8" else out  # N×(4+C) or N×(5+C)
            if layout == "yolov5":
                pred = pred[pred[:, 4] >= thr]
                cls_scores = pred[:, 5:] * pred[:, 4:5]
            else:
                cls_scores = pred[:, 4:]
            classes = cls_scores.argmax(1)
            scores = cls_scores[np.arange(len(pred)), classes]
            boxes = _xyxy(pred[:, :4].astype(np.float32))
            if layout == "rtdetr":
                boxes *= np.array([self._w, self._h, self._w, self._h], np.float32)
        elif layout == "detr":
            raw = outs[roles["scores"]][i].astype(np.float32)
            cls_scores = 1 / (1 + np.exp(-raw)) if roles["logits"] else raw
            classes = cls_scores.argmax(1)
            scores = cls_scores[np.arange(len(cls_scores)), classes]
            boxes = _xyxy(outs[roles["boxes"]][i].astype(np.float32))
            boxes *= np.array([self._w, self._h, self._w, self._h], np.float32)
        else:
            classes = outs[roles["labels"]][i].astype(np.int64)
            scores = outs[roles["scores"]][i].astype(np.float32)
            boxes = outs[roles["boxes"]][i].astype(np.float32)
        keep = scores >= thr
        boxes, scores, classes = boxes[keep], scores[keep].astype(np.float32), classes[keep]
        if nms and len(scores):
            xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
            idx = cv2.dnn.NMSBoxesBatched(
                xywh.astype(np.float64), scores, classes.astype(np.int32), thr, self.nms_iou
            )
            order = np.asarray(idx, np.int64).reshape(-1)
        else:
            order = np.argsort(-scores, kind="stable")
        order = order[:MAX_DETECTIONS]
        boxes = boxes[order]
        boxes -= np.array([lb.left, lb.top, lb.left, lb.top], np.float32)
        boxes /= np.array([lb.gain * lb.width, lb.gain * lb.height] * 2, np.float32)
        np.clip(boxes, 0.0, 1.0, out=boxes)
        found = []
        for (x1, y1, x2, y2), score, cls in zip(
            boxes.tolist(), scores[order].tolist(), classes[order].tolist(), strict=True
        ):
            if x2 <= x1 or y2 <= y1:
                continue
            label = self._labels[cls] if 0 <= cls < len(self._labels) else f"class{cls}"
            found.append(Detection(label, score, x1, y1, x2, y2))
        return found


def _xyxy(cxcywh: np.ndarray) -> np.ndarray:
    half = cxcywh[:, 2:4] / 2
    return np.concatenate([cxcywh[:, :2] - half, cxcywh[:, :2] + half], axis=1)


def _imgsz(value: str | None) -> tuple[int, int]:
    """(height, width) from Ultralytics' ``imgsz`` metadata; 640×640 when absent."""
    if value:
        try:
            parsed = ast.literal_eval(value)
            if isinstance(parsed, int):
                return parsed, parsed
            h, w = (int(v) for v in parsed)
            return h, w
        except (ValueError, SyntaxError, TypeError):
            pass
    return 640, 640


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:300]
