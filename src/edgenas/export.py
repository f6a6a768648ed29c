"""ONNX export verified with ONNX Runtime.

``export_onnx`` writes the model for a static batch size and resolution, runs the file in ONNX Runtime (CPU) on a
random input and compares with PyTorch. The file is written to a temporary name and renamed only when the outputs
match, so a failed or inaccurate export leaves no file behind.

Parity metric: ``max |onnx - torch| / max(max |torch|, 1e-12)``, the largest absolute difference relative to the
output's scale (element-wise relative error is meaningless for logits near zero). Default tolerance 1e-4.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgenas._io import atomic_output
from edgenas.errors import ExportError

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17
DEFAULT_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ExportResult:
    """Outcome of a verified export.

    Attributes:
        path: the ONNX file.
        input_shape: static ``(N, C, H, W)`` of the graph input ``input``.
        opset: ONNX opset version.
        max_abs_error: largest absolute difference between ONNX Runtime and PyTorch outputs.
        rel_error: ``max_abs_error`` divided by the largest absolute PyTorch output.
        size_bytes: size of the file.
    """

    path: Path
    input_shape: tuple[int, ...]
    opset: int
    max_abs_error: float
    rel_error: float
    size_bytes: int


def _torch_export(model: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    """Run torch's TorchScript-based ONNX exporter quietly (it is fast, needs no tracing of Python, and exists in
    every torch >= 2.4); its deprecation warnings and progress text are not the user's business."""
    kwargs: dict[str, object] = {}
    if "dynamo" in torch.onnx.export.__code__.co_varnames:
        kwargs["dynamo"] = False
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["input"],
            output_names=["output"],
            opset_version=opset,
            do_constant_folding=True,
            **kwargs,
        )


def run_onnx(path: str | os.PathLike[str], inputs: np.ndarray, threads: int = 1) -> np.ndarray:
    """Run an exported model in ONNX Runtime's CPU provider and return its first output."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    # a network whose output does not depend on its input (an NB201 cell with no path to the output) is exported as
    # a constant graph without inputs
    feed = {session.get_inputs()[0].name: inputs} if session.get_inputs() else {}
    return session.run(None, feed)[0]


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    input_shape: tuple[int, int, int, int],
    *,
    opset: int = DEFAULT_OPSET,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
) -> ExportResult:
    """Export ``model`` (in eval mode, on the CPU) to ``path`` and verify it against PyTorch in ONNX Runtime.

    Args:
        model: the network; a copy is not made, but its training mode is restored afterwards.
        path: output ``.onnx`` file; written atomically.
        input_shape: static ``(N, C, H, W)`` of the exported graph.
        opset: ONNX opset version.
        tolerance: the largest accepted relative error (see the module docstring).
        seed: seed of the random verification input.

    Raises:
        OutputPathError: ``path`` cannot be written.
        ExportError: the exporter failed or the outputs differ by more than ``tolerance``.
    """
    import onnx

    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    example = torch.randn(input_shape, generator=generator)
    try:
        with atomic_output(path) as tmp:
            with torch.no_grad():
                reference = model(example).numpy()
                try:
                    _torch_export(model, example, tmp, opset)
                    onnx.checker.check_model(str(tmp))
                except Exception as exc:  # the exporters raise many unrelated types
                    raise ExportError(f"ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
            produced = run_onnx(tmp, example.numpy())
            if produced.shape != reference.shape:
                raise ExportError(f"ONNX output shape {produced.shape} differs from PyTorch's {reference.shape}")
            max_abs = float(np.max(np.abs(produced - reference)))
            rel = max_abs / max(float(np.max(np.abs(reference))), 1e-12)
            if not rel <= tolerance:
                raise ExportError(f"ONNX output differs from PyTorch by {rel:.2e} relative (tolerance {tolerance:.0e})")
            size = tmp.stat().st_size
    finally:
        model.train(was_training)
    logger.info("exported %s (%d bytes, rel. error %.2e)", path, size, rel)
    return ExportResult(Path(path), tuple(input_shape), opset, max_abs, rel, size)
