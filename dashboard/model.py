"""The dashboard's Model tab: the champion (as the service serves it, else as the registry names
it), its model card, its metrics per segment, and which version served each day (from the
traffic log) beside the promotions and rollbacks the registry keeps."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from churn_transform.monitoring.timeline import served_by_day, switches
from churn_transform.settings import Settings, masked
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
    versions_served(settings)


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


def versions_served(settings: Settings) -> None:
    st.subheader("Versions served")
    days = st.slider("days of traffic", 1, 90, 30, key="served_days")
    found = reads.served(settings, days)
    traffic, moves = st.columns(2)
    if found.value is None:
        traffic.info(
            f"No traffic to tell which version served: {found.problem}. Start the service "
            f"(`make serve`) and send it requests ({masked(settings.service_url)}/)."
        )
    else:
        by_day = served_by_day(found.value)
        chart = by_day.pivot(index="day", columns="model_version", values="predictions")
        traffic.caption("predictions per day, by model version")
        traffic.bar_chart(chart.fillna(0).rename(columns=lambda v: f"version {v}"))
        traffic.dataframe(by_day, hide_index=True)
        traffic.caption("switches of the version answering (the service follows the alias)")
        traffic.dataframe(switches(found.value, settings.champion_poll_seconds), hide_index=True)
    # no command in code here: the page's hints are only what fills an empty tab
    moves.caption("promotions and rollbacks of the champion, from the registry's tags")
    history = reads.champion_events(settings)
    if history.value is None:
        moves.info(history.problem)
        return
    events = pd.DataFrame(
        [vars(event) for event in reversed(history.value)],
        columns=["at", "kind", "version", "left", "by", "reason"],
    )
    moves.dataframe(events.rename(columns={"left": "from version"}), hide_index=True)
