"""What a drifted feature does to the served model's performance, estimated before the labels.

For each feature, the window is scored twice with the model that served it: as it is, and with
that one feature's distribution put back to the reference's, every other column untouched. The
feature's distribution is put back by quantile mapping: the subscriber at rank ``r`` of ``n`` in
the window takes the reference's value at the same quantile ``(r + 1/2) / n``. Each subscriber
keeps their rank, so the feature's ties with the others (a heavy listener stays among the heavy
listeners) are kept, and only its distribution changes; drawing reference values at random would
pair them with other columns' values no subscriber has. A missing value is a value: it sorts
last on both sides, so the reference's share of nulls comes back with it.

Both scorings are read with confidence-based performance estimation
(``monitoring.estimation``): the feature's effect is how far each estimated figure (ROC AUC,
precision and recall at the served threshold) moved because of it, and its size the largest
of the three moves: a shift that leaves the ranking alone but fills the contact list with
stayers moves precision, not the ROC AUC. The effects are not additive (features interact in
the model); they rank the features, they do not split the total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from churn_transform.monitoring.estimation import PerformanceEstimate, estimate_performance
from churn_transform.schema import FEATURES

#: The estimated figures a feature's effect is read on.
FIGURES = ("roc_auc", "precision", "recall")


class Scorer(Protocol):
    """The served model, as far as this module needs it (``ChurnModel`` is one)."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray: ...


@dataclass(frozen=True)
class Effect:
    """The estimated figures of the window minus those with ``column``'s reference distribution
    put back (positive: the drift raised the figure); ``size`` is the largest move, unsigned."""

    column: str
    roc_auc: float
    precision: float
    recall: float

    @property
    def size(self) -> float:
        moves = [abs(getattr(self, name)) for name in FIGURES]
        return max((m for m in moves if not math.isnan(m)), default=0.0)


def restored(current: pd.Series, reference: pd.Series) -> pd.Series:
    """``current`` with the reference's distribution: each value replaced by the reference's
    value at the same quantile (ties ranked in order of appearance, nulls last). Numbers stay
    floats; anything else (``gender``) becomes objects with None for a null, as records hold."""
    if reference.empty:
        raise ValueError(f"no reference value of {current.name!r} to restore")
    ranks = current.rank(method="first", na_option="bottom").to_numpy() - 1
    ordered = reference.sort_values(na_position="last", kind="stable")
    picks = ((ranks + 0.5) / len(current) * len(ordered)).astype(int)
    if pd.api.types.is_numeric_dtype(ordered):
        numbers = ordered.to_numpy(dtype="float64", na_value=np.nan)[picks]
        return pd.Series(numbers, index=current.index, name=current.name)
    values = ordered.astype(object).to_numpy()[picks]
    return pd.Series(values, index=current.index, name=current.name).where(pd.notna(values), None)


def estimate(model: Scorer, rows: pd.DataFrame, threshold: float) -> PerformanceEstimate:
    """The CBPE figures of ``model``'s probabilities for ``rows`` at ``threshold``."""
    return estimate_performance(model.predict_proba(rows[list(FEATURES)])[:, 1], threshold)


def effects(
    model: Scorer,
    threshold: float,
    current: pd.DataFrame,
    reference: pd.DataFrame,
    columns: list[str],
    baseline: PerformanceEstimate | None = None,
) -> list[Effect]:
    """The effect of each of ``columns``' drift on the window ``current``, largest first;
    ``baseline`` is the window's own estimate when already made."""
    window = current[list(FEATURES)]
    base = baseline or estimate(model, window, threshold)
    found = []
    for column in columns:
        undone = window.assign(**{column: restored(window[column], reference[column])})
        back = estimate(model, undone, threshold)
        found.append(Effect(column, *(getattr(base, f) - getattr(back, f) for f in FIGURES)))
    return sorted(found, key=lambda e: (-e.size, e.column))
