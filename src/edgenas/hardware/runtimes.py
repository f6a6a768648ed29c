"""Runtimes that run a network once and time it: ONNX Runtime (CPU, CUDA) and PyTorch (CPU eager, CUDA).

Networks are measured as deployed: eval mode, BatchNorm folded into the convolutions (ONNX Runtime's graph
optimiser folds it at full optimisation; for PyTorch we fold it with :func:`edgenas.nn.fuse.fold_batchnorm`).
The input is a fixed random tensor of the requested batch and resolution.

| name | what is timed |
|---|---|
| ``ort-cpu`` | ``InferenceSession.run`` on the CPU provider, full graph optimisation, N intra-op threads |
| ``ort-cuda`` | ``run_with_iobinding`` on the CUDA provider with input and output already on the GPU |
| ``torch-cpu`` | eager forward under ``inference_mode``, channels_last, N threads |
| ``torch-cuda`` | eager forward between two CUDA events, channels_last, synchronised |

TensorRT is not wrapped: where a machine has it, export with ``edgenas arch export`` and time it with ``trtexec``.
"""

from __future__ import annotations

import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgenas.errors import MeasurementError, RuntimeUnavailableError
from edgenas.nn.fuse import fold_batchnorm
from edgenas.nn.reparam import collapsed_copy


@dataclass(frozen=True)
class RuntimeOptions:
    """Options shared by all runtimes.

    Attributes:
        batch: batch size of the input.
        resolution: input height and width (px).
        threads: intra-op threads of CPU runtimes (0: the library's default); ignored on GPUs.
        channels: input channels (3 for images; a layer's input channels when timing it in isolation).
    """

    batch: int = 1
    resolution: int = 32
    threads: int = 1
    channels: int = 3

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """``(batch, channels, resolution, resolution)``."""
        return (self.batch, self.channels, self.resolution, self.resolution)


class Session(ABC):
    """A network loaded into a runtime; ``run()`` executes it once and returns the elapsed milliseconds."""

    @abstractmethod
    def run(self) -> float:
        """Run once; elapsed time in ms."""

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release the resources (threads settings, GPU memory, temporary files)."""

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Runtime(ABC):
    """A way to execute networks on this machine."""

    name: str = ""
    device_type: str = "cpu"

    def __init__(self, options: RuntimeOptions) -> None:
        self.options = options

    @classmethod
    @abstractmethod
    def unavailable_reason(cls) -> str | None:
        """Why this runtime cannot run here, or None when it can."""

    @abstractmethod
    def load(self, model: nn.Module) -> Session:
        """Prepare ``model`` (a copy: the caller's module is not changed) for timed runs."""


# ----- ONNX Runtime -------------------------------------------------------------------------------------------------
class _OrtSession(Session):
    def __init__(self, model: nn.Module, options: RuntimeOptions, providers: list[str]) -> None:
        import onnxruntime as ort

        from edgenas.export import export_onnx

        self._tmp = tempfile.TemporaryDirectory(prefix="edgenas-ort-")
        path = Path(self._tmp.name) / "model.onnx"
        export_onnx(collapsed_copy(model), path, options.input_shape)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.intra_op_num_threads = options.threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), so, providers=providers)
        inputs = self.session.get_inputs()  # none when the output does not depend on the input (a dead NB201 cell)
        x = np.random.default_rng(0).standard_normal(options.input_shape, dtype=np.float32)
        self.feed = {inputs[0].name: x} if inputs else {}
        self.input_name = inputs[0].name if inputs else None
        self.binding = None
        if providers[0] == "CUDAExecutionProvider" and self.input_name is not None:
            x = ort.OrtValue.ortvalue_from_numpy(self.feed[self.input_name], "cuda", 0)
            self.binding = self.session.io_binding()
            self.binding.bind_ortvalue_input(self.input_name, x)
            self.binding.bind_output(self.session.get_outputs()[0].name, "cuda")

    def run(self) -> float:
        start = time.perf_counter()
        if self.binding is not None:
            self.session.run_with_iobinding(self.binding)  # synchronous: returns when the GPU work is done
        else:
            self.session.run(None, self.feed)
        return (time.perf_counter() - start) * 1e3

    def close(self) -> None:
        self._tmp.cleanup()


