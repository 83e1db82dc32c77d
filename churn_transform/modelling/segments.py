"""Segments of subscribers: one definition, used by training, scoring and quality reports.

Each segment is a function of gold columns giving every user one readable label (``unknown``
where the column is null), so a metric "per segment" always means the same groups. The promotion
gate compares a candidate's ROC AUC with the champion's in every segment with enough users.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

UNKNOWN = "unknown"


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


def segment_metrics(gold: pd.DataFrame, label: np.ndarray, probability: np.ndarray) -> pd.DataFrame:
    """Per segment and value: users, churners, churn rate, mean probability and ROC AUC (NaN
    where the group holds one class only)."""
    labels = segment_labels(gold)
    frame = pd.DataFrame({"label": np.asarray(label), "p": np.asarray(probability)})
    rows = []
    for name in SEGMENTS:
        for value, group in frame.groupby(labels[name].to_numpy(), sort=True):
            both = group["label"].nunique() == 2
            rows.append(
                {
                    "segment": name,
                    "value": str(value),
                    "users": len(group),
                    "churners": int(group["label"].sum()),
                    "churn_rate": float(group["label"].mean()),
                    "mean_probability": float(group["p"].mean()),
                    "roc_auc": roc_auc_score(group["label"], group["p"]) if both else np.nan,
                }
            )
    return pd.DataFrame(rows)


def segment_regressions(
    candidate: pd.DataFrame, champion: pd.DataFrame, min_users: int, max_drop: float
) -> list[str]:
    """Segments of at least ``min_users`` users (and both classes) where the candidate's ROC AUC
    is more than ``max_drop`` below the champion's on the same users, each as a sentence."""
    both = candidate.merge(champion, on=["segment", "value"], suffixes=("", "_champion"))
    judged = both[(both["users"] >= min_users) & both["roc_auc"].notna()]
    worse = judged[judged["roc_auc"] < judged["roc_auc_champion"] - max_drop]
    return [
        f"{row.segment}={row.value} ({row.users:,} users): ROC AUC {row.roc_auc:.4f} is more "
        f"than {max_drop} below the champion's {row.roc_auc_champion:.4f}"
        for row in worse.itertuples()
    ]
