"""Realized quality: how the predictions made for a cohort did, once the cohort's labels arrived.

The predictions come from two places, each carrying the model version that made them: the
batch scores of the ``score`` step and the service's traffic log. Joined with the labels by
``msno`` (a user asked about several times counts once per source and version: the last
answer), they give, per source and model version, overall and per segment: ROC AUC, log loss,
expected calibration error, the share decided "churn", and precision and recall of that
decision; on synthetic data the oracle's AUC and log loss on the same users stand beside them.

The overall figures become metrics of the ``quality`` run (``reported_metrics``) and are read back
from them (``realized_figures``, which the monthly cycle's policy takes as its evidence): their
names are made here only.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score

from churn_transform.monitoring.predictions import BATCH

#: The figures of one group of predictions, in the order the tables show them.
FIGURES = (
    "users",
    "churn_rate",
    "roc_auc",
    "log_loss",
    "calibration_error",
    "decision_rate",
    "precision",
    "recall",
    "oracle_roc_auc",
    "oracle_log_loss",
)
#: The segment value of the rows covering a whole group.
ALL = "all"
#: The overall figures logged as metrics of the quality run (and pushed to Prometheus).
REPORTED = (
    "roc_auc",
    "log_loss",
    "calibration_error",
    "precision",
    "recall",
    "decision_rate",
    "oracle_roc_auc",
)


def calibration_error(labels: np.ndarray, probability: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the users-weighted mean gap between the mean probability and
    the churn rate within ``bins`` equal-width probability bins."""
    which = np.minimum((probability * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(which):
        inside = which == b
        total += inside.sum() * abs(probability[inside].mean() - labels[inside].mean())
    return float(total / len(labels)) if len(labels) else float("nan")


def figures(
    labels: np.ndarray,
    probability: np.ndarray,
    decision: np.ndarray,
    oracle: np.ndarray | None = None,
) -> dict[str, float]:
    """The FIGURES of one group; AUCs are NaN where the group holds one class only."""
    both = len(np.unique(labels)) == 2
    decided = decision.sum()
    churned = labels.sum()
    found = (decision & (labels == 1)).sum()
    clipped = np.clip(probability, 1e-15, 1 - 1e-15)
    result = {
        "users": float(len(labels)),
        "churn_rate": float(labels.mean()),
        "roc_auc": float(roc_auc_score(labels, probability)) if both else float("nan"),
        "log_loss": float(log_loss(labels, clipped, labels=[0, 1])),
        "calibration_error": calibration_error(labels, probability),
        "decision_rate": float(decision.mean()),
        "precision": float(found / decided) if decided else float("nan"),
        "recall": float(found / churned) if churned else float("nan"),
        "oracle_roc_auc": float("nan"),
        "oracle_log_loss": float("nan"),
    }
    if oracle is not None and not np.isnan(oracle).any():
        result["oracle_roc_auc"] = float(roc_auc_score(labels, oracle)) if both else float("nan")
        result["oracle_log_loss"] = float(
            log_loss(labels, np.clip(oracle, 1e-15, 1 - 1e-15), labels=[0, 1])
        )
    return result


def realized_quality(
    predictions: pd.DataFrame,
    labels: pd.Series,
    segments: pd.DataFrame | None = None,
    oracle: pd.Series | None = None,
    min_users: int = 1,
) -> pd.DataFrame:
    """One row per source, model version, segment and segment value, with the FIGURES.

    ``predictions``: ``msno``, ``churn_probability``, ``churn`` (the decision as answered),
    ``model_version``, ``source`` and optionally ``ts`` (the order of repeated answers).
    ``labels``: the cohort's known ``is_churn`` by ``msno``. ``segments``: a column per segment
    (its value for each user) by ``msno``. ``oracle``: the oracle's probability by ``msno``.
    Segment values with fewer than ``min_users`` labelled users are left out (the whole cohort,
    ``ALL``, never is: the policy's evidence must not vanish with a small cohort); so are users
    without a label. Raises ``ValueError`` naming a missing column.
    """
    needed = {"msno", "churn_probability", "churn", "model_version", "source"}
    if missing := needed - set(predictions.columns):
        raise ValueError(f"predictions lack the column(s) {sorted(missing)}")
    if "ts" in predictions:
        predictions = predictions.sort_values("ts", kind="stable")
    latest = predictions.drop_duplicates(["source", "model_version", "msno"], keep="last")
    joined = latest.join(labels.rename("_label").astype(int), on="msno", how="inner")
    if segments is not None:
        joined = joined.join(segments, on="msno")
    if oracle is not None:
        joined = joined.join(oracle.rename("_oracle"), on="msno")
    rows = []
    for (source, version), group in joined.groupby(["source", "model_version"], sort=True):
        cuts = [(ALL, pd.Series(ALL, index=group.index))]
        cuts += [
            (name, group[name].astype(str))
            for name in (segments.columns if segments is not None else [])
        ]
        for segment, values in cuts:
            for value, part in group.groupby(values, sort=True):
                if segment != ALL and len(part) < min_users:
                    continue
                found = figures(
                    part["_label"].to_numpy(),
                    part["churn_probability"].to_numpy(dtype=float),
                    part["churn"].to_numpy(dtype=bool),
                    part["_oracle"].to_numpy(dtype=float) if oracle is not None else None,
                )
                rows.append(
                    {
                        "source": source,
                        "model_version": str(version),
                        "segment": segment,
                        "value": str(value),
                        **found,
                    }
                )
    columns = ["source", "model_version", "segment", "value", *FIGURES]
    return pd.DataFrame(rows, columns=columns)


def metric_name(source: str, version: str, figure: str) -> str:
    """The run metric of one figure of one source's predictions by one model version."""
    return f"{source}.v{version}.{figure}"


def reported_metrics(quality: pd.DataFrame) -> dict[str, float]:
    """The REPORTED figures of ``quality``'s overall rows (one per source and model version) as
    run metrics; those not measured (NaN: one class only, no oracle) are left out."""
    overall = quality[quality["segment"] == ALL]
    return {
        metric_name(str(row.source), str(row.model_version), name): getattr(row, name)
        for row in overall.itertuples()
        for name in REPORTED
        if pd.notna(getattr(row, name))
    }


def realized_figures(
    metrics: Mapping[str, float], version: str, source: str = BATCH
) -> dict[str, float]:
    """Model ``version``'s REPORTED figures that a quality run measured (its ``metrics``, as
    ``reported_metrics`` named them) for ``source``: empty if it made no prediction there."""
    found = {name: metrics.get(metric_name(source, version, name)) for name in REPORTED}
    return {name: value for name, value in found.items() if value is not None}
