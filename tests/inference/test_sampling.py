"""The demo's sampling (inference.engine: sample_next, _draw, nucleus and its histogram path): the tests mutation
testing asked for (issue 14, docs/testing.md).

Expected values are worked out by hand in each test from the definitions: softmax(l / T)_i = e^(l_i / T) / sum_j
e^(l_j / T); a draw by inverse CDF picks the first token whose cumulative weight exceeds u x total for a uniform u
in [0, 1); the nucleus (top-p) is the smallest set of most likely tokens whose probability reaches p. Where the draw
matters, the uniform number is the boundary: a generator that returns a fixed number (the random source, not our
code) is passed in, or a seeded numpy generator's first number is read and the expected token worked out from it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from inference.engine import _draw, _nucleus_by_histogram, nucleus, sample_next


class Fixed:
    """A random source whose next uniform number is `value` (the engine reads generator.random())."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _first_uniform(seed: int) -> float:
    return float(_rng(seed).random())


def _tensor(values, dtype=np.float32) -> np.ndarray:
    return np.array(values, dtype=dtype)


def _softmax(logits: np.ndarray) -> np.ndarray:
    probs = np.exp(logits - logits.max())
    return probs / probs.sum()


def _seed_with_uniform_between(low: float, high: float) -> int:
    """A seed whose generator's first uniform number lies in [low, high)."""
    for seed in range(10_000):
        if low <= _first_uniform(seed) < high:
            return seed
    raise AssertionError(f"no seed below 10,000 draws in [{low}, {high})")


# --- _draw: inverse CDF -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("u", "expected"),
    [
        # weights [1, 0, 3] (total 4, not normalised): cumulative [1, 1, 4]; point = u x 4.
        (0.0, 0),  # point 0: the first token whose cumulative weight exceeds 0 is token 0
        (0.2, 0),  # point 0.8 < 1
        (0.25, 2),  # point 1.0: token 0's cumulative is exactly 1, not above it; token 1 weighs 0: token 2
        (0.5, 2),  # point 2
        (0.999, 2),  # point 3.996 < 4
    ],
)
def test_it_draws_by_inverse_cdf_over_unnormalised_weights(u, expected):
    assert _draw(_tensor([1.0, 0.0, 3.0]), Fixed(u)) == expected


def test_it_never_draws_a_zero_weight_token_at_the_lower_edge():
    # cumulative [0, 0, 2, 2]: point 0 is not above token 0's or 1's cumulative 0, so token 2.
    assert _draw(_tensor([0.0, 0.0, 2.0, 0.0]), Fixed(0.0)) == 2


def test_it_keeps_the_draw_inside_the_vocabulary_at_the_upper_edge():
    # u = 1 (beyond random()'s [0, 1), as rounding of u x total can reach the total): no cumulative weight is above
    # the point, so the search returns len(weights); the draw is clamped to the last token, 3.
    assert _draw(_tensor([0.25, 0.25, 0.25, 0.25]), Fixed(1.0)) == 3


def test_it_draws_from_a_fresh_random_source_when_given_none():
    # weights [0, 1, 0]: whatever the number drawn, token 1 (the only one with weight).
    assert {_draw(_tensor([0.0, 1.0, 0.0]), None) for _ in range(20)} == {1}


def test_it_draws_from_the_generator_it_is_given():
    seed = _seed_with_uniform_between(0.5, 1.0)
    # weights [1, 1]: token 1 when u >= 0.5 (cumulative [1, 2], point = 2u >= 1).
    assert _draw(_tensor([1.0, 1.0]), _rng(seed)) == 1
    seed = _seed_with_uniform_between(0.0, 0.5)
    assert _draw(_tensor([1.0, 1.0]), _rng(seed)) == 0


# --- sample_next: temperature and top-p -------------------------------------------------------------------------------


def test_it_picks_the_largest_logit_at_temperature_zero_or_below():
    logits = _tensor([0.5, 3.0, -1.0, 2.9])
    assert sample_next(logits, temperature=0.0, top_p=1.0) == 1
    assert sample_next(logits, temperature=-1.0, top_p=0.5) == 1
    # half-precision logits in a batch of one: read as floats, flattened.
    assert sample_next(logits.astype(np.float16).reshape(1, 1, 4), temperature=0.0, top_p=1.0) == 1
    assert sample_next([[0.5, 3.0, -1.0, 2.9]], temperature=0.0, top_p=1.0) == 1