class OrtCpuRuntime(Runtime):
    """ONNX Runtime, CPU execution provider."""

    name = "ort-cpu"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import onnxruntime as ort
        except ImportError:
            return "onnxruntime is not installed"
        return None if "CPUExecutionProvider" in ort.get_available_providers() else "no CPU provider"

    def load(self, model: nn.Module) -> Session:
        return _OrtSession(model, self.options, ["CPUExecutionProvider"])


class OrtCudaRuntime(OrtCpuRuntime):
    """ONNX Runtime, CUDA execution provider (needs onnxruntime-gpu)."""

    name = "ort-cuda"
    device_type = "cuda"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import onnxruntime as ort
        except ImportError:
            return "onnxruntime is not installed"
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu on a CUDA machine)"
        return None

    def load(self, model: nn.Module) -> Session:
        return _OrtSession(model, self.options, ["CUDAExecutionProvider", "CPUExecutionProvider"])


# ----- PyTorch ------------------------------------------------------------------------------------------------------
class _TorchSession(Session):
    def __init__(self, model: nn.Module, options: RuntimeOptions, device: torch.device) -> None:
        self.device = device
        self.previous_threads = torch.get_num_threads()
        if device.type == "cpu" and options.threads > 0:
            torch.set_num_threads(options.threads)
        self.model = fold_batchnorm(collapsed_copy(model)).to(device).to(memory_format=torch.channels_last)
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(options.input_shape, generator=generator).to(device).to(memory_format=torch.channels_last)
        if device.type == "cuda":
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def run(self) -> float:
        with torch.inference_mode():
            if self.device.type == "cuda":
                self.start.record()
                self.model(self.x)
                self.end.record()
                self.end.synchronize()
                return float(self.start.elapsed_time(self.end))
            start = time.perf_counter()
            self.model(self.x)
            return (time.perf_counter() - start) * 1e3

    def close(self) -> None:
        torch.set_num_threads(self.previous_threads)
        if self.device.type == "cuda":
            del self.model, self.x
            torch.cuda.empty_cache()


class TorchCpuRuntime(Runtime):
    """PyTorch eager on the CPU."""

    name = "torch-cpu"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None

    def load(self, model: nn.Module) -> Session:
        return _TorchSession(model, self.options, torch.device("cpu"))


class TorchCudaRuntime(Runtime):
    """PyTorch eager on CUDA, timed with CUDA events."""

    name = "torch-cuda"
    device_type = "cuda"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None if torch.cuda.is_available() else "no CUDA device is visible to torch"

    def load(self, model: nn.Module) -> Session:
        return _TorchSession(model, self.options, torch.device("cuda", torch.cuda.current_device()))


RUNTIMES: dict[str, type[Runtime]] = {
    r.name: r for r in (OrtCpuRuntime, OrtCudaRuntime, TorchCpuRuntime, TorchCudaRuntime)
}


def available_runtimes() -> dict[str, str | None]:
    """Every runtime name with None (usable here) or the reason it is not."""
    return {name: cls.unavailable_reason() for name, cls in RUNTIMES.items()}


def get_runtime(name: str, options: RuntimeOptions | None = None) -> Runtime:
    """The runtime ``name`` with ``options``.

    Raises:
        RuntimeUnavailableError: unknown name (the message lists the names) or not usable here (says why).
    """
    if name not in RUNTIMES:
        raise RuntimeUnavailableError(f"unknown runtime {name!r}; runtimes: {', '.join(RUNTIMES)}")
    cls = RUNTIMES[name]
    reason = cls.unavailable_reason()
    if reason:
        raise RuntimeUnavailableError(f"runtime {name} is not available here: {reason}")
    opts = options or RuntimeOptions()
    if opts.batch < 1 or opts.resolution < 1 or opts.threads < 0:
        raise MeasurementError("batch and resolution must be >= 1 and threads >= 0")
    return cls(opts)
