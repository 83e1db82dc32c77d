"""The dashboard's Months tab: how the champions really did on each cohort once its labels
arrived, beside the oracle, and what every monthly cycle decided."""

from __future__ import annotations

import streamlit as st

from churn_transform.schema import TRAINING_COHORTS
from churn_transform.settings import Settings
from dashboard import reads

SHOWN = ("roc_auc", "log_loss", "calibration_error", "decision_rate", "precision", "recall")


def next_cycle(settings: Settings) -> str:
    """The command of the next monthly cycle: for the newest month whose increment landed, or
    the months after the demo when none has."""
    months = reads.increment_months(settings)
    if months:
        return f"`make cycle MONTH={months[-1]}` (the newest increment)"
    return "`make months` (after `make demo`: April and May 2017 land, then a cycle for each)"


def quality_hint(settings: Settings) -> str:
    """What to run for a first realized quality: the next cycle, or the labelled cohort now."""
    labelled = TRAINING_COHORTS[-1]
    return (
        f"{next_cycle(settings)}; or measure the labelled cohort {labelled} now: "
        f"`make score COHORT={labelled}`, then `make quality COHORT={labelled}`"
    )


def section(settings: Settings) -> None:
    tables = tuple(reads.lake_files(settings, "quality", "*", "quality.parquet"))
    if not tables:
        st.info(
            "No realized quality yet: none under quality in the lake. Once a scored cohort's "
            f"labels arrive, run {quality_hint(settings)}."
        )
        return
    cycles = tuple(reads.lake_files(settings, "cycles", "*.json"))
    history, records = reads.quality_history(settings, tables, cycles)
    batch = history[history["source"] == "batch"]
    if not batch.empty:
        chart = batch.pivot_table(index="cohort", columns="model_version", values="roc_auc")
        chart.columns = [f"version {v}" for v in chart.columns]
        chart["oracle"] = batch.groupby("cohort")["oracle_roc_auc"].max()
        st.caption("Realized ROC AUC of the batch scores of each labelled cohort, by version")
        st.line_chart(chart)
    columns = ["cohort", "source", "model_version", "users", *SHOWN, "oracle_roc_auc"]
    st.dataframe(history[columns], hide_index=True)
    if records.empty:
        st.caption(f"No monthly cycle has run yet: {next_cycle(settings)}.")
        return
    st.subheader("Monthly cycles")
    shown = ["month", "labelled", "scored", "champion_before", "champion_after", "action"]
    st.dataframe(records[[*shown, "decision"]], hide_index=True)