def test_it_divides_the_logits_by_the_temperature():
    # logits [0, ln 3]: at T = 1, p = [1/4, 3/4]; at T = 2, p = [1/(1 + sqrt 3), sqrt 3/(1 + sqrt 3)] = [0.366, 0.634];
    # at T = 0.5, p = [1/10, 9/10]. With u in [0.25, 0.366) the draw is token 1 at T = 1 and token 0 at T = 2
    # (point u < p0); with u in [0.1, 0.25) it is token 0 at T = 1 and token 1 at T = 0.5.
    logits = _tensor([0.0, math.log(3.0)])
    seed = _seed_with_uniform_between(0.26, 0.36)
    assert sample_next(logits, temperature=1.0, top_p=1.0, generator=_rng(seed)) == 1
    assert sample_next(logits, temperature=2.0, top_p=1.0, generator=_rng(seed)) == 0
    seed = _seed_with_uniform_between(0.11, 0.24)
    assert sample_next(logits, temperature=1.0, top_p=1.0, generator=_rng(seed)) == 0
    assert sample_next(logits, temperature=0.5, top_p=1.0, generator=_rng(seed)) == 1


def test_it_draws_over_the_whole_vocabulary_in_its_order_at_top_p_one():
    # p = [1/4, 3/4] in vocabulary order: u = 0.8 gives point 0.8 past token 0's cumulative 0.25: token 1.
    # Drawn over the nucleus instead (most likely first: [3/4 (token 1), 1/4 (token 0)]), u = 0.8 would be token 0.
    logits = _tensor([0.0, math.log(3.0)])
    seed = _seed_with_uniform_between(0.77, 0.99)
    assert sample_next(logits, temperature=1.0, top_p=1.0, generator=_rng(seed)) == 1


def test_it_draws_only_inside_the_nucleus_with_the_given_generator():
    # logits ln [4, 2, 1, 1] at T = 1: p = [0.5, 0.25, 0.125, 0.125]. top_p 0.7: 0.5 < 0.7 <= 0.75, so the nucleus
    # is {0, 1} with weights [0.5, 0.25] (total 0.75): u < 2/3 draws token 0, else token 1. Tokens 2 and 3 never.
    logits = np.log(_tensor([4.0, 2.0, 1.0, 1.0]))
    high = _seed_with_uniform_between(0.7, 0.99)
    low = _seed_with_uniform_between(0.0, 0.6)
    assert sample_next(logits, temperature=1.0, top_p=0.7, generator=_rng(high)) == 1
    assert sample_next(logits, temperature=1.0, top_p=0.7, generator=_rng(low)) == 0


def test_it_draws_the_nucleus_token_the_point_falls_on():
    # 100 tokens: p(token 7) = 0.6, p(token 42) = 0.3, the other 98 share 0.1. top_p 0.85: {7, 42} (0.6 < 0.85 <=
    # 0.9), weights [0.6, 0.3]: u = 0.9 gives point 0.81 past 0.6: token 42; u = 0.5 gives 0.45: token 7.
    probs = np.full(100, 0.1 / 98)
    probs[7], probs[42] = 0.6, 0.3
    logits = np.log(probs)
    assert sample_next(logits, temperature=1.0, top_p=0.85, generator=Fixed(0.9)) == 42
    assert sample_next(logits, temperature=1.0, top_p=0.85, generator=Fixed(0.5)) == 7


# --- nucleus: the smallest set that reaches top_p ---------------------------------------------------------------------


def _sorted_ids(tokens) -> list[int]:
    return sorted(int(t) for t in tokens)


def test_it_keeps_the_tokens_until_their_mass_reaches_top_p_exactly():
    # p = [0.5, 0.25, 0.15, 0.1] (0.5 and 0.25 exact in binary). top_p = 0.75: tokens 0 and 1 reach exactly 0.75,
    # so token 2 (whose predecessors already hold 0.75) is out. first_k = 3 takes the top-k path (3 < 4 tokens).
    probs = _tensor([0.5, 0.25, 0.15, 0.1])
    tokens, kept = nucleus(probs, 0.75, first_k=3)
    assert _sorted_ids(tokens) == [0, 1] and sorted(kept.tolist()) == [0.25, 0.5]
    tokens, _ = nucleus(probs, 0.7500001, first_k=3)  # just past 0.75: token 2 is needed too
    assert _sorted_ids(tokens) == [0, 1, 2]


def test_it_keeps_at_least_the_most_likely_token():
    probs = _tensor([0.1, 0.6, 0.3])
    for first_k in (2, 64):  # top-k path and histogram path
        tokens, kept = nucleus(probs, 0.0, first_k=first_k)
        assert tokens.tolist() == [1] and kept.tolist() == [pytest.approx(0.6)]


