"""The uplift model's promotion gate: judged on what the campaign observed, no oracle needed.

On the held-out users of a campaign (offered or control, and whether each churned), the
observed uplift curve says what targeting the top ``k`` by a score saved per cohort user: ``k``
times the control's churn rate among them minus the offered's, over the cohort (``curve[k]``;
an estimate of ``uplift.uplift_curve`` without the true effect; 0 while a group has nobody).
Users with tied scores share their mean, as in ``uplift.uplift_curve``, so a constant score
draws the random diagonal. The observed Qini is the area between that curve and the diagonal
(saves per user, not scaled by the best ranking, which only the oracle knows); above 0, the
score ranks the offer's savers first better than chance.

The gate (``decide``): a candidate serves only if the bootstrap 95% interval of its observed
Qini lies above 0, and, with a champion, only if its Qini on the same users is not below the
champion's by more than the margin. The outcome is the churn model's typed ``PromotionOutcome``
(``promotion.record`` keeps it as the run's ``promotion.json``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from churn_transform.modelling.promotion import Outcome, PromotionOutcome


def observed_uplift_curve(
    treated: np.ndarray, churned: np.ndarray, score: np.ndarray
) -> np.ndarray:
    """``curve[k]`` for ``k`` = 0..n: the observed saves per cohort user of targeting the top
    ``k`` users by ``score`` (highest first)."""
    treated, churned = np.asarray(treated, bool), np.asarray(churned, float)
    score = np.asarray(score, float)
    if not len(treated) == len(churned) == len(score):
        raise ValueError(
            f"{len(treated)} treated flags, {len(churned)} outcomes and {len(score)} scores"
        )
    if np.isnan(score).any():
        raise ValueError(f"{int(np.isnan(score).sum())} score(s) are NaN: no ranking of them")
    order = np.argsort(-score, kind="stable")
    _, starts, counts = np.unique(-score[order], return_index=True, return_counts=True)

    def shared(values: np.ndarray) -> np.ndarray:
        if not len(values):
            return np.zeros(1)
        sums = np.add.reduceat(values[order], starts)
        return np.concatenate([[0.0], np.cumsum(np.repeat(sums / counts, counts))])

    offered, control = shared(treated.astype(float)), shared((~treated).astype(float))
    churn_offered, churn_control = shared(churned * treated), shared(churned * ~treated)
    both = (offered > 1e-9) & (control > 1e-9)
    rate_gap = np.divide(
        churn_control, control, out=np.zeros_like(control), where=both
    ) - np.divide(churn_offered, offered, out=np.zeros_like(offered), where=both)
    targeted = np.arange(len(rate_gap), dtype=float)
    return np.where(both, rate_gap, 0.0) * targeted / max(len(score), 1)


def observed_uplift_auc(treated: np.ndarray, churned: np.ndarray, score: np.ndarray) -> float:
    """The area under ``observed_uplift_curve`` over the share targeted (0..1)."""
    curve = observed_uplift_curve(treated, churned, score)
    return float(np.trapezoid(curve, dx=1.0 / max(len(curve) - 1, 1)))


def observed_qini(treated: np.ndarray, churned: np.ndarray, score: np.ndarray) -> float:
    """The area between the observed uplift curve and random targeting's diagonal."""
    curve = observed_uplift_curve(treated, churned, score)
    return observed_uplift_auc(treated, churned, score) - float(curve[-1]) / 2


@dataclass(frozen=True)
class QiniEstimate:
    """An observed Qini on ``users`` held-out users and its bootstrap 95% interval."""

    value: float
    low: float
    high: float
    users: int

    def text(self) -> str:
        return (
            f"observed Qini {self.value:.5f} (95% interval {self.low:.5f} to {self.high:.5f}, "
            f"{self.users:,} held-out users)"
        )


def estimate(
    treated: np.ndarray, churned: np.ndarray, score: np.ndarray, draws: int = 200, seed: int = 0
) -> QiniEstimate:
    """``observed_qini`` and the 2.5th and 97.5th percentiles of it over ``draws`` bootstrap
    resamples of the users."""
    treated, churned, score = np.asarray(treated), np.asarray(churned), np.asarray(score)
    rng = np.random.default_rng(seed)
    resampled = [
        observed_qini(treated[pick], churned[pick], score[pick])
        for pick in (rng.integers(0, len(score), len(score)) for _ in range(draws))
    ]
    low, high = np.percentile(resampled, [2.5, 97.5]) if resampled else (np.nan, np.nan)
    return QiniEstimate(observed_qini(treated, churned, score), float(low), float(high), len(score))


@dataclass(frozen=True)
class UpliftGate:
    """How far below the champion's observed Qini (same users) a candidate may be and serve."""

    margin: float = 0.0


def decide(
    version: str,
    candidate: QiniEstimate,
    champion: tuple[str, QiniEstimate] | None,
    gate: UpliftGate,
    alias: str,
) -> PromotionOutcome:
    """Refused (``below_floor``) unless the interval of the candidate's observed Qini lies above
    0; else ``behind`` when the champion (its version and Qini on the same users) does better
    by more than the margin; else promoted."""
    held = None if champion is None else champion[0]
    if not candidate.low > 0:
        reason = f"{candidate.text()}: not surely above 0, no better than random targeting"
        return PromotionOutcome(Outcome.BELOW_FLOOR, version, alias, held, (reason,))
    if champion is not None and candidate.value < champion[1].value - gate.margin:
        note = f"candidate {candidate.text()}; champion's {champion[1].text()}"
        return PromotionOutcome(Outcome.BEHIND, version, alias, held, notes=(note,))
    notes = () if champion is None else (f"champion's {champion[1].text()}",)
    return PromotionOutcome(Outcome.PROMOTED, version, alias, held, notes=notes)
