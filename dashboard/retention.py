"""The dashboard's Campaign tab: the newest campaign list ``score`` wrote, filtered by whom it
targets, their churn probability and the features behind their top reasons."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from churn_transform.settings import Settings
from dashboard import reads

REASONS = ("reason_1", "reason_2", "reason_3")


def reason_features(listed: pd.DataFrame) -> pd.DataFrame:
    """The feature each reason names, without its value: ``score`` writes a reason as
    "<meaning>: <value>" (``churn_transform.modelling.explanation``), so one feature carries as many
    reasons as it has values."""
    reasons = listed[list(REASONS)].astype("string")  # a column of no reason at all is float
    return reasons.apply(lambda column: column.str.rsplit(": ", n=1).str[0])


def section(settings: Settings) -> None:
    newest, problem = reads.newest_campaign(settings)
    if newest is None:
        st.info(f"No campaign list yet: {problem}. Run `make score`.")
        return
    listed = reads.campaign(settings, newest.path, newest.modified)
    st.caption(
        f"Cohort {newest.cohort}, `{newest.path}`: {len(listed):,} subscribers, "
        f"{int(listed['target'].sum()):,} targeted"
    )
    features = reason_features(listed)
    left, middle, right = st.columns(3)
    only_targets = left.checkbox("targeted only", value=True)
    least = middle.slider("minimum churn probability", 0.0, 1.0, 0.0, 0.01)
    named = sorted({name for name in features.to_numpy().ravel() if isinstance(name, str)})
    reason = right.selectbox("with the reason (a feature among the top three)", ["any", *named])
    sort = st.selectbox(
        "sort by", ["churn_probability", "revenue_at_risk", "offer_value"], key="sort"
    )
    kept = listed["churn_probability"] >= least
    if only_targets:
        kept &= listed["target"]
    if reason != "any":
        kept &= (features == reason).any(axis=1)
    shown = listed[kept].sort_values(sort, ascending=False)
    st.dataframe(shown, hide_index=True)
    st.download_button(
        "Download the list (CSV)", shown.to_csv(index=False), "campaign.csv", "text/csv"
    )