def test_it_returns_the_most_likely_first_on_the_top_k_path():
    probs = _tensor([0.05, 0.4, 0.15, 0.3, 0.1])
    tokens, kept = nucleus(probs, 0.8, first_k=4)
    # 0.4 + 0.3 = 0.7 < 0.8 <= 0.85: tokens 1, 3, 2 in that order.
    assert tokens.tolist() == [1, 3, 2]
    assert kept.tolist() == pytest.approx([0.4, 0.3, 0.15])


def test_it_widens_the_search_until_the_top_tokens_reach_top_p():
    # 1,000 tokens, 500 of them at 0.0019 (0.95 in all) and 500 at 0.0001 (0.05). top_p 0.9 needs 474 of the first
    # 500 (473 x 0.0019 = 0.8987 < 0.9 <= 474 x 0.0019 = 0.9006): more than first_k = 2, 16 or 128 holds, fewer
    # than 1,024 (k grows by 8: 2, 16, 128, 1024).
    probs = np.concatenate([np.full(500, 0.0019), np.full(500, 0.0001)])
    tokens, kept = nucleus(probs, 0.9, first_k=2)
    assert len(tokens) == 474 and all(int(t) < 500 for t in tokens)
    assert float(kept.sum()) == pytest.approx(474 * 0.0019)


def test_it_sums_in_double_for_a_top_p_past_float32s_resolution():
    # 10 tokens of 0.1 in float32 (0.1 is 0.100000001490116 there). top_p = 0.99999994 (1 - 2^-24, just under 1):
    # summed in float32 the first nine already round to >= it, summed in double they are 0.90000001 and all ten are
    # needed.
    probs = np.full(10, 0.1, dtype=np.float32)
    tokens, _ = nucleus(probs, 1 - 2**-24, first_k=4)
    assert len(tokens) == 10


# --- the histogram path, checked against a full sort written here -----------------------------------------------------


def _by_full_sort(probs, top_p) -> list[int]:
    order = np.argsort(-probs.astype(np.float64), kind="stable")
    ordered = probs[order].astype(np.float64)
    before = np.cumsum(ordered) - ordered
    keep = before < top_p
    keep[0] = True
    return sorted(int(t) for t in order[keep])


@pytest.mark.parametrize("top_p", [1e-9, 0.1, 0.5, 0.9, 0.999, 1.0])
@pytest.mark.parametrize("spread", [0.0, 0.3, 2.0, 8.0, 60.0])
def test_it_finds_the_same_set_from_a_histogram_as_from_a_full_sort(top_p, spread):
    logits = _rng(int(spread * 100) + int(top_p * 1000)).standard_normal(5_000) * spread
    probs = _softmax(logits).astype(np.float32)
    tokens, kept = _nucleus_by_histogram(probs, top_p)
    expected = _by_full_sort(probs, top_p)
    if len(set(probs.tolist())) == len(probs):  # no ties: exactly one smallest set
        assert _sorted_ids(tokens) == expected
    else:  # a flat distribution: the same number of tokens (which ones among equals is free)
        assert len(tokens) == len(expected)
    assert np.array_equal(kept, probs[tokens])


def test_it_puts_a_flat_distribution_in_one_bin_and_keeps_enough_of_it():
    # 8 equal tokens (1/8 each): top_p 0.3 needs 3 (2/8 = 0.25 < 0.3 <= 3/8). Every log-probability is equal, so the
    # histogram's width is zero and every token falls in one bin.
    probs = np.full(8, 0.125, dtype=np.float32)
    tokens, kept = _nucleus_by_histogram(probs, 0.3)
    assert len(tokens) == 3 and kept.tolist() == [0.125] * 3


def test_it_keeps_every_token_above_the_boundary_bin_and_sorts_only_that_bin():
    # p = [0.6, 0.3, 0.05, 0.03, 0.02]: top_p 0.92 needs 0.6 + 0.3 + 0.05 (0.9 < 0.92 <= 0.95): tokens {0, 1, 2}.
    probs = np.array([0.6, 0.3, 0.05, 0.03, 0.02])
    tokens, kept = _nucleus_by_histogram(probs, 0.92)
    assert _sorted_ids(tokens) == [0, 1, 2]
    assert sorted(kept.tolist(), reverse=True) == [0.6, 0.3, 0.05]
    tokens, _ = _nucleus_by_histogram(probs, 0.9)  # 0.6 + 0.3 reach 0.9 exactly (in double: 0.8999999999999999 < 0.9)
    assert _sorted_ids(tokens) == _by_full_sort(probs, 0.9)


