"""The dashboard's Subscriber tab: one subscriber, by id (features from the online store) or as
a gold record, scored or explained by the service, and where they stand: their percentile in the
scored cohort, their lift over its mean, whether the campaign targets them, beside the model's
decision; with the explanation, the reasons in probability points."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from churn_transform.schema import EXAMPLE_RECORD
from churn_transform.settings import Settings, masked
from dashboard import client, reads, reasons


def section(settings: Settings) -> None:
    with st.form("subscriber"):
        msno = st.text_input("subscriber id (msno), its features read from the feature store")
        cohort = st.text_input("cohort of the id, e.g. 2017-04 (empty: the newest served)")
        text = st.text_area(
            "or a gold record (JSON), when no id is given",
            json.dumps(EXAMPLE_RECORD, indent=1),
            height=250,
        )
        left, right = st.columns([1, 8])
        scored = left.form_submit_button("Score")
        explained = right.form_submit_button("Explain")
    if scored or explained:
        _answer(settings, msno.strip(), cohort.strip() or None, text, explained)


def _ask(
    settings: Settings, msno: str, cohort: str | None, record: Any, explain: bool
) -> tuple[int, Any]:
    if msno:
        return (client.explain_id if explain else client.score_id)(settings, msno, cohort)
    return (client.explain if explain else client.score)(settings, record)


def _refusal(answer: Any) -> str | None:
    """The service's own message of a refusal: ``{"error": ...}``, which BentoML 1.4 sends as a
    one-item list; None for another body (a 400's ``detail`` is shown as it is)."""
    found = answer[0] if isinstance(answer, list) and len(answer) == 1 else answer
    if isinstance(found, dict) and isinstance(found.get("error"), str) and "detail" not in found:
        return str(found["error"])
    return None


def _answer(settings: Settings, msno: str, cohort: str | None, text: str, explain: bool) -> None:
    try:
        record = None if msno else json.loads(text)
    except json.JSONDecodeError as err:
        st.error(f"not JSON: {err}")
        return
    try:
        status, answer = _ask(settings, msno, cohort, record, explain)
    except Exception as err:  # noqa: BLE001 (show any connection failure to the user)
        st.error(
            f"the service at {masked(settings.service_url)} does not answer "
            f"({type(err).__name__}): `make serve`"
        )
        return
    if status != 200:
        st.error(f"the service refused the {'id' if msno else 'record'} ({status})")
        if isinstance(answer, str):  # not the service's own refusal: a route it lacks, a proxy
            st.code(answer, language=None)
            st.caption(
                f"Not an answer of this dashboard's service; does {masked(settings.service_url)}"
                " run this checkout's (`make serve`)?"
            )
        elif refusal := _refusal(answer):
            st.write(refusal)
        else:
            st.json(answer)
        return
    found = answer[0]
    threshold = _threshold(settings)
    st.success(
        f"churn probability {found['churn_probability']:.3f}: the model's decision is "
        f"{'churn' if found['churn'] else 'stays'}"
        + (f" (its threshold is {threshold:.3f})" if threshold is not None else "")
    )
    mean = standing(settings, found, cohort)
    if explain:
        explanation(found, mean)
    with st.expander("The service's answer"):
        st.json(answer)


def _threshold(settings: Settings) -> float | None:
    served = reads.service_metadata(settings).value or {}
    threshold = served.get("metrics", {}).get("threshold")
    return None if threshold is None else float(threshold)


def _cohort_list(
    settings: Settings, msno: str, cohort: str | None
) -> tuple[str, pd.DataFrame] | None:
    """The campaign list the subscriber is in (of ``cohort`` when given), the newest cohort's
    first; else the newest cohort's, to rank them against."""
    files = [
        file
        for file in reads.lake_files(settings, "predictions", "*", "*", "campaign.csv")
        if cohort in (None, file.cohort)
    ]
    lists = [
        (file.cohort, reads.campaign(settings, file.path, file.modified))
        for file in sorted(files, key=lambda file: (file.cohort, file.modified), reverse=True)
    ]
    holding = [found for found in lists if (found[1]["msno"] == msno).any()]
    candidates = holding or lists
    return candidates[0] if candidates else None


def standing(settings: Settings, answer: dict[str, Any], cohort: str | None) -> float | None:
    """Where the subscriber stands in the scored cohort; that cohort's mean probability."""
    found = _cohort_list(settings, answer["msno"], cohort)
    if found is None:
        st.info("No scored cohort to rank the subscriber in: run `make score`.")
        return None
    name, listed = found
    probabilities = listed["churn_probability"].to_numpy(float)
    mine, mean = float(answer["churn_probability"]), float(probabilities.mean())
    targeted = listed["target"].to_numpy(bool)
    cut = float(probabilities[targeted].min()) if targeted.any() else 1.0
    position = np.flatnonzero(listed["msno"].to_numpy() == answer["msno"])
    if len(position):  # the list is ranked: the targeted are its first rows
        rank = int(position[0]) + 1
        campaign = f"targeted, {rank:,} of {targeted.sum():,}" if targeted[rank - 1] else "no"
    else:
        campaign = "not in its list" + (", above its cut" if mine >= cut else "")
    percentile, top, lift, target = st.columns(4)
    below = float(np.mean(probabilities < mine))
    percentile.metric(f"percentile in cohort {name}", f"{100 * below:.0f}")
    top.metric("in the top", f"{100 * float(np.mean(probabilities >= mine)):.1f}%")
    lift.metric("lift over the cohort's mean", f"{mine / mean:.1f}x" if mean else "-")
    target.metric("targeted by the campaign", campaign)
    st.caption(
        f"Cohort {name}: {len(listed):,} subscribers scored, mean churn probability {mean:.3f} "
        f"(its expected churn rate); the campaign contacts the {targeted.sum():,} of greatest "
        f"expected value, whose churn probability is at least {cut:.3f}. The model's decision "
        "is its threshold's, chosen in training; the campaign's choice weighs the plan's price."
    )
    return mean


def explanation(answer: dict[str, Any], cohort_mean: float | None) -> None:
    base = reasons.base_probability(answer)
    said = f"; the scored cohort's mean is {cohort_mean:.1%}" if cohort_mean is not None else ""
    st.caption(
        f"Each bar is a feature's share of the move from the model's base value ({base:.1%}) "
        f"to this subscriber's {answer['churn_probability']:.1%}, in percentage points: red "
        "raises the risk, green lowers it. The base value is the probability at the model's "
        f"mean log-odds over its training rows, not a churn rate{said}."
    )
    st.vega_lite_chart(reasons.waterfall_steps(answer), reasons.waterfall_spec(answer, cohort_mean))
    table = reasons.reasons_table(answer)
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "probability points": st.column_config.NumberColumn(format="%+.2f"),
            "log-odds": st.column_config.NumberColumn(format="%+.3f"),
        },
    )
