"""Performance estimated before the labels: confidence-based performance estimation (CBPE).

A cohort's labels arrive 30 days and more after it is scored. CBPE (NannyML's method: the
"Confidence-based Performance Estimation" page of docs.nannyml.org, and
``nannyml/performance_estimation/confidence_based/metrics.py``) reads a calibrated probability
``p`` as the chance that the user churns, so each user adds ``p`` to the expected positives and
``1 - p`` to the expected negatives of whatever cell of the confusion matrix the decision
``p >= threshold`` puts them in. Precision and recall are ratios of those expected counts; the
ROC AUC is the area under the curve of expected true and false positive rates over every
threshold (NannyML's ``estimate_roc_auc``; here tied probabilities share one point of the curve,
as scikit-learn's ``roc_curve`` has them, where NannyML's sort orders ties arbitrarily).

The method needs only the probabilities, so it runs on real KKBox cohorts as on synthetic ones.
Its assumption is the model's calibration on the cohort: it sees a shift of who the users are
(their probabilities move), not a change in how churn follows from the features (concept
shift), under which the probabilities keep their values and the estimate keeps its level.
The standard errors say how far a realized figure may fall from a correct estimate by chance
alone (the labels drawn Bernoulli(p), independently: the delta method on each figure as a
function of the labels), so an error beyond a few of them is the model's, not luck.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from churn_transform.modelling.campaign import choose
from churn_transform.monitoring.quality import ALL


@dataclass(frozen=True)
class PerformanceEstimate:
    """Figures of one group of users expected from their probabilities alone.

    ``expected_positive_rate`` is the expected share of churners (the mean probability);
    ``decision_rate`` the share decided "churn". The expected confusion matrix (``true_positives``
    ... ``true_negatives``) sums to ``rows``. A figure whose denominator is zero is NaN.
    """

    rows: int
    roc_auc: float
    precision: float
    recall: float
    expected_positive_rate: float
    decision_rate: float
    true_positives: float
    false_positives: float
    false_negatives: float
    true_negatives: float
    roc_auc_standard_error: float
    precision_standard_error: float
    recall_standard_error: float


@dataclass(frozen=True)
class SegmentEstimate:
    """The estimate of the users of one value of one segment (``modelling.segments``)."""

    segment: str
    value: str
    estimate: PerformanceEstimate


@dataclass(frozen=True)
class CampaignEstimate:
    """The campaign ``modelling.campaign.choose`` picks from the probabilities: its size, the
    probability of its last user and its expected net value (the same rules as the list's)."""

    size: int
    cut: float
    expected_value: float


@dataclass(frozen=True)
class CohortEstimate:
    """What one model version's scores of a cohort let one expect: the record stored beside
    the predictions (``monitoring.predictions``) and read back when the labels land."""

    cohort: str
    model_version: str
    threshold: float
    overall: PerformanceEstimate
    segments: tuple[SegmentEstimate, ...]
    campaign: CampaignEstimate | None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, allow_nan=True)

    @classmethod
    def from_json(cls, text: str) -> CohortEstimate:
        """The record ``to_json`` wrote; ``ValueError`` naming the field that is missing."""
        data = json.loads(text)
        try:
            segments = tuple(
                SegmentEstimate(s["segment"], s["value"], PerformanceEstimate(**s["estimate"]))
                for s in data["segments"]
            )
            campaign = data["campaign"]
            return cls(
                cohort=data["cohort"],
                model_version=str(data["model_version"]),
                threshold=float(data["threshold"]),
                overall=PerformanceEstimate(**data["overall"]),
                segments=segments,
                campaign=CampaignEstimate(**campaign) if campaign is not None else None,
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"an estimate record lacks or mistypes a field: {error}") from error


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def estimated_roc_auc(probabilities: np.ndarray) -> float:
    """The area under the ROC curve of expected true and false positive rates (NaN when the
    probabilities expect no churner or no stayer)."""
    order = np.argsort(-probabilities, kind="stable")
    ranked = probabilities[order]
    # the last user of each run of tied probabilities: one point of the curve per distinct value
    ends = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]
    positives = np.r_[0.0, np.cumsum(ranked)[ends]]
    negatives = np.r_[0.0, np.cumsum(1.0 - ranked)[ends]]
    if positives[-1] <= 0 or negatives[-1] <= 0:
        return math.nan
    tpr, fpr = positives / positives[-1], negatives / negatives[-1]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def _auc_standard_error(p: np.ndarray, auc: float) -> float:
    """The spread of the realized ROC AUC when each label is drawn Bernoulli(p): the AUC as a
    function of the labels, linearised at their expectations (the delta method; DeLong's
    placements with expected counts), each label's variance p (1 - p)."""
    positives, negatives = float(p.sum()), float((1 - p).sum())
    if math.isnan(auc) or positives <= 0 or negatives <= 0:
        return math.nan
    _, which = np.unique(p, return_inverse=True)
    churn, stay = np.bincount(which, weights=p), np.bincount(which, weights=1 - p)
    # per user: the expected stayers ranked below and churners ranked above (ties count half)
    stayers_below = (np.cumsum(stay) - stay / 2)[which]
    churners_above = (positives - np.cumsum(churn) + churn / 2)[which]
    # d(pairs ranked right)/dy - AUC * d(positives * negatives)/dy, over positives * negatives
    slope = (stayers_below - churners_above - auc * (negatives - positives)) / (
        positives * negatives
    )
    return math.sqrt(float(np.sum(p * (1 - p) * slope**2)))


