"""Real runtimes on a tiny network, the runtime registry, and Comfort Zone logic on a synthetic runtime."""

from __future__ import annotations

import pytest
import torch

from edgenas.compress.comfort import comfort_zone, parse_scales, plot_comfort
from edgenas.errors import MeasurementError, RuntimeUnavailableError, SpaceConfigError
from edgenas.hardware import Protocol, RuntimeOptions, available_runtimes, get_runtime, measure_arch
from edgenas.hardware.device import LocalDevice
from edgenas.hardware.runtimes import Runtime, Session
from edgenas.nn.costs import measure_costs
from edgenas.spaces import get_space

FAST = Protocol(warmup=2, repeats=5, max_retries=0)


def tiny_spec():
    return get_space("nb201", channels=4, cells_per_stage=1).from_index(6111)


@pytest.mark.parametrize("name", ["ort-cpu", "torch-cpu"])
def test_cpu_runtimes_time_a_real_network(name):
    rt = get_runtime(name, RuntimeOptions(batch=2, resolution=32, threads=1))
    m = measure_arch(tiny_spec(), rt, FAST, energy=False)
    assert 0 < m.latency.min_ms <= m.latency.median_ms < 1000 and m.latency.n == 5
    assert m.energy_mj is None and m.energy_note == "energy not requested"


def test_torch_runtime_restores_the_thread_count():
    before = torch.get_num_threads()
    rt = get_runtime("torch-cpu", RuntimeOptions(threads=1))
    with rt.load(get_space("nb201", channels=4, cells_per_stage=1).build(tiny_spec())) as session:
        assert torch.get_num_threads() == 1
        session.run()
    assert torch.get_num_threads() == before


def test_unknown_and_unavailable_runtimes():
    with pytest.raises(RuntimeUnavailableError, match="unknown runtime 'tensorrt'; runtimes: ort-cpu"):
        get_runtime("tensorrt")
    reasons = available_runtimes()
    assert reasons["ort-cpu"] is None and reasons["torch-cpu"] is None
    if not torch.cuda.is_available():
        assert "CUDA" in reasons["torch-cuda"]
        with pytest.raises(RuntimeUnavailableError, match="not available here"):
            get_runtime("torch-cuda")
    with pytest.raises(MeasurementError):
        get_runtime("ort-cpu", RuntimeOptions(batch=0))


class _SyntheticSession(Session):
    def __init__(self, ms):
        self.ms = ms

    def run(self):
        return self.ms


class FlatThenLinear(Runtime):
    """Latency flat (1 ms) until the network has 1.6x the base mult-adds, then proportional: a GPU-like zone."""

    name = "synthetic"

    def __init__(self, base_madds):
        super().__init__(RuntimeOptions(resolution=32))
        self.base = base_madds

    @classmethod
    def unavailable_reason(cls):
        return None

    def load(self, model):
        madds = measure_costs(model, self.options.input_shape).mult_adds
        return _SyntheticSession(max(1.0, madds / (1.6 * self.base)))


def test_comfort_zone_finds_the_flat_range_and_plots(tmp_path):
    space = get_space("mbv2-cifar", width=0.25)
    spec = space.sample(seed=0)[0]
    base = measure_costs(space.build(spec), (1, 3, 32, 32)).mult_adds
    device = LocalDevice(FlatThenLinear(base), RuntimeOptions(resolution=32), FAST)
    report = comfort_zone(spec, device, [1.0, 1.1, 1.2, 1.5, 2.0])
    assert report.has_zone and report.zone_scale == 1.2  # 1.5x width = ~2x mult-adds: beyond the flat range
    assert [r["within_band"] for r in report.rows] == [True, True, True, False, False]
    intensities = [r["intensity"] for r in report.rows]
    assert intensities == sorted(intensities)  # Eq 3.20: wider is more intense
    png = plot_comfort(report, tmp_path / "zone.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_parse_scales():
    assert parse_scales("1:2:0.25") == [1.0, 1.25, 1.5, 1.75, 2.0]
    assert parse_scales("2,1,1.5") == [1.0, 1.5, 2.0]
    for bad in ("1:2", "0.5:0.9:0.1", "a,b", "1:2:0"):
        with pytest.raises(MeasurementError):
            parse_scales(bad)


def test_scale_width_of_each_space():
    assert get_space("mbv2-cifar").scale_width(1.5).config.width == 1.5
    assert get_space("fbnet", width=0.5).scale_width(2).config.width == 1.0
    assert get_space("nb201").scale_width(2).config.channels == 32
    with pytest.raises(SpaceConfigError):
        from edgenas.spaces._base import SearchSpace

        SearchSpace.scale_width(get_space("nb201"), 2)


def test_a_cell_whose_output_ignores_the_input_exports_and_measures(tmp_path):
    from edgenas.export import export_onnx

    space = get_space("nb201", channels=4, cells_per_stage=1)
    dead = space.parse("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")  # nothing reaches node 3
    result = export_onnx(space.build(dead), tmp_path / "dead.onnx", space.input_shape(1))
    assert result.rel_error <= 1e-4
    m = measure_arch(dead, get_runtime("ort-cpu", RuntimeOptions()), FAST, energy=False)
    assert m.latency.median_ms > 0
