"""Drift of served traffic that means something: the served model's estimated performance on
the window, and the drifted features ranked by what they do to it.

What is compared with what, and why:

- **The window**: one row per subscriber (``msno``), their newest request in the window. A
  client that replays the same cohort seven times sends one population, not seven; and the
  placeholder record of the OpenAPI page (``schema.EXAMPLE_RECORD``, what "Try it out" sends)
  is nobody's traffic, so requests carrying it exactly are left out and counted.
- **The reference**: the gold table of the champion's newest training cohort, whole (the step
  reads it from the lake; ``reference_of``). A gold row of cohort M holds a subscriber's features
  as of M's first day, and the service scores rows of a scoring cohort taken at that same
  position relative to its own cutoff; so the training cohort's rows at its cutoff are the like
  for like. One cohort, not the mix of months a retrain learns from (each month older adds a
  month to every tenure and count), and every subscriber of it, not the training split.
- **The headline** is the model's performance on the window estimated from its probabilities
  (confidence-based performance estimation, ``monitoring.estimation``), beside the same
  estimate on the reference: the alarm (``drift_detected``) is the estimated ROC AUC falling
  below the reference's by at least ``auc_drop``. Month to month, features that grow with
  history (tenure, counts, totals) and seasonal mixes (the share on auto-renew) move past
  Evidently's thresholds without costing the model anything: a count of drifted columns alarms
  on them, this does not.
- **Each column**'s drift is still tested (Evidently's drift preset, column types declared: a
  small-cardinality code such as ``city`` is a category, as are the flags; the rest numerical),
  and the drifted ones are ranked by their estimated effect on performance
  (``monitoring.effect``: the change of the estimated figures when that feature's reference
  distribution is put back).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

from churn_transform.monitoring.effect import Effect, Scorer, effects, estimate
from churn_transform.monitoring.estimation import PerformanceEstimate
from churn_transform.schema import DRIFT_CATEGORICALS, EXAMPLE_RECORD, FEATURES

NUMERICAL = tuple(f for f in FEATURES if f not in DRIFT_CATEGORICALS)
MISSING = "missing"
#: The client of requests sent without an API key.
NO_KEY = "(no key)"


class TooFewRows(ValueError):
    """The window holds too few predictions to judge drift."""


@dataclass
class DriftResult:
    summary: dict[str, Any]
    html: str


def reference_cohort(train_cohorts: str) -> str | None:
    """The cohort whose gold is the reference of a model trained on ``train_cohorts`` (its
    run's ``train_cohort`` tag, months separated by commas): the newest, nearest the traffic."""
    return max(filter(None, train_cohorts.split(",")), default=None)


def is_placeholder(current: pd.DataFrame) -> pd.Series:
    """Rows that are the OpenAPI page's example record exactly (id and every feature)."""
    found = pd.Series(True, index=current.index)
    for name, value in EXAMPLE_RECORD.items():
        if name not in current:
            return pd.Series(False, index=current.index)
        column = current[name]
        found &= column.isna() if value is None else column.eq(value).fillna(False)
    return found


def subscribers(current: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The window as a population: the placeholder record out, then each subscriber once, with
    their newest request; and how many rows of the placeholder were left out."""
    placeholder = is_placeholder(current)
    window = current[~placeholder]
    if "msno" in window:
        order = window.sort_values("ts", kind="stable") if "ts" in window else window
        window = order.drop_duplicates("msno", keep="last")
    return window, int(placeholder.sum())


def compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    model: Scorer,
    threshold: float,
    auc_drop: float,
    min_rows: int,
) -> DriftResult:
    """Drift of ``current`` (logged traffic) from ``reference`` (the training cohort's gold) for
    ``model``, served at ``threshold``: the estimated performance of both, the alarm when the
    window's estimated ROC AUC is ``auc_drop`` or more below the reference's, and every
    column's drift test with the drifted ones ranked by their effect."""
    window, placeholders = subscribers(current)
    if len(window) < min_rows:
        raise TooFewRows(
            f"{len(window)} subscriber(s) in the window ({len(current)} prediction(s), "
            f"{placeholders} of them the OpenAPI example), fewer than the {min_rows} needed to "
            "judge drift: widen the window or wait for traffic"
        )
    columns, html = _column_drift(reference, window)
    estimated = estimate(model, window, threshold)
    expected = estimate(model, reference, threshold)
    drifted = [c["column"] for c in columns if c["drifted"]]
    ranked = effects(model, threshold, window, reference, drifted, baseline=estimated)
    drop = expected.roc_auc - estimated.roc_auc
    summary = {
        "drift_detected": bool(drop >= auc_drop),
        "estimated_roc_auc": _finite(estimated.roc_auc),
        "reference_estimated_roc_auc": _finite(expected.roc_auc),
        "estimated_roc_auc_drop": _finite(drop),
        "auc_drop_threshold": auc_drop,
        "threshold": threshold,
        "estimated": _plain(estimated),
        "reference_estimated": _plain(expected),
        "drifted_columns": [e.column for e in ranked],
        "drift_share": len(drifted) / len(columns),
        "columns": _with_effects(columns, ranked),
        "reference_rows": len(reference),
        "current_rows": len(window),
        "current_predictions": len(current),
        "placeholder_rows": placeholders,
        **_clients(window),
    }
    return DriftResult(summary, html)


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _plain(estimate: PerformanceEstimate) -> dict[str, Any]:
    """An estimate as strict JSON (a figure without a denominator is null, not NaN)."""
    return {k: _finite(v) if isinstance(v, float) else v for k, v in asdict(estimate).items()}


def _with_effects(columns: list[dict[str, Any]], ranked: list[Effect]) -> list[dict[str, Any]]:
    """Drifted columns first, by effect, each with its effect; then the others by name."""
    order = {e.column: i for i, e in enumerate(ranked)}
    found = {e.column: e for e in ranked}
    for column in columns:
        if column["column"] in found:
            effect = found[column["column"]]
            moves = {k: _finite(v) for k, v in asdict(effect).items() if k != "column"}
            column["effect"] = {**moves, "size": effect.size}
    return sorted(columns, key=lambda c: (order.get(c["column"], len(order)), c["column"]))


def _typed(frame: pd.DataFrame, numerical: list[str]) -> pd.DataFrame:
    """Features only; categories as strings with an explicit ``missing`` (a null is a value)."""
    typed = frame[[*numerical, *DRIFT_CATEGORICALS]].copy()
    for name in DRIFT_CATEGORICALS:
        values = typed[name].astype(object)
        typed[name] = values.where(values.notna(), MISSING).astype(str)
    typed[numerical] = typed[numerical].astype("float64")
    return typed


def _null_throughout(reference: pd.DataFrame, current: pd.DataFrame) -> list[dict[str, Any]]:
    """Numerical features null in every row of either side: Evidently cannot compare them, and
    a feature that went null throughout (a broken upstream) is a finding in itself."""
    findings = []
    for name in NUMERICAL:
        empty = current[name].isna().all(), reference[name].isna().all()
        if any(empty):
            findings.append(
                {
                    "column": name,
                    "type": "numerical",
                    "method": "null throughout",
                    "statistic": float(current[name].isna().mean()),
                    "threshold": float(reference[name].isna().mean()),
                    "drifted": bool(empty[0] != empty[1]),  # numpy's bool is no JSON
                }
            )
    return findings


def _column_drift(
    reference: pd.DataFrame, window: pd.DataFrame
) -> tuple[list[dict[str, Any]], str]:
    """Every feature's drift test (Evidently picks the method from the type and the number of
    rows: a distance above 1,000 rows, a statistical test below) and Evidently's HTML report."""
    findings = _null_throughout(reference, window)
    numerical = [name for name in NUMERICAL if name not in {f["column"] for f in findings}]
    definition = DataDefinition(
        numerical_columns=numerical, categorical_columns=list(DRIFT_CATEGORICALS)
    )
    report = Report([DataDriftPreset()], include_tests=True)
    snapshot = report.run(
        Dataset.from_pandas(_typed(window, numerical), data_definition=definition),
        Dataset.from_pandas(_typed(reference, numerical), data_definition=definition),
    )
    return _columns(snapshot.dict(), findings), snapshot.get_html_str(as_iframe=False)


def _columns(snapshot: dict[str, Any], findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    drifted = {
        test["metric_config"]["params"]["column"]: test["status"] == "FAIL"
        for test in snapshot["tests"]
        if test["metric_config"]["params"].get("type") == "evidently:metric_v2:ValueDrift"
    }
    columns = list(findings)
    for metric in snapshot["metrics"]:
        params = metric["config"]
        if params["type"] == "evidently:metric_v2:ValueDrift":
            name = params["column"]
            kind = "categorical" if name in DRIFT_CATEGORICALS else "numerical"
            columns.append(
                {
                    "column": name,
                    "type": kind,
                    "method": params["method"],
                    "statistic": float(metric["value"]),
                    "threshold": float(params["threshold"]),
                    "drifted": drifted[name],
                }
            )
    return columns


def _clients(current: pd.DataFrame) -> dict[str, Any]:
    """How many API clients (keys) the subscribers judged came from, and the largest one's
    share of them: a drift one client can cause alone is no reason to retrain (the policy's
    ``max_client_share``). Requests without a key (an open API) count as one client; a log
    written before clients were logged says nothing (None)."""
    if "client" not in current:
        return {"clients": None, "top_client_share": None}
    shares = current["client"].fillna(NO_KEY).value_counts(normalize=True)
    return {"clients": int(len(shares)), "top_client_share": float(shares.iloc[0])}


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _headline(summary: dict[str, Any]) -> str:
    """The estimated figures of the window, each with the reference's in brackets."""
    window, reference = summary["estimated"], summary["reference_estimated"]
    pairs = {
        "estimated ROC AUC": "roc_auc",
        "precision": "precision",
        "recall": "recall",
        "expected churn rate": "expected_positive_rate",
    }
    figures = ", ".join(
        f"{label} {_figure(window[key])} ({_figure(reference[key])})"
        for label, key in pairs.items()
    )
    return (
        f"{figures} on {summary['current_rows']:,} subscribers (the reference's "
        f"{summary['reference_rows']:,}), at threshold {summary['threshold']:.3f}; the alarm "
        f"is a drop of {summary['auc_drop_threshold']:.3f} in estimated ROC AUC"
    )


def describe(summary: dict[str, Any]) -> str:
    """One screen: the verdict and the estimated performance, then the drifted columns by
    effect, with the moves of the estimated figures, method, statistic and threshold."""
    verdict = "DRIFT" if summary["drift_detected"] else "no drift that costs the model"
    lines = [
        f"{verdict}: {_headline(summary)}",
        f"{len(summary['drifted_columns'])} of {len(summary['columns'])} features drifted "
        "statistically (each column's test, whatever it costs the model), by effect (moves of "
        "estimated ROC AUC / precision / recall):",
    ]
    for column in summary["columns"]:
        if column["drifted"]:
            effect = column.get("effect", {})
            moves = " / ".join(
                f"{effect.get(k) or 0.0:+.3f}" for k in ("roc_auc", "precision", "recall")
            )
            lines.append(
                f"  {column['column']:<28} {moves:<22} {column['method']:<32} "
                f"{column['statistic']:>8.3f} (threshold {column['threshold']:.3f})"
            )
    return "\n".join(lines)