def estimate_performance(probabilities: np.ndarray, threshold: float) -> PerformanceEstimate:
    """The CBPE figures of users with these calibrated churn ``probabilities``, decided "churn"
    where the probability reaches the served ``threshold``. ``ValueError`` for probabilities
    outside [0, 1] or missing (naming how many)."""
    p = np.asarray(probabilities, dtype=float)
    if bad := int(np.sum(~((p >= 0) & (p <= 1)))):
        raise ValueError(f"{bad} of {len(p)} probabilities are missing or outside [0, 1]")
    decided = p >= threshold
    tp, fp = float(p[decided].sum()), float((1 - p[decided]).sum())
    fn, tn = float(p[~decided].sum()), float((1 - p[~decided]).sum())
    # labels Bernoulli(p), independent: the variance of the true positives among the decided
    # and of the churners among the others
    var_tp = float(np.sum(p[decided] * (1 - p[decided])))
    var_fn = float(np.sum(p[~decided] * (1 - p[~decided])))
    churners = tp + fn
    recall_variance = (fn**2 * var_tp + tp**2 * var_fn) / churners**4 if churners > 0 else math.nan
    auc = estimated_roc_auc(p) if len(p) else math.nan
    return PerformanceEstimate(
        rows=len(p),
        roc_auc=auc,
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, churners),
        expected_positive_rate=_ratio(churners, len(p)),
        decision_rate=_ratio(float(decided.sum()), len(p)),
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
        true_negatives=tn,
        roc_auc_standard_error=_auc_standard_error(p, auc),
        precision_standard_error=_ratio(math.sqrt(var_tp), float(decided.sum())),
        recall_standard_error=math.sqrt(recall_variance),
    )


def estimate_segments(
    probabilities: np.ndarray, threshold: float, segments: pd.DataFrame, min_users: int = 1
) -> tuple[SegmentEstimate, ...]:
    """The estimate of every segment value of at least ``min_users`` users. ``segments``: one
    column per segment, a value per user in the order of ``probabilities``
    (``modelling.segments.segment_labels``)."""
    if len(segments) != len(probabilities):
        raise ValueError(
            f"segments has {len(segments)} rows for {len(probabilities)} probabilities"
        )
    p = np.asarray(probabilities, dtype=float)
    found = []
    for name in segments.columns:
        values = segments[name].astype(str).to_numpy()
        for value in sorted(set(values)):
            inside = values == value
            if inside.sum() >= min_users:
                found.append(
                    SegmentEstimate(name, value, estimate_performance(p[inside], threshold))
                )
    return tuple(found)


def estimate_campaign(
    probabilities: np.ndarray, monthly: np.ndarray, offer_cost: float, acceptance: float
) -> CampaignEstimate:
    """The campaign of greatest expected value (``modelling.campaign.choose``), as estimated."""
    _, choice = choose(np.asarray(probabilities, dtype=float), monthly, offer_cost, acceptance)
    return CampaignEstimate(choice.size, choice.cut, choice.expected_value)


#: The figures compared once the labels land: estimated against realized (``monitoring.quality``).
COMPARED = ("roc_auc", "precision", "recall")


def estimation_errors(estimate: CohortEstimate, realized: pd.DataFrame) -> pd.DataFrame:
    """Per segment value (``segment`` ``ALL``: the cohort) the estimated, realized and, where
    ``realized`` has it, the oracle's figures, and the error ``realized - estimated`` of each of
    ``COMPARED``. ``realized``: ``monitoring.quality.realized_quality``'s rows of the estimate's
    model version and source (``segment``, ``value``, the figures, ``oracle_roc_auc``)."""
    estimated = [(ALL, ALL, estimate.overall)] + [
        (s.segment, s.value, s.estimate) for s in estimate.segments
    ]
    measured = {(str(r["segment"]), str(r["value"])): r for r in realized.to_dict("records")}
    rows = []
    for segment, value, figures in estimated:
        if (found := measured.get((segment, value))) is None:
            continue
        row: dict[str, object] = {"segment": segment, "value": value, "users": figures.rows}
        for name in COMPARED:
            row[f"estimated_{name}"] = getattr(figures, name)
            row[f"realized_{name}"] = float(found[name])
            row[f"estimation_error_{name}"] = float(found[name]) - getattr(figures, name)
        row["roc_auc_standard_error"] = figures.roc_auc_standard_error
        row["oracle_roc_auc"] = float(found.get("oracle_roc_auc", math.nan))
        rows.append(row)
    return pd.DataFrame(rows)