def test_it_puts_tokens_far_below_the_best_in_the_lowest_bin():
    # One token at ~1, 99 at e^-200 of it (below the e^-80 floor of the histogram's range): top_p 0.5 is the best
    # token alone; top_p 1.0 needs every token (the best alone is 1 - 99 e^-200 < 1 in double? it rounds to 1.0, so
    # the full sort keeps only the best too).
    logits = np.concatenate([[0.0], np.full(99, -200.0)])
    probs = _softmax(logits)
    assert _sorted_ids(_nucleus_by_histogram(probs, 0.5)[0]) == [0]
    assert _sorted_ids(_nucleus_by_histogram(probs, 1.0)[0]) == _by_full_sort(probs, 1.0)
    # Two clusters: 10 tokens at e^-90 below the best and 10 at e^-100 (both under the floor) share the lowest bin,
    # where a full sort finishes the set.
    logits = np.concatenate([[0.0], np.full(10, -90.0), np.full(10, -100.0)])
    probs = _softmax(logits)
    top_p = float(probs[0] + 5 * probs[1])  # the best and five of the e^-90 ones reach it exactly
    assert _sorted_ids(_nucleus_by_histogram(probs, top_p)[0]) == _by_full_sort(probs, top_p)


def test_it_uses_the_histogram_for_a_nucleus_past_the_top_k_limit():
    # 8,192 equal tokens of 2^-13 (sums exact in binary): top_p 0.75 needs 6,144 = 0.75 x 8,192, past
    # NUCLEUS_TOPK_LIMIT (4,096), the most the top-k path looks at.
    probs = np.full(8_192, 2.0**-13)
    tokens, kept = nucleus(probs, 0.75, first_k=64)
    assert len(tokens) == 6_144 and len(set(tokens.tolist())) == 6_144
    assert float(kept.sum()) == 0.75


def test_it_widens_the_search_when_the_top_k_fall_short_of_top_p():
    # p = [0.5, 0.3, 0.2], top_p 0.85: the top two hold 0.8 < 0.85, so the third is needed too (0.8 < 0.85 <= 1).
    probs = _tensor([0.5, 0.3, 0.2])
    tokens, _ = nucleus(probs, 0.85, first_k=2)
    assert _sorted_ids(tokens) == [0, 1, 2]


def test_it_looks_at_the_single_most_likely_token_first_when_asked_to():
    # first_k = 1: the best token (0.7) alone reaches top_p 0.6.
    tokens, kept = nucleus(_tensor([0.1, 0.7, 0.2]), 0.6, first_k=1)
    assert tokens.tolist() == [1] and kept.tolist() == [pytest.approx(0.7)]


@pytest.mark.parametrize(
    "close",
    [
        (0.1985, 0.198, 0.1975),  # within 0.0195 nats of the best (ratios >= 0.9807): the best's own, top bin
        (0.195, 0.194, 0.193),  # 0.025 to 0.036 nats below it (ratios 0.975 to 0.965): the bin below the top one
    ],
)
def test_it_counts_the_mass_above_the_boundary_bin(close):
    # The best token (0.2), three close ones, 206 tokens of 0.001, and ten at e^-100 of the best (so the histogram's
    # range is the full 80 nats: 4,096 bins of 80 / 4,096 = 0.0195 nats). top_p 0.5: 0.2 + close[0] < 0.5 <= 0.2 +
    # close[0] + close[1] (0.3985 / 0.395 < 0.5 <= 0.5965 / 0.589): the best and the two most likely close ones.
    probs = np.array([0.2, *close] + [0.001] * 206 + [0.2 * math.exp(-100)] * 10)
    tokens, _ = _nucleus_by_histogram(probs, 0.5)
    assert _sorted_ids(tokens) == [0, 1, 2]


def test_it_returns_a_nucleus_of_up_to_4096_tokens_most_likely_first():
    # 5,000 tokens with distinct weights 5,000, 4,999, ..., 1 in a shuffled order; top_p 0.36 needs the ~1,000 best
    # (the best n hold (n x 5,000 - n(n - 1)/2) / 12,502,500 of the mass). The docstring promises them most
    # likely first, as a full sort orders them, for the k that grows 64, 512, 4,096 (past 512, up to the limit).
    weights = np.arange(5_000, 0, -1, dtype=np.float64)
    order = _rng(3).permutation(5_000)
    probs = np.empty(5_000)
    probs[order] = weights / weights.sum()  # token order[i] has the i-th largest probability
    tokens, kept = nucleus(probs, 0.36)
    assert len(tokens) == 1_001  # the 1,000 best hold 0.359968 < 0.36; with the 1,001st, 0.360288
    assert tokens.tolist() == order[:1_001].tolist()
    assert np.all(np.diff(kept) < 0)
