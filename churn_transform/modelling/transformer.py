"""The shared transformer: every row-level step from a gold row to model input, fitted once.

Training and serving both run it (inside the logged scikit-learn Pipeline), so what the model
sees online is exactly what it saw in training. Gold holds counts, sums and "last" values; this
adds what depends only on the row itself: cleaning of implausible values, imputation with
medians learned in ``fit``, ratios and trends, missing-data indicators, and integer codes of
the categorical columns.

Columns are recognised by name. A derived feature is produced only when all its inputs were
present in ``fit``; any other numeric column is cleaned and imputed as it is, so the transformer
also works (and passes scikit-learn's estimator checks) on plain numeric arrays. At transform
time every column seen in ``fit`` must be present: a missing one is an error naming it.
Categories not seen in ``fit`` get code -1; a missing category gets -2.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from churn_transform.schema import CODED_CATEGORICALS

UNSEEN, MISSING = -1.0, -2.0

Columns = dict[str, np.ndarray]


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1.0), 0.0)


def _finite(values: np.ndarray) -> np.ndarray:
    return np.nan_to_num(values, nan=0.0, posinf=_LARGE, neginf=-_LARGE)


_LARGE = 1e12


def _array(values: ArrayLike) -> np.ndarray:
    # np.asarray on a Series goes through pandas' attribute lookup: ten times slower
    return values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)


def _numeric(values: np.ndarray) -> np.ndarray:
    """Floats, with anything that is not a number as NaN (the fast path first)."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(float)


def _zero(values: np.ndarray) -> np.ndarray:
    return np.nan_to_num(values, nan=0.0)


def _trend(c: Columns) -> np.ndarray:
    """log of the daily seconds of the last 14 days over those of the 30 days before."""
    recent = np.fmax(_zero(c["secs_14"]), 0) / 14 + 60
    before = np.fmax(_zero(c["secs_44"] - c["secs_14"]), 0) / 30 + 60
    return np.clip(np.log(recent / before), -3, 1)


def _discounted(c: Columns) -> np.ndarray:
    paid, price = c["last_amount_paid"], c["last_list_price"]
    return ((paid > 0) & (paid < price)) * 1.0


#: name -> (inputs, function of the input columns), evaluated on raw (unimputed) values.
DERIVED: dict[str, tuple[tuple[str, ...], Callable[[Columns], np.ndarray]]] = {
    "trend_14_vs_30_before": (("secs_14", "secs_44"), _trend),
    "secs_per_active_day_30": (
        ("secs_30", "active_days_30"),
        lambda c: _ratio(c["secs_30"], c["active_days_30"]),
    ),
    "active_trend_7_vs_30": (
        ("active_days_7", "active_days_30"),
        lambda c: _zero(c["active_days_7"] / 7 - c["active_days_30"] / 30),
    ),
    "completion_30": (("num_100_30", "songs_30"), lambda c: _ratio(c["num_100_30"], c["songs_30"])),
    "skip_30": (("num_25_30", "songs_30"), lambda c: _ratio(c["num_25_30"], c["songs_30"])),
    "unique_share_30": (("unq_30", "songs_30"), lambda c: _ratio(c["unq_30"], c["songs_30"])),
    "silent_days": (
        ("days_since_last_log",),
        lambda c: np.fmin(np.nan_to_num(c["days_since_last_log"], nan=60), 60),
    ),
    "no_logs": (("log_days_total",), lambda c: (_zero(c["log_days_total"]) == 0) * 1.0),
    "cancels_per_plan_day": (
        ("cancel_count", "total_plan_days"),
        lambda c: _ratio(c["cancel_count"], c["total_plan_days"]),
    ),
    "paid_share_last": (
        ("last_amount_paid", "last_list_price"),
        lambda c: _ratio(c["last_amount_paid"], c["last_list_price"]),
    ),
    "free_last": (("last_amount_paid",), lambda c: (c["last_amount_paid"] == 0) * 1.0),
    "discount_last": (("last_amount_paid", "last_list_price"), _discounted),
    "newness": (
        ("tenure_days",),
        lambda c: np.exp(-np.clip(_zero(c["tenure_days"]), 0, None) / 45),
    ),
    "never_cancelled": (
        ("days_since_last_cancel",),
        lambda c: np.isnan(c["days_since_last_cancel"]) * 1.0,
    ),
    "no_profile": (("city",), lambda c: np.isnan(c["city"]) * 1.0),
}


class ChurnFeatures(TransformerMixin, BaseEstimator):
    """Gold rows -> model input. See the module docstring for what it does to each column.

    Parameters
    ----------
    min_age, max_age:
        ``bd`` outside this range is treated as unknown (the real data holds -7168 and 2016).
    """

    def __init__(self, min_age: int = 1, max_age: int = 100) -> None:
        self.min_age = min_age
        self.max_age = max_age

    # -- fitting ------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame | np.ndarray, y: object = None) -> ChurnFeatures:
        values = validate_data(self, X, reset=True, dtype=None, ensure_all_finite="allow-nan")
        names = self._names()
        columns = self._columns(values, names)
        self.categorical_ = [n for n in names if n in CODED_CATEGORICALS]
        self.numeric_ = [n for n in names if n not in CODED_CATEGORICALS]
        self.derived_ = [d for d, (inputs, _) in DERIVED.items() if set(inputs) <= set(names)]
        self.categories_ = {
            n: np.unique(columns[n][~pd.isna(columns[n])]) for n in self.categorical_
        }
        medians = {}
        for name in self.numeric_:
            known = columns[name][~np.isnan(columns[name])]
            medians[name] = float(np.median(known)) if len(known) else 0.0
        self.medians_ = medians
        return self

    def _names(self) -> list[str]:
        if hasattr(self, "feature_names_in_"):
            return [str(n) for n in self.feature_names_in_]
        return [f"x{i}" for i in range(self.n_features_in_)]

    def _columns(self, values: np.ndarray, names: list[str]) -> Columns:
        return self._cleaned({name: values[:, i] for i, name in enumerate(names)})

    def _cleaned(self, raw: Mapping[str, np.ndarray]) -> Columns:
        columns: Columns = {}
        for name, column in raw.items():
            if name in CODED_CATEGORICALS:
                columns[name] = column
                continue
            try:
                column = np.asarray(column, dtype=np.float64)
            except (TypeError, ValueError) as err:
                raise ValueError(f"column {name!r} must be numeric: {err}") from err
            if name == "bd":
                column = np.where(
                    (column >= self.min_age) & (column <= self.max_age), column, np.nan
                )
            columns[name] = column
        if "city" in columns:  # a numeric view for the derived indicator
            columns["city"] = _numeric(columns["city"])
        return columns

    # -- transforming -------------------------------------------------------------------
    def transform(self, X: pd.DataFrame | Mapping[str, ArrayLike] | np.ndarray) -> np.ndarray:
        """Model input for the rows of ``X``: a frame, a mapping of column name to values
        (what the service builds from JSON records, without a frame) or a plain array."""
        if not hasattr(self, "medians_"):  # check_is_fitted costs ~0.1 ms a call
            check_is_fitted(self, "medians_")
        names = getattr(self, "feature_names_in_", None)
        if names is not None and isinstance(X, pd.DataFrame | Mapping):
            given = set(X.keys())
            missing = [n for n in names if n not in given]
            if missing:
                raise KeyError(f"input lacks the column(s) {missing} seen in fit")
            columns = self._cleaned({n: _array(X[n]) for n in names})
        else:
            values = validate_data(self, X, reset=False, dtype=None, ensure_all_finite="allow-nan")
            columns = self._columns(values, self._names())
        rows = len(next(iter(columns.values()))) if columns else 0
        out = [np.empty((rows, 0))]
        if self.numeric_:
            numeric = np.column_stack([columns[n] for n in self.numeric_])
            out.append(np.where(np.isnan(numeric), self._median_row, numeric))
        # An unknown input makes an unknown ratio: 0, like "nothing played"; never NaN or inf.
        out += [DERIVED[d][1](columns)[:, None] for d in self.derived_]
        out += [self._codes(columns[n], n)[:, None] for n in self.categorical_]
        return _finite(np.hstack(out).astype(np.float64))

    @property
    def _median_row(self) -> np.ndarray:
        return np.array([self.medians_[n] for n in self.numeric_], dtype=np.float64)

    def _codes(self, column: np.ndarray, name: str) -> np.ndarray:
        known = self.categories_[name]
        missing = pd.isna(column)
        present = np.where(missing, known[0] if len(known) else 0, column)
        if len(known) and known.dtype.kind in "fiu":
            present = _numeric(present)
        position = np.searchsorted(known, present) if len(known) else np.zeros(len(column), int)
        position = np.clip(position, 0, max(len(known) - 1, 0))
        seen = (known[position] == present) if len(known) else np.zeros(len(column), bool)
        return np.where(missing, MISSING, np.where(seen, position, UNSEEN)).astype(np.float64)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        check_is_fitted(self, "medians_")
        return np.array([*self.numeric_, *self.derived_, *self.categorical_], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        return tags
