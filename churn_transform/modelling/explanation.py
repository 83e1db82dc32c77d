"""Why the model says what it says: exact additive reasons per gold feature, from LightGBM.

LightGBM's ``pred_contrib`` splits each raw score (log-odds before calibration) into one
contribution per model input column plus a bias, exactly (TreeSHAP). The calibration is affine
in the raw score (``logit = -(a * raw + b)``), so multiplying every contribution by ``-a`` and
moving ``-b`` into the bias gives the same split of the calibrated log-odds: ``base +
sum(contributions) = logit(churn_probability)`` to float precision.

A derived column (a ratio, a trend) is handed back to the gold features it is computed from, in
equal shares, so every reason names something the client sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churn_transform.schema import FEATURES

if TYPE_CHECKING:  # scikit-learn is imported with a model, not with the service's definitions
    from churn_transform.modelling.model import ChurnModel

#: What each gold feature means to the retention team.
READABLE: dict[str, str] = {
    "tx_count": "number of transactions",
    "tx_count_90": "transactions in the last 90 days",
    "cancel_count": "number of cancellations",
    "cancel_count_365": "cancellations in the last year",
    "days_since_last_cancel": "days since the last cancellation",
    "last_is_auto_renew": "auto-renew on the last plan",
    "last_is_cancel": "last transaction was a cancellation",
    "last_payment_method_id": "payment method",
    "last_plan_days": "plan length",
    "last_list_price": "plan list price",
    "last_amount_paid": "amount paid for the last plan",
    "days_to_expiry": "days to expiry",
    "days_since_last_transaction": "days since the last transaction",
    "tenure_days": "tenure",
    "total_paid": "total paid",
    "total_plan_days": "total plan days",
    "discount_count": "discounted plans",
    "free_count": "free plans",
    "auto_renew_share": "share of auto-renewed transactions",
    "secs_7": "listening time, last 7 days",
    "secs_14": "listening time, last 14 days",
    "secs_30": "listening time, last 30 days",
    "secs_44": "listening time, last 44 days",
    "secs_60": "listening time, last 60 days",
    "active_days_7": "active days, last 7 days",
    "active_days_14": "active days, last 14 days",
    "active_days_30": "active days, last 30 days",
    "active_days_44": "active days, last 44 days",
    "active_days_60": "active days, last 60 days",
    "songs_30": "songs played, last 30 days",
    "num_25_30": "songs skipped early, last 30 days",
    "num_100_30": "songs played to the end, last 30 days",
    "unq_30": "distinct songs, last 30 days",
    "days_since_last_log": "days since last listening",
    "log_days_total": "days with listening, ever",
    "secs_total": "listening time, ever",
    "city": "city",
    "bd": "age",
    "gender": "gender",
    "registered_via": "registration channel",
    "registration_age_days": "days since registration",
}


@dataclass(frozen=True)
class Explanation:
    """Reasons for a batch of rows, on the calibrated log-odds scale.

    ``contributions`` has one column per gold feature (FEATURES order) and one row per input
    row; ``base`` is the log-odds of the average prediction the trees start from.
    """

    base: float
    contributions: pd.DataFrame

    @property
    def log_odds(self) -> np.ndarray:
        return self.base + self.contributions.to_numpy().sum(axis=1)

    def top(self, n: int = 3, sent: pd.DataFrame | None = None) -> list[list[str]]:
        """Each row's ``n`` readable reasons that push its risk up most, largest first; with the
        rows ``sent``, each reason says the value too ("auto-renew on the last plan: 0")."""
        values = self.contributions.to_numpy()
        columns = list(self.contributions.columns)
        order = np.argsort(-values, axis=1, kind="stable")[:, :n]
        return [
            [_said(columns[j], sent, i) for j in row if values[i, j] > 0]
            for i, row in enumerate(order)
        ]

    def records(self, values: pd.DataFrame | dict[str, Any]) -> list[list[dict[str, Any]]]:
        """Per row, every feature's reason as JSON, largest effect (either way) first."""
        contributions = self.contributions.to_numpy()
        columns = list(self.contributions.columns)
        sent = {name: list(values[name]) for name in columns}
        rows = []
        for i, row in enumerate(contributions):
            order = np.argsort(-np.abs(row), kind="stable")
            rows.append(
                [
                    {
                        "feature": columns[j],
                        "name": READABLE[columns[j]],
                        "value": _json(sent[columns[j]][i]),
                        "contribution": float(row[j]),
                    }
                    for j in order
                ]
            )
        return rows


def _said(feature: str, sent: pd.DataFrame | None, row: int) -> str:
    """A reason in words, with the value sent when there is one."""
    if sent is None:
        return READABLE[feature]
    value = _json(sent[feature].iloc[row])
    shown = "unknown" if value is None else f"{value:g}" if isinstance(value, float) else value
    return f"{READABLE[feature]}: {shown}"


def _json(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def attribution_matrix(input_names: list[str]) -> np.ndarray:
    """(model input columns x FEATURES): how each input's contribution is shared among gold
    features. A gold feature maps to itself, a derived column equally to its inputs."""
    from churn_transform.modelling.transformer import DERIVED

    matrix = np.zeros((len(input_names), len(FEATURES)))
    position = {name: j for j, name in enumerate(FEATURES)}
    for i, name in enumerate(input_names):
        sources = DERIVED[name][0] if name in DERIVED else (name,)
        if any(s not in position for s in sources):
            raise KeyError(f"model input {name!r} comes from no gold feature: {sources}")
        for source in sources:
            matrix[i, position[source]] = 1.0 / len(sources)
    return matrix


def explain(model: ChurnModel, X: pd.DataFrame | dict[str, Any]) -> Explanation:
    """The exact reasons for ``model``'s calibrated log-odds on the rows of ``X``."""
    features, classifier = model.pipeline.named_steps.values()
    names = [str(n) for n in features.get_feature_names_out()]
    rows = features.transform(X)
    # LightGBM divides by the rows it is given: for none, one row of missing values gives the
    # trees' starting point (the same for every row) and its contributions are dropped
    given = rows if len(rows) else np.full((1, len(names)), np.nan)
    scaled = -model.a_ * classifier.booster_.predict(given, pred_contrib=True)
    return Explanation(
        base=float(scaled[0, -1] - model.b_),
        contributions=pd.DataFrame(
            scaled[: len(rows), :-1] @ attribution_matrix(names), columns=list(FEATURES)
        ),
    )
