"""Bootstrap 95% intervals of what a judged group of users says about a model: ROC AUC, the
calibration gap (mean predicted probability minus the observed churn rate) and recall at the
campaign cut, so that a figure from 451 users is read with the uncertainty 451 users carry.

Resamples are drawn by label: each resample keeps the group's numbers of churners and of
stayers, so ROC AUC and recall, which condition on the label, are defined in every resample and
vary only as the users drawn do. The calibration gap also depends on how many churners a
resample holds: its number of churners is drawn from the binomial an unstratified resample of
the group would give, and the means of the probability among the churners and the stayers drawn
are weighted by it. Intervals are percentiles of ``RESAMPLES`` resamples, seeded, so a card and
a gate decision come out the same every time. A resample is a matrix of counts (how often each
user is drawn), at most ``BLOCK`` numbers at a time, and every figure is a product or a
cumulative sum over it: no Python loop over resamples (benchmarks/README.md has the cost).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Resamples per interval: the 2.5% and 97.5% percentiles move by well under a tenth of the
#: interval's width from one seed to another at 1,000.
RESAMPLES = 1000
LEVEL = 0.95
SEED = 33
#: Counts held at once (resamples x users of one label), about 32 MB of int64.
BLOCK = 1 << 22


@dataclass(frozen=True)
class Interval:
    """A figure and its bootstrap interval (NaN throughout where the group cannot give it)."""

    estimate: float
    low: float
    high: float

    def text(self, percent: bool = False, signed: bool = False) -> str:
        """``0.7412 (0.6903 to 0.7894)``; as percentage points with ``percent``."""
        scale, unit = (100.0, " pp" if signed else "%") if percent else (1.0, "")
        form = "+.1f" if signed else (".1f" if percent else ".4f")
        if np.isnan(self.estimate):
            return "n/a"
        low, high = (format(v * scale, form) for v in (self.low, self.high))
        return f"{self.estimate * scale:{form}}{unit} ({low} to {high})"

    def below(self, value: float) -> bool:
        """Whether the whole interval lies below ``value``."""
        return bool(self.high < value)

    def above(self, value: float) -> bool:
        """Whether the whole interval lies above ``value``."""
        return bool(self.low > value)


def _counts(size: int, rows: int, rng: np.random.Generator) -> np.ndarray:
    """``rows`` resamples of ``size`` users: how often each user is drawn (each row sums to
    ``size``)."""
    if size == 0:
        return np.zeros((rows, 0))
    drawn = rng.integers(0, size, (rows, size), dtype=np.int32)
    drawn += size * np.arange(rows, dtype=np.int32)[:, None]
    counts = np.bincount(drawn.ravel(), minlength=rows * size).reshape(rows, size)
    return counts.astype(np.float64)  # for BLAS products and cumulative sums


def _auc(positive: np.ndarray, negative: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """ROC AUC of each resample from its counts of churners and of stayers (sorted by
    probability): each churner drawn counts the stayers drawn below it, and half those tied."""
    below = np.zeros((negative.shape[0], negative.shape[1] + 1))
    np.cumsum(negative, axis=1, out=below[:, 1:])
    wins = below[:, lo] + 0.5 * (below[:, hi] - below[:, lo])
    return (positive * wins).sum(axis=1) / (positive.shape[1] * negative.shape[1])


def _percentiles(values: np.ndarray) -> tuple[float, float]:
    tail = 50 * (1 - LEVEL)
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def intervals(
    label: np.ndarray,
    probability: np.ndarray,
    targeted: np.ndarray,
    seed: int | tuple[int, ...] = SEED,
    resamples: int = RESAMPLES,
) -> dict[str, Interval]:
    """``roc_auc``, ``calibration_gap`` and ``recall`` (the share of churners the campaign
    targets, ``targeted`` a boolean per user) of one group, each with its interval."""
    churned = np.asarray(label).astype(bool)
    probability, targeted = np.asarray(probability, float), np.asarray(targeted, bool)
    stayers = np.sort(probability[~churned])
    churners, reached = probability[churned], targeted[churned].astype(float)
    users, n1, n0 = len(churned), len(churners), len(stayers)
    if users == 0:
        nan = Interval(np.nan, np.nan, np.nan)
        return {"roc_auc": nan, "calibration_gap": nan, "recall": nan}
    lo = np.searchsorted(stayers, churners, side="left")
    hi = np.searchsorted(stayers, churners, side="right")
    rng = np.random.default_rng(seed)
    auc, recall, gap = [], [], []
    step = max(1, BLOCK // max(n0, n1, 1))
    for start in range(0, resamples, step):
        rows = min(step, resamples - start)
        positive, negative = _counts(n1, rows, rng), _counts(n0, rows, rng)
        drawn_churners = rng.binomial(users, n1 / users, rows)
        mean1 = positive @ churners / n1 if n1 else np.zeros(rows)
        mean0 = negative @ stayers / n0 if n0 else np.zeros(rows)
        gap.append((drawn_churners * (mean1 - 1) + (users - drawn_churners) * mean0) / users)
        if n1:
            recall.append(positive @ reached / n1)
        if n1 and n0:
            auc.append(_auc(positive, negative, lo, hi))
    point_auc = _auc(np.ones((1, n1)), np.ones((1, n0)), lo, hi)[0] if n1 and n0 else np.nan
    estimates = {
        "roc_auc": (point_auc, auc),
        "calibration_gap": (probability.mean() - churned.mean(), gap),
        "recall": (reached.mean() if n1 else np.nan, recall),
    }
    return {
        name: Interval(float(value), *_percentiles(np.concatenate(draws)))
        if draws
        else Interval(np.nan, np.nan, np.nan)
        for name, (value, draws) in estimates.items()
    }
