"""Export failures leave no file and give a clear error."""

import os

import pytest
import torch
from torch import nn

from edgenas.errors import ExportError, OutputPathError
from edgenas.export import export_onnx


class NotExportable(nn.Module):
    def forward(self, x):
        return torch.linalg.eigvals(x[0, 0]).real.sum().reshape(1, 1)  # no ONNX symbolic for eigvals


class Drifting(nn.Module):
    """Returns a different value on every call, so ONNX Runtime cannot reproduce the PyTorch reference."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x.mean().reshape(1, 1) + float(self.calls)


def test_unsupported_op_raises_export_error_and_leaves_no_file(tmp_path):
    with pytest.raises(ExportError, match="ONNX export failed"):
        export_onnx(NotExportable(), tmp_path / "m.onnx", (1, 1, 4, 4))
    assert list(tmp_path.iterdir()) == []


def test_mismatch_beyond_tolerance_raises_and_leaves_no_file(tmp_path):
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_onnx(Drifting(), tmp_path / "m.onnx", (1, 1, 4, 4))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_unwritable_folder_even_for_root():
    with pytest.raises(OutputPathError, match="cannot write to /proc"):
        export_onnx(nn.Conv2d(1, 1, 1), "/proc/edgenas-test.onnx", (1, 1, 4, 4))


def test_output_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="cannot create folder"):
        export_onnx(nn.Conv2d(1, 1, 1), tmp_path / "file" / "m.onnx", (1, 1, 4, 4))
