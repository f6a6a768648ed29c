import numpy as np
import pytest

from edgenas.errors import MeasurementError
from edgenas.hardware.monotonic import compare_devices, group_devices, monotonicity


def test_exactly_proportional_devices():
    b = np.linspace(1, 10, 50)
    m = monotonicity(2.5 * b, b)
    assert m.gamma == pytest.approx(2.5) and m.r2 == pytest.approx(1.0)
    assert m.kendall_tau == pytest.approx(1.0) and m.spearman == pytest.approx(1.0) and m.n == 50


def test_noisy_and_reversed_devices():
    rng = np.random.default_rng(0)
    b = rng.uniform(1, 10, 500)
    noisy = monotonicity(3 * b * (1 + 0.05 * rng.standard_normal(500)), b)
    assert noisy.gamma == pytest.approx(3, rel=0.02) and 0.9 < noisy.r2 < 1 and 0.8 < noisy.kendall_tau < 1
    reversed_ = monotonicity(11 - b, b)
    assert reversed_.kendall_tau == pytest.approx(-1.0) and reversed_.r2 < 0  # a line through 0 cannot fit


def test_gamma_is_least_squares_through_the_origin():
    m = monotonicity([2.0, 4.0, 7.0], [1.0, 2.0, 3.0])
    assert m.gamma == pytest.approx((2 + 8 + 21) / (1 + 4 + 9))


def test_compare_devices_uses_common_archs_only():
    a = {("h", "x"): 1.0, ("h", "y"): 2.0, ("h", "z"): 3.0, ("h", "only-a"): 9.0}
    b = {("h", "x"): 2.0, ("h", "y"): 4.0, ("h", "z"): 6.0, ("other", "x"): 1.0}
    m = compare_devices(a, b)
    assert m.n == 3 and m.gamma == pytest.approx(0.5)
    with pytest.raises(MeasurementError, match="share 0 architectures"):
        compare_devices(a, {("other", "x"): 1.0})


def test_grouping_by_tau_threshold():
    tau = {("a", "b"): 0.95, ("a", "c"): 0.3, ("b", "c"): 0.4, ("c", "d"): 0.9, ("a", "d"): 0.2, ("b", "d"): 0.1}
    assert group_devices(["a", "b", "c", "d"], tau, 0.8) == [["a", "b"], ["c", "d"]]
    assert group_devices(["a", "b", "c", "d"], tau, 0.99) == [["a"], ["b"], ["c"], ["d"]]
    assert group_devices(["a", "b", "c"], tau, 0.0) == [["a", "b", "c"]]
