from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks import outliers


def test_it_computes_the_modified_z_score_by_hand():
    values = [10.0, 11.0, 12.0, 13.0, 40.0]
    # median 12, deviations 2 1 0 1 28 -> MAD 1; z = 0.6745 * (x - 12) / 1
    assert outliers.modified_z_scores(values) == pytest.approx([-1.349, -0.6745, 0.0, 0.6745, 18.886])
    assert outliers.outlier_flags(values) == [False, False, False, False, True]


def test_it_flags_a_run_far_from_its_group_and_keeps_a_close_one():
    group = [50.0, 51.0, 49.5, 50.5]
    assert outliers.is_outlier(500.0, group)[0] is True
    flagged, score = outliers.is_outlier(51.2, group)
    assert flagged is False and score == pytest.approx(0.6745 * (51.2 - 50.5) / 0.5)


def test_it_flags_nothing_in_small_groups():
    assert outliers.is_outlier(1000.0, [1.0, 1.0, 1.0]) == (False, None)
    assert outliers.outlier_flags([1.0, 1000.0]) == [False, False]


def test_it_falls_back_to_the_mean_absolute_deviation_when_mad_is_zero():
    values = [50.0, 50.0, 50.0, 50.0, 80.0]
    scores = outliers.modified_z_scores(values)
    # MeanAD = 30 / 5 = 6; z = 30 / (1.253314 * 6)
    assert scores[-1] == pytest.approx(30 / (1.253314 * 6))
    assert outliers.outlier_flags(values)[-1] is True
    assert outliers.modified_z_scores([7.0] * 6) == [0.0] * 6


def test_it_treats_values_equal_up_to_rounding_as_equal():
    values = [1.0, 1.0, 2.0, 2.0, 1.0000000000000002]
    scores = outliers.modified_z_scores(values)
    # MAD is rounding noise, so the mean absolute deviation decides: (2e-16 * 2 + 1 * 2) / 5 = 0.4
    assert scores[2] == pytest.approx(1 / (1.253314 * 0.4))
    assert outliers.outlier_flags(values) == [False] * 5
    assert outliers.modified_z_scores([3.0, 3.0 + 4e-16, 3.0, 3.0, 3.0 - 4e-16]) == [0.0] * 5


@given(
    st.lists(st.floats(min_value=1, max_value=1e4), min_size=5, max_size=30), st.floats(min_value=0.1, max_value=100)
)
def test_it_does_not_depend_on_the_unit(values, scale):
    scaled = outliers.modified_z_scores([v * scale for v in values])
    assert scaled == pytest.approx(outliers.modified_z_scores(values), rel=1e-6, abs=1e-6)
