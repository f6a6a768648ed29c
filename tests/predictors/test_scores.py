import numpy as np
import pytest

from edgenas.errors import MeasurementError
from edgenas.predictors.scores import scores


def test_hand_made_errors():
    s = scores([1.09, 1.96, 3.0, 4.36], [1.0, 2.0, 3.0, 4.0])
    assert s["rmse"] == pytest.approx(np.sqrt((0.0081 + 0.0016 + 0 + 0.1296) / 4))
    assert s["mae"] == pytest.approx((0.09 + 0.04 + 0 + 0.36) / 4)
    assert s["mape"] == pytest.approx(100 * (0.09 + 0.02 + 0 + 0.09) / 4)
    assert s["within_5"] == pytest.approx(50.0)  # the two 9% errors are outside +-5%
    assert s["within_10"] == pytest.approx(100.0)
    assert s["kendall_tau"] == pytest.approx(1.0) and s["spearman"] == pytest.approx(1.0)


def test_rank_scores_with_ties():
    # predicted has a tie; tau-b: concordant 5, discordant 0, ties in x 1, n0 = 6 -> 5 / sqrt(6 * 5)
    s = scores([1.0, 2.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0])
    assert s["kendall_tau"] == pytest.approx(5 / np.sqrt(6 * 5))
    assert s["spearman"] == pytest.approx(np.corrcoef([1, 2.5, 2.5, 4], [1, 2, 3, 4])[0, 1])
    reversed_ = scores([4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0])
    assert reversed_["kendall_tau"] == pytest.approx(-1.0) and reversed_["spearman"] == pytest.approx(-1.0)


def test_constant_predictions_have_undefined_rank_scores():
    s = scores([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
    assert np.isnan(s["kendall_tau"]) and np.isnan(s["spearman"]) and s["mae"] == pytest.approx(2 / 3)


def test_bad_inputs():
    with pytest.raises(MeasurementError, match="2 predictions for 3"):
        scores([1, 2], [1, 2, 3])
    with pytest.raises(MeasurementError, match="positive"):
        scores([1, 2], [0, 2])
