"""onnxruntime execution providers: which to try, best first (a module of its own so that the
detector and the model conversion both use it without importing each other)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

log = logging.getLogger(__name__)

PROVIDER_ORDER = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "OpenVINOExecutionProvider",
    "CoreMLExecutionProvider",
    "DmlExecutionProvider",
    "CPUExecutionProvider",
)
_SHORT = {
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "directml": "DmlExecutionProvider",
    "dml": "DmlExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


def available_providers() -> list[str]:
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def pick_providers(preferred: Sequence[str] | None = None) -> list[str]:
    """Providers to try, best first, ending with CPU.

    ``preferred`` (full names or short ones such as ``cuda``) restricts and orders the choice;
    those this onnxruntime lacks are skipped with a warning.
    """
    available = available_providers()
    if preferred:
        wanted = [_SHORT.get(p.strip().lower(), p.strip()) for p in preferred]
        missing = [p for p in wanted if p not in available]
        if missing:
            log.warning(
                "onnxruntime here has no %s (available: %s)",
                ", ".join(missing),
                ", ".join(available),
            )
        chosen = [p for p in dict.fromkeys(wanted) if p in available]
    else:
        chosen = [p for p in PROVIDER_ORDER if p in available]
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen
