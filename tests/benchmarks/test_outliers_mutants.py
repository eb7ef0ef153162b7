"""Outlier rule edges the mutation run found untested (docs/testing.md). Expected values are worked by hand from
the rule in benchmarks/outliers.py's docstring (Iglewicz and Hoaglin's modified z-score), not from the code."""

from __future__ import annotations

from benchmarks import outliers


def test_it_flags_only_scores_strictly_above_the_threshold():
    # median 12, deviations 2 1 0 1 28 -> MAD 1; 11 and 13 score exactly 0.6745 * 1 / 1 = 0.6745, 10 scores 1.349.
    values = [10.0, 11.0, 12.0, 13.0, 40.0]
    assert outliers.outlier_flags(values, threshold=0.6745) == [True, False, False, False, True]
    flagged, score = outliers.is_outlier(13.0, [10.0, 11.0, 12.0, 40.0], threshold=0.6745)
    assert score == 0.6745 and flagged is False


def test_it_scores_an_all_zero_group_as_all_equal():
    # Every value equal (all 0): MAD 0 and mean absolute deviation 0, nothing to divide by, every score 0.
    assert outliers.modified_z_scores([0.0] * 5) == [0.0] * 5
    assert outliers.outlier_flags([0.0] * 6) == [False] * 6


def test_it_measures_rounding_noise_relative_to_the_largest_value():
    # Around 1e6 a spread of 3e-4 is 3e-10 of the largest value: below RELATIVE_NOISE (1e-9), so "equal".
    values = [1e6, 1e6, 1e6 + 1e-4, 1e6 + 2e-4, 1e6 + 3e-4]
    assert outliers.modified_z_scores(values) == [0.0] * 5


def test_it_gives_each_submitter_one_vote_at_their_median():
    runs = [("a", 10.0), ("a", 30.0), ("a", 20.0), (None, 5.0), (None, 7.0), ("b", 4.0), ("b", 6.0)]
    # Anonymous runs count one each (5, 7); a: median of 10 20 30 = 20; b: median of 4 and 6 = 5.
    assert outliers.one_vote_each(runs) == [5.0, 7.0, 20.0, 5.0]
    assert outliers.one_vote_each([]) == []
