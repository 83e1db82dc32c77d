"""The dashboard's month-after-month section: how the champions really did on each cohort once
its labels arrived, beside the oracle, and what every monthly cycle decided."""

from __future__ import annotations

import streamlit as st

from churn_transform.settings import Settings
from dashboard import client

SHOWN = ("roc_auc", "log_loss", "calibration_error", "decision_rate", "precision", "recall")


def sections(settings: Settings) -> None:
    st.header("Month after month")
    found = client.quality_history(settings)
    if found.value is None:
        st.info(
            f"No realized quality yet: {found.problem}. Once a scored cohort's labels arrive, "
            "run `make cycle MONTH=YYYY-MM` (or `mlflow run . -e quality`)."
        )
        return
    history, cycles = found.value
    batch = history[history["source"] == "batch"]
    if not batch.empty:
        chart = batch.pivot_table(index="cohort", columns="model_version", values="roc_auc")
        chart.columns = [f"version {v}" for v in chart.columns]
        chart["oracle"] = batch.groupby("cohort")["oracle_roc_auc"].max()
        st.caption("Realized ROC AUC of the batch scores of each labelled cohort, by version")
        st.line_chart(chart)
    columns = ["cohort", "source", "model_version", "users", *SHOWN, "oracle_roc_auc"]
    st.dataframe(history[columns], hide_index=True)
    if cycles.empty:
        st.caption("No monthly cycle has run yet: `make cycle MONTH=YYYY-MM`.")
        return
    st.subheader("Monthly cycles")
    shown = ["month", "labelled", "scored", "champion_before", "champion_after", "action"]
    st.dataframe(cycles[[*shown, "decision"]], hide_index=True)
