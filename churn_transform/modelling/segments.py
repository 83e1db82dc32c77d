"""Segments of subscribers: one definition, used by training, scoring and quality reports.

Each segment is a function of gold columns giving every user one readable label (``unknown``
where the column is null), so a metric "per segment" always means the same groups. Each group's
ROC AUC, calibration gap and recall at the campaign cut come with a bootstrap 95% interval
(``bootstrap``), so a small group's figure is read with its uncertainty instead of being hidden
below a number of users: the model card lists every group holding ``MATERIAL_SHARE`` of the
churners whatever its size, and the promotion gate refuses only on what an interval shows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from churn_transform.modelling.bootstrap import SEED, Interval, intervals

UNKNOWN = "unknown"
#: The row of ``segment_metrics`` covering every judged user (its calibration in the large).
COHORT = "cohort"
ALL = "all"
#: A group holding at least this share of the cohort's churners is where calibration matters:
#: the model card always lists it, and the gate's notes name it when it is surely off.
MATERIAL_SHARE = 0.10
#: The fewest churners, and the fewest stayers, a group needs for its ROC AUC interval to hold a
#: candidate back: with a handful, every resample can rank them alike and the interval shrinks
#: to a point (a group of 2 churners and 4 stayers, both churners ranked last: 0.0 to 0.0, an
#: order chance alone gives one time in 15).
MIN_CLASS = 10
#: The figures that come with an interval: columns ``<figure>``, ``<figure>_low``,
#: ``<figure>_high`` of ``segment_metrics``.
FIGURES = ("roc_auc", "calibration_gap", "recall")


def _code(column: str) -> Callable[[pd.DataFrame], pd.Series]:
    def label(gold: pd.DataFrame) -> pd.Series:
        values = pd.to_numeric(gold[column], errors="coerce")
        return values.map(lambda v: UNKNOWN if pd.isna(v) else str(int(v)))

    return label


def _bands(
    column: str, edges: list[float], names: list[str]
) -> Callable[[pd.DataFrame], pd.Series]:
    def label(gold: pd.DataFrame) -> pd.Series:
        values = pd.to_numeric(gold[column], errors="coerce")
        banded = pd.cut(values, edges, labels=names, right=False)
        return banded.astype(object).where(values.notna(), UNKNOWN).astype(str)

    return label


def _flag(column: str) -> Callable[[pd.DataFrame], pd.Series]:
    def label(gold: pd.DataFrame) -> pd.Series:
        values = pd.to_numeric(gold[column], errors="coerce")
        return values.map(lambda v: UNKNOWN if pd.isna(v) else ("on" if v == 1 else "off"))

    return label


def _gender(gold: pd.DataFrame) -> pd.Series:
    return gold["gender"].astype(object).where(gold["gender"].notna(), UNKNOWN).astype(str)


INF = np.inf
#: Segment name -> the function labelling every gold row.
SEGMENTS: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "payment_method": _code("last_payment_method_id"),
    "plan_length": _bands(
        "last_plan_days",
        [0, 30, 32, 90, INF],
        ["under 30 days", "30-31 days", "32-89 days", "90+ days"],
    ),
    "auto_renew": _flag("last_is_auto_renew"),
    "tenure_band": _bands(
        "tenure_days",
        [-INF, 90, 365, 730, INF],
        ["under 90 days", "90-364 days", "1-2 years", "2+ years"],
    ),
    "city": _code("city"),
    "gender": _gender,
    "age_band": _bands("bd", [-INF, 20, 30, 40, INF], ["under 20", "20-29", "30-39", "40+"]),
    "registration_channel": _code("registered_via"),
}


def segment_labels(gold: pd.DataFrame) -> pd.DataFrame:
    """One column per segment, one label per gold row (same index)."""
    return pd.DataFrame({name: label(gold) for name, label in SEGMENTS.items()}, index=gold.index)


def _cuts(gold: pd.DataFrame) -> dict[str, np.ndarray]:
    """The cohort as one group (``COHORT``, value ``ALL``), then every segment's labels."""
    labels = segment_labels(gold)
    return {COHORT: np.full(len(gold), ALL), **{n: labels[n].to_numpy() for n in SEGMENTS}}


def segment_metrics(
    gold: pd.DataFrame, label: np.ndarray, probability: np.ndarray, targeted: np.ndarray
) -> pd.DataFrame:
    """Per segment and value, the whole cohort first (``COHORT``=``ALL``): users, churners,
    their share of the cohort's churners, churn rate, mean probability, and ``FIGURES`` with
    their bootstrap intervals: ROC AUC (NaN where the group holds one class only), calibration
    gap (mean probability minus churn rate) and recall at the campaign cut (the share of the
    group's churners the campaign targets, ``targeted`` a boolean per user)."""
    label, probability = np.asarray(label).astype(int), np.asarray(probability, float)
    targeted = np.asarray(targeted, bool)
    churners = max(int(label.sum()), 1)
    rows = []
    for number, (name, cut) in enumerate(_cuts(gold).items()):
        groups = pd.Series(np.arange(len(label))).groupby(cut, sort=True)
        for value, index in groups:
            at = index.to_numpy()
            found = intervals(label[at], probability[at], targeted[at], seed=(SEED, number))
            rows.append(
                {
                    "segment": name,
                    "value": str(value),
                    "users": len(at),
                    "churners": int(label[at].sum()),
                    "churner_share": float(label[at].sum() / churners),
                    "churn_rate": float(label[at].mean()),
                    "mean_probability": float(probability[at].mean()),
                    **_columns(found),
                }
            )
    return pd.DataFrame(rows)


