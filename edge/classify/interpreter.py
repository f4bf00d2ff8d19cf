"""One place that builds a TFLite interpreter: LiteRT first, tflite-runtime as the fallback.

``ai_edge_litert`` is the maintained runtime with wheels for Python 3.11-3.13 on aarch64 and
works with numpy 2. ``tflite_runtime`` 2.14 (2023) is the fallback for images that already
carry it; it needs numpy < 2, has no wheels after Python 3.11 and runs int8 models without
XNNPACK, about 5x slower (see docs/runtime.md).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.bundle import TensorContract
from edge.errors import BundleError, RuntimeUnavailableError

logger = logging.getLogger(__name__)


def _import_interpreter_class() -> tuple[Any, str]:
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError as litert_error:
        try:
            from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found]

            return Interpreter, "tflite_runtime"
        except ImportError as tflite_error:
            raise RuntimeUnavailableError(
                "no TFLite runtime: install ai-edge-litert (pip install 'yuzug[edge]'); "
                f"ai_edge_litert: {litert_error}; tflite_runtime: {tflite_error}"
            ) from tflite_error


@dataclass(frozen=True)
class TensorInfo:
    index: int
    contract: TensorContract

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.contract.dtype)


class TFLiteModel:
    """A TFLite model loaded once, with its tensors allocated and described.

    Args:
        path: the ``.tflite`` file.
        num_threads: CPU threads for the interpreter (XNNPACK); 1 keeps a Pi core free.
    """

    def __init__(self, path: str | os.PathLike[str], num_threads: int = 1) -> None:
        interpreter_class, self.runtime = _import_interpreter_class()
        self.path = Path(path)
        try:
            self._interpreter = interpreter_class(
                model_path=str(self.path), num_threads=max(1, int(num_threads))
            )
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise BundleError(f"{self.path}: not a loadable TFLite model: {exc}") from exc
        self.inputs = [_describe(d) for d in self._interpreter.get_input_details()]
        self.outputs = [_describe(d) for d in self._interpreter.get_output_details()]
        logger.debug("loaded %s with %s, %d thread(s)", self.path, self.runtime, num_threads)

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """Invokes the model on already-typed input tensors; returns copies of the outputs."""
        for info, value in zip(self.inputs, inputs, strict=True):
            self._interpreter.set_tensor(info.index, value)
        self._interpreter.invoke()
        return [self._interpreter.get_tensor(info.index).copy() for info in self.outputs]


def _describe(details: dict[str, Any]) -> TensorInfo:
    scale, zero_point = details.get("quantization", (0.0, 0))
    dtype = np.dtype(details["dtype"]).name
    if dtype not in ("float32", "uint8", "int8"):
        raise BundleError(f"unsupported tensor dtype {dtype} for {details.get('name')}")
    return TensorInfo(
        index=int(details["index"]),
        contract=TensorContract(
            shape=[int(x) for x in details["shape"]],
            dtype=dtype,
            scale=float(scale),
            zero_point=int(zero_point),
        ),
    )
