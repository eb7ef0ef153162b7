"""Robust outlier detection: the modified z-score of Iglewicz and Hoaglin.

    M_i = 0.6745 (x_i - median) / MAD,   MAD = median(|x_i - median|)

and |M_i| > 3.5 marks an outlier (B. Iglewicz and D. C. Hoaglin, "How to Detect and Handle Outliers", ASQC Basic
References in Quality Control, vol. 16, 1993; also the NIST/SEMATECH e-Handbook of Statistical Methods, 1.3.5.17).
0.6745 is the 0.75 quantile of the standard normal, so M is comparable to an ordinary z-score for normal data.

When more than half the values are equal the MAD is 0 and M is undefined; we then use the mean absolute deviation
scaled by 1.253314 (= sqrt(pi/2), the MeanAD of a standard normal is sqrt(2/pi)), as IBM's SPSS documents for the
same case. When every value is equal, nothing is an outlier. "Equal" means equal up to floating-point rounding
(a spread below RELATIVE_NOISE of the largest value): a MAD of 2e-16 between 1.0 and 1.0000000000000002 would
otherwise divide real differences into scores of 1e15.

Pure: numbers in, numbers out.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Hashable, Sequence

THRESHOLD = 3.5
NORMAL_Q75 = 0.6745
MEAN_AD_SCALE = 1.253314
MIN_GROUP = 5  # fewer values than this and a median/MAD says too little; nothing is flagged
RELATIVE_NOISE = 1e-9


def modified_z_scores(values: Sequence[float]) -> list[float]:
    """The modified z-score of every value (0.0 for all when they are all equal)."""
    if not values:
        return []
    median = statistics.median(values)
    deviations = [abs(x - median) for x in values]
    mad = statistics.median(deviations)
    noise = RELATIVE_NOISE * max(abs(x) for x in values)
    if mad > noise:
        return [NORMAL_Q75 * (x - median) / mad for x in values]
    mean_ad = statistics.fmean(deviations)
    if mean_ad <= noise:
        return [0.0 for _ in values]
    return [(x - median) / (MEAN_AD_SCALE * mean_ad) for x in values]


def one_vote_each(values: Sequence[tuple[Hashable | None, float]]) -> list[float]:
    """A baseline one submitter cannot move: each submitter's runs reduced to their median, one value per submitter.
    Runs without a submitter (seeded from a source, or anonymous and then accepted by a moderator) count one each."""
    by_submitter: dict[Hashable, list[float]] = defaultdict(list)
    votes: list[float] = []
    for submitter, value in values:
        if submitter is None:
            votes.append(value)
        else:
            by_submitter[submitter].append(value)
    votes.extend(statistics.median(group) for group in by_submitter.values())
    return votes


def is_outlier(value: float, others: Sequence[float], *, threshold: float = THRESHOLD) -> tuple[bool, float | None]:
    """Whether `value` is an outlier among `others` plus itself; also its score (None when the group is too small)."""
    group = [*others, value]
    if len(group) < MIN_GROUP:
        return False, None
    score = modified_z_scores(group)[-1]
    return (abs(score) > threshold and math.isfinite(score)), score


def outlier_flags(values: Sequence[float], *, threshold: float = THRESHOLD) -> list[bool]:
    """Which values are outliers within their group (none when the group is smaller than MIN_GROUP)."""
    if len(values) < MIN_GROUP:
        return [False for _ in values]
    return [abs(z) > threshold for z in modified_z_scores(values)]
