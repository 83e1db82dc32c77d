"""The dashboard's Model tab: the champion (as the service serves it, else as the registry names
it), its model card and its metrics per segment."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from churn_transform.settings import Settings
from dashboard import reads

SHOWN = ("roc_auc", "log_loss", "pr_auc", "brier", "threshold", "auc_gap_to_oracle")


def section(settings: Settings) -> None:
    about, served = reads.champion(settings)
    if not about.value:
        st.info(
            f"No model to show: {served.problem}; {about.problem}. Run `make demo`, then "
            "`make serve`."
        )
        return
    model = about.value
    champion_card(settings, model, served.problem)
    card = model.get("model_card")
    if card:
        with st.expander("Model card"):
            st.markdown(card)
    segments(settings, model["run_id"])


def champion_card(settings: Settings, model: dict, problem: str) -> None:
    st.subheader("Champion")
    source = f"from the registry ({problem})" if problem else "served by the service"
    trained = datetime.fromtimestamp(model["trained_at"] / 1000, UTC)
    st.caption(
        f"Version {model['registry_version']} of `{settings.model_name}`, {source}; "
        f"trained {trained:%Y-%m-%d %H:%M} UTC, run `{model['run_id']}`, "
        f"data version `{model.get('data_version') or '?'}`"
    )
    metrics = model.get("metrics", {})
    for column, name in zip(st.columns(len(SHOWN)), SHOWN, strict=True):
        value = metrics.get(name)
        column.metric(name.replace("_", " "), "-" if value is None else f"{value:.4f}")


def segments(settings: Settings, run_id: str) -> None:
    st.subheader("Metrics per segment")
    found = reads.champion_segments(settings, run_id)
    if found.value is None:
        st.info(f"No segment metrics: {found.problem}. Train a champion (`make demo`).")
        return
    table = found.value
    name = st.selectbox("segment", sorted(table["segment"].unique()), key="segment")
    st.dataframe(table[table["segment"] == name].drop(columns="segment"), hide_index=True)
