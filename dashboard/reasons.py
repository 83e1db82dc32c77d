"""One subscriber's reasons as the retention team reads them: each feature's value with its unit
and its share of the churn probability in percentage points, and the waterfall of those shares.

The service's reasons are exact shares of the log-odds: ``base_log_odds + sum(contributions) =
logit(churn_probability)``. The probability is not additive in them, so each share is scaled by
the secant of the sigmoid between the base and the subscriber's log-odds, ``(p - p_base) /
sum(contributions)``: the shares keep their sign and order, and add up exactly to the move from
the base value to the subscriber's probability, whatever their order. The base value is the
probability at the model's mean log-odds over its training rows: well below the churn rate, as
the mean of the log-odds of a skewed risk lies far below the log-odds of its mean.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from churn_transform.schema import FLAGS, LOG_FEATURES

#: Features counted in seconds, days, money (NTD, KKBox's plans' currency), and codes that KKBox
#: publishes without their meaning (payment method, city, registration channel).
SECONDS = tuple(name for name in LOG_FEATURES if name.startswith("secs_"))
DAYS = (
    "days_since_last_cancel",
    "last_plan_days",
    "days_to_expiry",
    "days_since_last_transaction",
    "tenure_days",
    "total_plan_days",
    "days_since_last_log",
    "log_days_total",
    "registration_age_days",
    *(name for name in LOG_FEATURES if name.startswith("active_days_")),
)
MONEY = ("last_list_price", "last_amount_paid", "total_paid")
CODES = ("last_payment_method_id", "city", "registered_via")
SHARES = ("auto_renew_share",)
YEARS = ("bd",)


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _duration(seconds: float) -> str:
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min")):
        if seconds >= size:
            return f"{_number(seconds)} s ({seconds / size:,.1f} {unit})"
    return f"{_number(seconds)} s"


def shown_value(feature: str, value: Any) -> str:
    """``value`` of ``feature`` in words: with its unit, a flag as yes or no, a code as a code."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    if isinstance(value, str):
        return value
    if feature in FLAGS:
        return "yes" if value == 1 else "no"
    if feature in CODES:
        return f"code {value:g}"
    if feature in SECONDS:
        return _duration(float(value))
    if feature in SHARES:
        return f"{value:.0%}"
    unit = (
        " days"
        if feature in DAYS
        else " NTD"
        if feature in MONEY
        else " years"
        if feature in YEARS
        else ""
    )
    return f"{_number(float(value))}{unit}"


def _sigmoid(log_odds: float) -> float:
    return 1.0 / (1.0 + math.exp(-log_odds))


def probability_points(base_log_odds: float, contributions: list[float]) -> list[float]:
    """Each log-odds share in percentage points of probability; they add up to ``100 *
    (p - p_base)`` (the module's docstring says how)."""
    total = sum(contributions)
    base = _sigmoid(base_log_odds)
    if abs(total) < 1e-12:
        slope = base * (1 - base)  # the secant's limit: the sigmoid's slope at the base
    else:
        slope = (_sigmoid(base_log_odds + total) - base) / total
    return [100 * contribution * slope for contribution in contributions]


def base_probability(answer: dict[str, Any]) -> float:
    """The probability the reasons start from: the model's base value."""
    return _sigmoid(float(answer["base_log_odds"]))


def reasons_table(answer: dict[str, Any]) -> pd.DataFrame:
    """Every reason of an ``/explain`` answer, largest effect first: what it means, the value
    sent with its unit, its share in probability points and in log-odds."""
    reasons = answer["reasons"]
    points = probability_points(answer["base_log_odds"], [r["contribution"] for r in reasons])
    return pd.DataFrame(
        {
            "feature": [r["feature"] for r in reasons],
            "meaning": [r["name"] for r in reasons],
            "value": [shown_value(r["feature"], r["value"]) for r in reasons],
            "probability points": points,
            "log-odds": [r["contribution"] for r in reasons],
        }
    )


def waterfall_steps(answer: dict[str, Any], shown: int = 10) -> pd.DataFrame:
    """The waterfall's bars, largest first: each reason's ``start`` and ``end`` on the way from
    the model's base value to the subscriber's probability, in percent, and the rest as one."""
    table = reasons_table(answer)
    top = table.head(shown)
    names = list(top["meaning"] + ": " + top["value"])
    points = list(top["probability points"])
    rest = table["probability points"].iloc[shown:]
    if len(rest):
        names.append(f"{len(rest)} other features")
        points.append(float(rest.sum()))
    base = 100 * base_probability(answer)
    ends = list(base + pd.Series(points, dtype=float).cumsum())
    return pd.DataFrame(
        {
            "reason": names,
            "start": [base, *ends[:-1]],
            "end": ends,
            "points": points,
            "effect": ["raises the risk" if p > 0 else "lowers the risk" for p in points],
        }
    )


def waterfall_spec(answer: dict[str, Any], cohort_mean: float | None) -> dict[str, Any]:
    """A Vega-Lite waterfall of ``waterfall_steps``, drawn by the browser: a dotted line at the
    model's base value, a dashed one at the scored cohort's mean."""
    lines = [{"at": 100 * base_probability(answer), "line": "the model's base value"}]
    if cohort_mean is not None:
        lines.append({"at": 100 * cohort_mean, "line": "the scored cohort's mean"})
    bars = {
        "mark": "bar",
        "encoding": {
            "y": {
                "field": "reason",
                "type": "nominal",
                "sort": None,
                "title": None,
                "axis": {"labelLimit": 400},
            },
            "x": {
                "field": "start",
                "type": "quantitative",
                "title": "churn probability (%), from the model's base value",
            },
            "x2": {"field": "end"},
            "color": {
                "field": "effect",
                "type": "nominal",
                "title": None,
                "scale": {
                    "domain": ["raises the risk", "lowers the risk"],
                    "range": ["#d62728", "#2ca02c"],
                },
            },
            "tooltip": [
                {"field": "reason"},
                {"field": "points", "format": "+.2f", "title": "percentage points"},
            ],
        },
    }
    rules = {
        "data": {"values": lines},
        "mark": {"type": "rule", "strokeDash": [4, 3]},
        "encoding": {
            "x": {"field": "at", "type": "quantitative"},
            "color": {"value": "grey"},
            "tooltip": [{"field": "line"}, {"field": "at", "format": ".1f"}],
        },
    }
    return {"layer": [bars, rules], "height": {"step": 24}}
