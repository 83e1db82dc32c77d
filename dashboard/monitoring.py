"""The dashboard's Live and Drift tabs: the service's recent predictions from its traffic log,
and the drift reports the ``drift`` step left in the lake."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from churn_transform.settings import Settings, masked
from dashboard import reads


def live(settings: Settings) -> None:
    days = st.slider("days of traffic", 1, 30, 7)
    found = reads.traffic(settings, days)
    if found.value is None:
        st.info(
            f"No traffic yet: {found.problem}. Start the service (`make serve`) and send it "
            f"requests: from its Swagger UI ({masked(settings.service_url)}/), or `make loadtest`."
        )
        return
    traffic = found.value
    left, middle, right = st.columns(3)
    left.metric("predictions", f"{len(traffic):,}")
    middle.metric("churn decisions", f"{traffic['churn'].mean():.1%}")
    right.metric("mean probability", f"{traffic['churn_probability'].mean():.3f}")
    per_hour = traffic.set_index("time").resample("h").size().rename("predictions per hour")
    st.bar_chart(per_hour)
    chart, rate = st.columns(2)
    bins = pd.cut(
        traffic["churn_probability"], bins=[i / 20 for i in range(21)], include_lowest=True
    )
    histogram = bins.value_counts(sort=False).rename("predictions")
    histogram.index = [f"{b.left:.2f}" for b in histogram.index]
    chart.caption("churn probability")
    chart.bar_chart(histogram)
    by_day = traffic.groupby(traffic["time"].dt.date)["churn"].mean().rename("churn rate")
    rate.caption("churn decisions by day")
    rate.bar_chart(by_day)
    st.caption("most recent requests")
    recent = traffic.tail(20).iloc[::-1]
    st.dataframe(
        recent[["time", "request_id", "msno", "churn_probability", "churn", "model_version"]],
        hide_index=True,
    )


def _headline(summary: dict[str, Any]) -> str:
    """The served model's estimated ROC AUC on the window against the reference's; a report
    written before they were estimated gives its count of drifted columns."""
    if "estimated_roc_auc" not in summary:
        verdict = "Dataset drift" if summary["dataset_drift"] else "No dataset drift"
        return f"{verdict} (drift share {summary['drift_share']:.2f}, before estimates)"
    verdict = "Drift" if summary["drift_detected"] else "No drift that costs the model"
    window, reference = summary["estimated_roc_auc"], summary["reference_estimated_roc_auc"]
    shown = [f"{v:.3f}" if v is not None else "n/a" for v in (window, reference)]
    return f"{verdict}: estimated ROC AUC {shown[0]} (reference {shown[1]})"


def drift(settings: Settings) -> None:
    files = reads.lake_files(settings, "monitoring", "drift", "*", "summary.json")
    if not files:
        st.info(
            "No drift report yet: none under monitoring/drift in the lake. Run `make drift` "
            "once the service has answered enough requests."
        )
        return
    reports = [reads.lake_json(settings, file.path, file.modified) for file in files]
    latest, newest = reports[-1], files[-1]
    st.subheader(_headline(latest))
    st.caption(
        f"{len(latest['drifted_columns'])} of {len(latest['columns'])} features drifted "
        "statistically (each column's test, whatever it costs the model; by their estimated "
        f"effect first); window {latest['window'][0]} to {latest['window'][1]}, "
        f"{latest['current_rows']:,} subscribers against {latest['reference_rows']:,} "
        f"reference rows, model version {latest['model_version']}, "
        f"report of {latest['created']}"
    )
    columns = pd.DataFrame(latest["columns"])
    if "effect" in columns:  # the moves of the estimated figures: their largest is the rank
        columns["effect"] = [e["size"] if isinstance(e, dict) else None for e in columns["effect"]]
    st.dataframe(columns, hide_index=True)
    history = pd.DataFrame(
        {
            "created": pd.to_datetime([r["created"] for r in reports]),
            "estimated ROC AUC": [r.get("estimated_roc_auc") for r in reports],
        }
    ).set_index("created")
    st.caption("estimated ROC AUC of every report (none before reports estimated it)")
    st.line_chart(history)
    # Evidently's page (several MB, with its scripts) is sent to the browser only when asked for
    if st.toggle("Evidently's full report"):
        report = newest.path.rsplit("/", 1)[0] + "/report.html"
        # our own report, written by the drift step: trusted HTML (Evidently needs its scripts)
        st.iframe(reads.report_html(settings, report, newest.modified), height=900)
