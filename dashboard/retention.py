"""The dashboard's retention sections: the campaign list, one subscriber's reasons as a
waterfall, the champion's metrics per segment and its model card."""

from __future__ import annotations

import json
from typing import Any

import matplotlib
import streamlit as st

from churn_transform.schema import EXAMPLE_RECORD
from churn_transform.settings import Settings, masked
from dashboard import client

matplotlib.use("Agg")


def campaign(settings: Settings) -> None:
    st.header("Campaign list")
    found = client.latest_campaign(settings)
    if found.value is None:
        st.info(f"No campaign list yet: {found.problem}. Run `mlflow run . -e score`.")
        return
    path, listed = found.value
    st.caption(f"`{path}`: {len(listed):,} subscribers, {int(listed['target'].sum()):,} targeted")
    left, middle, right = st.columns(3)
    only_targets = left.checkbox("targeted only", value=True)
    least = middle.slider("minimum churn probability", 0.0, 1.0, 0.0, 0.01)
    reasons = sorted({r for c in ("reason_1", "reason_2", "reason_3") for r in listed[c].dropna()})
    reason = right.selectbox("with the reason", ["any", *reasons])
    sort = st.selectbox(
        "sort by", ["churn_probability", "revenue_at_risk", "offer_value"], key="sort"
    )
    shown = listed[listed["churn_probability"] >= least]
    if only_targets:
        shown = shown[shown["target"]]
    if reason != "any":
        shown = shown[shown[["reason_1", "reason_2", "reason_3"]].eq(reason).any(axis=1)]
    shown = shown.sort_values(sort, ascending=False)
    st.dataframe(shown, hide_index=True)
    st.download_button(
        "Download the list (CSV)", shown.to_csv(index=False), "campaign.csv", "text/csv"
    )


def _label(reason: dict[str, Any]) -> str:
    value = reason["value"]
    shown = "unknown" if value is None else f"{value:g}" if isinstance(value, float) else value
    return f"{reason['name']}: {shown}"


def waterfall(answer: dict[str, Any], shown: int = 10) -> Any:
    """The reasons as a waterfall from the base log-odds to the subscriber's, largest first."""
    import matplotlib.pyplot as plt

    reasons = answer["reasons"]
    steps = [(_label(r), r["contribution"]) for r in reasons[:shown]]
    steps.append(
        (f"{len(reasons) - shown} other features", sum(r["contribution"] for r in reasons[shown:]))
    )
    figure, axes = plt.subplots(figsize=(8, 0.45 * len(steps) + 1.2))
    base = start = answer["base_log_odds"]
    ends = [start]
    for index, (_, size) in enumerate(steps):  # the largest at the top
        axes.barh(
            len(steps) - 1 - index, size, left=start, color="tab:red" if size > 0 else "tab:green"
        )
        start += size
        ends.append(start)
    axes.set_yticks(range(len(steps)), [name for name, _ in reversed(steps)])
    axes.axvline(base, color="grey", linestyle=":")
    pad = 0.05 * (max(ends) - min(ends) or 1.0)
    axes.set_xlim(min(ends) - pad, max(ends) + pad)
    axes.set_xlabel(
        f"log-odds of churn: {base:.2f} on average, {start:.2f} here "
        f"(probability {answer['churn_probability']:.3f})"
    )
    figure.tight_layout()
    return figure


def explanation(settings: Settings) -> None:
    st.header("Why this subscriber")
    with st.form("explain"):
        text = st.text_area("gold record (JSON)", json.dumps(EXAMPLE_RECORD, indent=1), height=200)
        sent = st.form_submit_button("Explain")
    if not sent:
        return
    try:
        status, answer = client.explain(settings, json.loads(text))
    except json.JSONDecodeError as err:
        st.error(f"not JSON: {err}")
        return
    except Exception:  # noqa: BLE001 (show any connection failure to the user)
        st.error(f"the service at {masked(settings.service_url)} does not answer: `make serve`")
        return
    if status != 200:
        st.error(f"the service refused the record ({status})")
        st.json(answer)
        return
    st.success(
        f"churn probability {answer[0]['churn_probability']:.3f}; red raises the risk, green "
        "lowers it"
    )
    st.pyplot(waterfall(answer[0]))


def segments(settings: Settings) -> None:
    st.header("Metrics per segment")
    found = client.champion_segments(settings)
    if found.value is None:
        st.info(f"No segment metrics: {found.problem}. Train a champion (`make demo`).")
        return
    table = found.value
    name = st.selectbox("segment", sorted(table["segment"].unique()), key="segment")
    st.dataframe(table[table["segment"] == name].drop(columns="segment"), hide_index=True)


def model_card(settings: Settings) -> None:
    served = client.service_metadata(settings)
    card = (served.value or {}).get("model_card")
    if card:
        with st.expander("Model card"):
            st.markdown(card)


def sections(settings: Settings) -> None:
    model_card(settings)
    campaign(settings)
    explanation(settings)
    segments(settings)
