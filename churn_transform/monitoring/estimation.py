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

from churn_transform.lake import Lake
from churn_transform.modelling.campaign import choose, monthly_price
from churn_transform.modelling.segments import SEGMENTS
from churn_transform.monitoring.predictions import BATCH, ESTIMATE, read_beside, write_beside
from churn_transform.monitoring.quality import ALL, metric_name


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
        """Strict JSON: a figure without a denominator (NaN) is written ``null``."""
        return json.dumps(_nulls(asdict(self)), indent=1, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> CohortEstimate:
        """The record ``to_json`` wrote; ``ValueError`` naming the field that is missing."""
        data = json.loads(text)
        try:
            segments = tuple(
                SegmentEstimate(s["segment"], s["value"], _figures(s["estimate"]))
                for s in data["segments"]
            )
            campaign = data["campaign"]
            return cls(
                cohort=data["cohort"],
                model_version=str(data["model_version"]),
                threshold=float(data["threshold"]),
                overall=_figures(data["overall"]),
                segments=segments,
                campaign=CampaignEstimate(**campaign) if campaign is not None else None,
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"an estimate record lacks or mistypes a field: {error}") from error


def _nulls(value: object) -> object:
    if isinstance(value, dict):
        return {k: _nulls(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nulls(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def _figures(data: dict[str, object]) -> PerformanceEstimate:
    return PerformanceEstimate(**{k: math.nan if v is None else v for k, v in data.items()})  # type: ignore[arg-type]


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


def estimate_scores(
    scores: pd.DataFrame,
    cohort: str,
    model_version: str,
    threshold: float,
    offer_cost: float,
    acceptance: float,
) -> CohortEstimate:
    """The record of one scoring: ``scores`` is ``monitoring.scoring.score``'s frame (the
    ``churn_probability``, a column per segment, the plan columns the campaign's value needs)."""
    probability = scores["churn_probability"].to_numpy(float)
    return CohortEstimate(
        cohort=cohort,
        model_version=str(model_version),
        threshold=float(threshold),
        overall=estimate_performance(probability, threshold),
        segments=estimate_segments(probability, threshold, scores[list(SEGMENTS)]),
        campaign=estimate_campaign(probability, monthly_price(scores), offer_cost, acceptance),
    )


def estimate_metrics(estimate: PerformanceEstimate) -> dict[str, float]:
    """The estimate's figures as run metrics, each named ``estimated_<figure>`` (NaN left out)."""
    named = {
        "roc_auc": estimate.roc_auc,
        "roc_auc_standard_error": estimate.roc_auc_standard_error,
        "precision": estimate.precision,
        "recall": estimate.recall,
        "positive_rate": estimate.expected_positive_rate,
    }
    return {f"estimated_{name}": v for name, v in named.items() if not math.isnan(v)}


def write_estimate(lake: Lake, run_id: str, estimate: CohortEstimate) -> str:
    """The scoring run's ``estimate.json``, beside its scores; its URL."""
    return write_beside(lake, estimate.cohort, run_id, ESTIMATE, estimate.to_json().encode())


def estimates(lake: Lake, cohort: str) -> list[CohortEstimate]:
    """Every scoring run's estimate of ``cohort``, oldest run first (a later estimate of the same
    model version replaces an earlier one, as its scores do); empty when none was made."""
    return [CohortEstimate.from_json(data.decode()) for data in read_beside(lake, cohort, ESTIMATE)]


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


def estimation_table(
    estimates: list[CohortEstimate], quality: pd.DataFrame, source: str = BATCH
) -> pd.DataFrame:
    """``estimation_errors`` of each model version's latest estimate (``estimates`` oldest
    first, as ``monitoring.predictions.estimates`` reads them) against ``quality``'s rows of
    that version and ``source`` (``realized_quality``'s table), with a ``model_version`` column;
    versions without realized rows are left out, and an empty frame says none had any."""
    latest = {estimate.model_version: estimate for estimate in estimates}
    parts = []
    for version, estimate in sorted(latest.items()):
        mine = quality[(quality["source"] == source) & (quality["model_version"] == version)]
        if not mine.empty:
            parts.append(estimation_errors(estimate, mine).assign(model_version=version))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def estimation_metrics(table: pd.DataFrame, source: str = BATCH) -> dict[str, float]:
    """The overall rows of ``estimation_table`` as run metrics, named as the quality run names
    its realized figures (``<source>.v<version>.estimated_roc_auc``, ``...estimation_error_...``);
    NaN left out."""
    if table.empty:
        return {}
    overall = table[table["segment"] == ALL]
    kinds = ("estimated", "estimation_error")
    names = [f"{kind}_{figure}" for figure in COMPARED for kind in kinds]
    return {
        metric_name(source, str(row["model_version"]), name): float(row[name])
        for row in overall.to_dict("records")
        for name in names
        if pd.notna(row[name])
    }
