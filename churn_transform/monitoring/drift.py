"""Data drift of served traffic against the training reference, with Evidently's drift preset.

Column types are declared, never guessed: a small-cardinality integer such as ``city`` is a
category, and so are the flags and codes; every other feature is numerical. Evidently picks the
method per column from its type and the number of rows (a distance above 1,000 rows, a
statistical test below) and says whether the column drifted; the dataset drifts when the share
of drifted columns reaches ``drift_share``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

from churn_transform.schema import DRIFT_CATEGORICALS, FEATURES

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


def compare(
    reference: pd.DataFrame, current: pd.DataFrame, drift_share: float, min_rows: int
) -> DriftResult:
    """Drift of ``current`` (logged traffic) from ``reference`` (the training sample). Each
    subscriber (``msno``) counts once, with their newest prediction: a client sending the same
    records again and again must not make the window look like a population."""
    logged = len(current)
    if "msno" in current:
        order = current.sort_values("ts", kind="stable") if "ts" in current else current
        current = order.drop_duplicates("msno", keep="last")
    if len(current) < min_rows:
        raise TooFewRows(
            f"{len(current)} subscriber(s) in the window ({logged} prediction(s)), fewer than "
            f"the {min_rows} needed to judge drift: widen the window or wait for traffic"
        )
    findings = _null_throughout(reference, current)
    numerical = [name for name in NUMERICAL if name not in {f["column"] for f in findings}]
    definition = DataDefinition(
        numerical_columns=numerical, categorical_columns=list(DRIFT_CATEGORICALS)
    )
    report = Report([DataDriftPreset(drift_share=drift_share)], include_tests=True)
    snapshot = report.run(
        Dataset.from_pandas(_typed(current, numerical), data_definition=definition),
        Dataset.from_pandas(_typed(reference, numerical), data_definition=definition),
    )
    summary = _summary(snapshot.dict(), drift_share, findings)
    summary.update(
        reference_rows=len(reference),
        current_rows=len(current),
        current_predictions=logged,
        **_clients(current),
    )
    return DriftResult(summary, snapshot.get_html_str(as_iframe=False))


def _clients(current: pd.DataFrame) -> dict[str, Any]:
    """How many API clients (keys) the subscribers judged came from, and the largest one's
    share of them: a drift one client can cause alone is no reason to retrain (the policy's
    ``max_client_share``). Requests without a key (an open API) count as one client; a log
    written before clients were logged says nothing (None)."""
    if "client" not in current:
        return {"clients": None, "top_client_share": None}
    shares = current["client"].fillna(NO_KEY).value_counts(normalize=True)
    return {"clients": int(len(shares)), "top_client_share": float(shares.iloc[0])}


def _summary(
    snapshot: dict[str, Any], drift_share: float, findings: list[dict[str, Any]]
) -> dict[str, Any]:
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
    columns.sort(key=lambda c: (not c["drifted"], c["column"]))
    share = sum(c["drifted"] for c in columns) / len(columns)
    return {
        "dataset_drift": bool(share >= drift_share),
        "drift_share": share,
        "drift_share_threshold": drift_share,
        "drifted_columns": [c["column"] for c in columns if c["drifted"]],
        "columns": columns,
    }


def describe(summary: dict[str, Any]) -> str:
    """One screen: the verdict, then the drifted columns with method, statistic, threshold."""
    verdict = "DRIFT" if summary["dataset_drift"] else "no dataset drift"
    lines = [
        f"{verdict}: {len(summary['drifted_columns'])} of {len(summary['columns'])} features "
        f"drifted (share {summary['drift_share']:.2f}, alarm at "
        f"{summary['drift_share_threshold']:.2f}); {summary['current_rows']:,} subscribers "
        f"against {summary['reference_rows']:,} reference rows",
    ]
    for column in summary["columns"]:
        if column["drifted"]:
            lines.append(
                f"  {column['column']:<28} {column['type']:<12} {column['method']:<32} "
                f"{column['statistic']:>8.3f} (threshold {column['threshold']:.3f})"
            )
    return "\n".join(lines)