def _columns(found: dict[str, Interval]) -> dict[str, float]:
    return {
        f"{figure}{suffix}": getattr(found[figure], part)
        for figure in FIGURES
        for suffix, part in (("", "estimate"), ("_low", "low"), ("_high", "high"))
    }


def interval(row: object, figure: str) -> Interval:
    """The interval of ``figure`` on a row of ``segment_metrics`` (an ``itertuples`` row)."""
    return Interval(
        getattr(row, figure), getattr(row, f"{figure}_low"), getattr(row, f"{figure}_high")
    )


def material(segments: pd.DataFrame) -> pd.DataFrame:
    """The groups holding at least ``MATERIAL_SHARE`` of the cohort's churners."""
    if "churner_share" not in segments:  # no figures: a candidate judged without segments
        return segments.iloc[:0]
    return segments[segments["churner_share"] >= MATERIAL_SHARE]


def cohort_figures(segments: pd.DataFrame) -> dict[str, float]:
    """The whole cohort's row of ``segment_metrics`` as metrics to log: ``calibration_gap``,
    ``roc_auc`` and ``campaign_recall`` with their ``_low`` and ``_high`` bounds, and how many
    segments holding a tenth of the churners ``miscalibrated`` names
    (``miscalibrated_segments``)."""
    row = segments[(segments["segment"] == COHORT) & (segments["value"] == ALL)].iloc[0]
    names = {"roc_auc": "roc_auc", "calibration_gap": "calibration_gap"}
    names["recall"] = "campaign_recall"
    figures = {
        f"{names[figure]}{suffix}": float(row[f"{figure}{suffix}"])
        for figure in FIGURES
        for suffix in ("", "_low", "_high")
    }
    del figures["roc_auc"]  # logged already, from every judged user's probability alone
    named = _miscalibrated(segments)
    return {**figures, "miscalibrated_segments": float((named["segment"] != COHORT).sum())}


def segment_regressions(
    candidate: pd.DataFrame, champion: pd.DataFrame, max_drop: float
) -> list[str]:
    """Groups where the candidate's ROC AUC is surely more than ``max_drop`` below the
    champion's on the same users: its whole interval lies below the champion's ROC AUC less
    ``max_drop``, each as a sentence. A group too small to say so, whatever its point
    estimate, holds no one back: its interval is too wide, or it has fewer than ``MIN_CLASS``
    churners or stayers for the interval to be trusted."""
    both = candidate.merge(champion, on=["segment", "value"], suffixes=("", "_champion"))
    enough = (both["churners"] >= MIN_CLASS) & (both["users"] - both["churners"] >= MIN_CLASS)
    worse = both[enough & (both["roc_auc_high"] < both["roc_auc_champion"] - max_drop)]
    return [
        f"{row.segment}={row.value} ({row.users:,} users, {row.churners:,} churners): ROC AUC "
        f"{interval(row, 'roc_auc').text()} lies wholly more than {max_drop} below the "
        f"champion's {row.roc_auc_champion:.4f}"
        for row in worse.itertuples()
    ]


def below_floor(segments: pd.DataFrame, min_roc_auc: float) -> list[str]:
    """Groups holding ``MATERIAL_SHARE`` of the churners whose ROC AUC interval lies wholly at
    or below ``min_roc_auc``, the floor any model must clear overall, each as a sentence."""
    shown = material(segments)
    if shown.empty:
        return []
    return [
        f"{row.segment}={row.value} ({row.users:,} users, {row.churner_share:.0%} of the "
        f"churners): ROC AUC {interval(row, 'roc_auc').text()} lies wholly at or below the floor "
        f"of {min_roc_auc}"
        for row in shown[shown["roc_auc_high"] <= min_roc_auc].itertuples()
    ]


def _miscalibrated(segments: pd.DataFrame) -> pd.DataFrame:
    shown = material(segments)
    if shown.empty:
        return shown
    low, high = shown["calibration_gap_low"], shown["calibration_gap_high"]
    cohort = shown["segment"] == COHORT
    named = (low > 0) | (high < 0)
    overall = shown.loc[cohort, "calibration_gap"]
    if not overall.empty:  # a segment as far off as the cohort adds nothing to the cohort's line
        level = overall.iloc[0]
        named &= cohort | (low > level) | (high < level)
    off = shown[named]
    order = np.lexsort((-off["calibration_gap"].abs().to_numpy(), off["segment"] != COHORT))
    return off.iloc[order]


def miscalibrated(segments: pd.DataFrame) -> list[str]:
    """Where the model surely over- or under-predicts churn, which moves subscribers in or out
    of the campaign: the whole cohort when its calibration gap interval excludes zero, then, by
    the size of their gap, the segments holding ``MATERIAL_SHARE`` of the churners whose gap
    interval excludes zero and the cohort's gap too (where the error sits, not every segment a
    cohort-wide error touches); each as a sentence naming the gap and the recall at the
    campaign cut."""
    return [
        f"{row.segment}={row.value} ({row.users:,} users, {row.churners:,} churners, "
        f"{row.churner_share:.0%} of them) is {_direction(interval(row, 'calibration_gap'))}-"
        f"predicted: mean probability {row.mean_probability:.1%} against {row.churn_rate:.1%} "
        f"churned, gap {interval(row, 'calibration_gap').text(percent=True, signed=True)}; recall "
        f"at the campaign cut {interval(row, 'recall').text(percent=True)}"
        for row in _miscalibrated(segments).itertuples()
    ]


def _direction(gap: Interval) -> str:
    return "under" if gap.estimate < 0 else "over"
