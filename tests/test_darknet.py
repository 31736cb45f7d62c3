"""The Darknet importer agrees with OpenCV's Darknet reader, and refuses bad input clearly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from server.analytics.darknet import DarknetError, build_model, darknet_to_onnx
from server.analytics.detector import DetectorError
from server.analytics.models import darknet_files
from server.sim.footage import VTEST
from tests.conftest import ROOT
from tests.helpers import video_frames

TOL = 1e-4
OPENCV_CLASS_THRESHOLD = 0.2  # OpenCV's yolo layer zeroes class scores (obj × prob) below this


@pytest.fixture(scope="session")
def yolo_files() -> tuple[Path, Path, Path]:
    try:
        return darknet_files()
    except DetectorError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def converted(yolo_files, tmp_path_factory) -> Path:
    cfg, weights, names = yolo_files
    return darknet_to_onnx(cfg, weights, names, tmp_path_factory.mktemp("darknet") / "y.onnx")


def _compare_with_opencv(ours: np.ndarray, ref: np.ndarray, net_w: int, net_h: int) -> None:
    """Ours: N×(5+C) in input pixels, class probabilities; OpenCV: normalised, obj × prob."""
    assert ours.shape == ref.shape
    ours = ours.astype(np.float64)
    ours[:, [0, 2]] /= net_w
    ours[:, [1, 3]] /= net_h
    # Rows in the same order (head, cell, anchor): compare every box and objectness.
    np.testing.assert_allclose(ours[:, :5], ref[:, :5], rtol=0, atol=TOL)
    scores = ours[:, 4:5] * ours[:, 5:]
    kept = ref[:, 5:] > 0
    np.testing.assert_allclose(scores[kept], ref[:, 5:][kept], rtol=0, atol=TOL)
    assert scores[~kept].max() <= OPENCV_CLASS_THRESHOLD + TOL


def test_yolov3_tiny_matches_opencv_darknet_reader(yolo_files, converted: Path) -> None:
    cfg, weights, _ = yolo_files
    frames = video_frames(VTEST, [40, 400])
    blob = cv2.dnn.blobFromImages([cv2.resize(f, (416, 416)) for f in frames], 1 / 255.0)
    session = ort.InferenceSession(str(converted), providers=["CPUExecutionProvider"])
    ours = session.run(None, {"images": blob})[0]  # both frames in one batch
    assert ours.shape == (2, 2535, 85)
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    for i in range(2):
        net.setInput(blob[i : i + 1])
        heads = net.forward(net.getUnconnectedOutLayersNames())
        ref = np.concatenate([h.reshape(-1, h.shape[-1]) for h in heads])
        _compare_with_opencv(ours[i], ref, 416, 416)
        person = ours[i, :, 4] * ours[i, :, 5]
        assert (person > 0.5).sum() >= 3, "walkers in vtest: confident person boxes expected"


def test_model_carries_names_and_io(converted: Path, yolo_files) -> None:
    model = onnx.load(str(converted))
    meta = {p.key: p.value for p in model.metadata_props}
    names = json.loads(meta["names"])
    expected = yolo_files[2].read_text().split("\n")
    assert names == {str(i): n for i, n in enumerate(n for n in expected if n.strip())}
    assert names["0"] == "person" and len(names) == 80
    (inp,) = model.graph.input
    (out,) = model.graph.output
    assert inp.name == "images" and out.name == "output0"
    dims = [d.dim_value or d.dim_param for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 416, 416]
    out_dims = [d.dim_value or d.dim_param for d in out.type.tensor_type.shape.dim]
    assert out_dims == ["batch", 2535, 85]


# A small network with the layers YOLOv3-tiny lacks (mish, swish, route groups, shortcut,
# SPP-style maxpool, scale_x_y), random weights, checked against OpenCV as well.
SYNTHETIC_CFG = """[net]
width=64
height=64
channels=3
[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky
[maxpool]
size=2
stride=2
[convolutional]
batch_normalize=1
filters=16
size=3
stride=2
pad=1
activation=mish
[route]
layers=-1
groups=2
group_id=1
[convolutional]
filters=8
size=1
stride=1
pad=1
activation=leaky
[shortcut]
from=-2
activation=linear
[maxpool]
size=5
stride=1
[convolutional]
batch_normalize=1
filters=16
size=3
stride=2
pad=1
activation=swish
[convolutional]
size=1
stride=1
pad=1
filters=24
activation=linear
[yolo]
mask=3,4,5
anchors=4,5, 8,9, 12,14, 20,22, 30,28, 40,50
classes=3
num=6
scale_x_y=1.05
[route]
layers=-3
[upsample]
stride=2
[route]
layers=-1,-7
[convolutional]
size=1
stride=1
pad=1
filters=24
activation=linear
[yolo]
mask=0,1,2
anchors=4,5, 8,9, 12,14, 20,22, 30,28, 40,50
classes=3
num=6
"""
# (filters, input channels, size, batch_normalize) of its convolutions, in order
SYNTHETIC_CONVS = [(8, 3, 3, True), (16, 8, 3, True), (8, 8, 1, False), (16, 8, 3, True),
                   (24, 16, 1, False), (24, 24, 1, False)]  # fmt: skip
HEADER = np.array([0, 2, 0], np.int32).tobytes() + np.int64(0).tobytes()


def _synthetic_weights(seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    parts = []
    for f, c, k, bn in SYNTHETIC_CONVS:
        parts.append(rng.normal(0, 0.1, f))
        if bn:
            parts += [rng.uniform(0.5, 1.5, f), rng.normal(0, 0.1, f), rng.uniform(0.5, 2, f)]
        parts.append(rng.normal(0, 1 / np.sqrt(c * k * k), f * c * k * k))
    return HEADER + np.concatenate(parts).astype(np.float32).tobytes()


def test_other_darknet_layers_match_opencv(tmp_path: Path) -> None:
    cfg, weights = tmp_path / "syn.cfg", tmp_path / "syn.weights"
    cfg.write_text(SYNTHETIC_CFG)
    weights.write_bytes(_synthetic_weights())
    model = build_model(SYNTHETIC_CFG, weights.read_bytes(), ["a", "b", "c"], "syn.cfg")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(2).uniform(0, 1, (1, 3, 64, 64)).astype(np.float32)
    ours = session.run(None, {"images": x})[0][0]
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    net.setInput(x)
    heads = net.forward(net.getUnconnectedOutLayersNames())
    ref = np.concatenate([h.reshape(-1, h.shape[-1]) for h in heads])
    assert ours.shape == (8 * 8 * 3 + 16 * 16 * 3, 8)
    _compare_with_opencv(ours, ref, 64, 64)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace("[net]", "[convolutional]", 1), "starts with a [net]"),
        (lambda t: t.replace("[upsample]", "[reorg3d]"), "[reorg3d] at line 59"),
        (lambda t: t.replace("filters=8\nsize=3", "filters=eight\nsize=3", 1), "not an integer"),
        (lambda t: t.replace("activation=mish", "activation=gelu"), "activation=gelu"),
        (lambda t: t.replace("classes=3\nnum=6\nscale", "classes=4\nnum=6\nscale"), "needs 27"),
        (lambda t: t.replace("layers=-1,-7", "layers=-1,-11"), "cannot join feature maps"),
        (lambda t: t.replace("layers=-1,-7", "layers=-1,40"), "does not name an earlier layer"),
        (lambda t: t.replace("size=3\nstride=1\npad=1\nactivation=leaky", "size=1"), "cfg needs"),
        (lambda t: t + "[convolutional\n", "bad section header"),
    ],
)
def test_malformed_cfg_is_refused_with_its_place(change, message: str, tmp_path: Path) -> None:
    cfg, weights = tmp_path / "bad.cfg", tmp_path / "syn.weights"
    cfg.write_text(change(SYNTHETIC_CFG))
    weights.write_bytes(_synthetic_weights())
    out = tmp_path / "out" / "bad.onnx"
    with pytest.raises(DarknetError) as err:
        darknet_to_onnx(cfg, weights, None, out)
    assert message in str(err.value)
    assert not out.parent.exists() or not any(out.parent.iterdir()), "nothing half-written"


def test_wrong_weights_and_names_are_refused(yolo_files, tmp_path: Path) -> None:
    cfg, weights, names = yolo_files
    data = weights.read_bytes()
    out = tmp_path / "y.onnx"
    out.write_bytes(b"previous model")
    truncated = tmp_path / "truncated.weights"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DarknetError, match=r"has 17717478 bytes but the cfg needs 35434956.*trunc"):
        darknet_to_onnx(cfg, truncated, names, out)
    longer = tmp_path / "longer.weights"
    longer.write_bytes(data + bytes(64))
    with pytest.raises(DarknetError, match="another network"):
        darknet_to_onnx(cfg, longer, names, out)
    tiny = tmp_path / "tiny.weights"
    tiny.write_bytes(b"\0" * 10)
    with pytest.raises(DarknetError, match="too short"):
        darknet_to_onnx(cfg, tiny, names, out)
    nan = tmp_path / "nan.weights"
    nan.write_bytes(data[:-4] + np.float32(np.nan).tobytes())
    with pytest.raises(DarknetError, match="NaN"):
        darknet_to_onnx(cfg, nan, names, out)
    few = tmp_path / "few.names"
    few.write_text("person\ncar\n")
    with pytest.raises(DarknetError, match="lists 2 classes, the network has 80"):
        darknet_to_onnx(cfg, weights, few, out)
    with pytest.raises(DarknetError, match="cannot read"):
        darknet_to_onnx(cfg, tmp_path / "absent.weights", names, out)
    assert out.read_bytes() == b"previous model", "a failed conversion loses nothing"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


def test_cli_imports_into_the_data_dir(yolo_files, tmp_path: Path) -> None:
    cfg, weights, names = yolo_files
    data = tmp_path / "data"
    args = [sys.executable, "-m", "server", "models", "import-darknet"]
    ok = subprocess.run(
        [*args, str(cfg), str(weights), str(names), "--data-dir", str(data)],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    out = data / "models" / "yolov3-tiny.onnx"
    assert str(out) in ok.stdout
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[0].shape == ["batch", 2535, 85]
    bad = tmp_path / "bad.weights"
    bad.write_bytes(weights.read_bytes()[:1000])
    fail = subprocess.run(
        [*args, str(cfg), str(bad), str(names), "--out", str(tmp_path / "x.onnx")],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
    )  # fmt: skip
    assert fail.returncode == 2 and "truncated" in fail.stderr, fail.stderr
    assert not (tmp_path / "x.onnx").exists()
