"""The dashboard's Campaign tab: the verdict on the last campaign played, once its cohort's
labels landed (``churn_transform.monitoring.verdict``); then, under its own heading, the newest
campaign list ``score`` wrote, filtered by whom it targets, their churn probability and the
features behind their top reasons; and what that campaign would contact, save and earn under
another offer cost, budget and control share (``churn_transform.modelling.whatif``, recomputed
from the cohort the list was scored from)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from churn_transform.modelling.campaign import monthly_price
from churn_transform.modelling.whatif import WhatIf, what_if
from churn_transform.monitoring.verdict import Verdict
from churn_transform.settings import Settings
from dashboard import reads
from dashboard.client import LakeFile

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
    verdict_section(settings)  # of an older cohort's list: its own section, before the newest
    st.divider()
    st.subheader(f"Newest campaign list — Cohort {newest.cohort}")
    st.caption(
        f"`{newest.path}`: {len(listed):,} subscribers, {int(listed['target'].sum()):,} targeted"
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
    what_if_section(settings, newest, int(listed["target"].sum()))


def what_if_section(settings: Settings, newest: LakeFile, targets: int) -> None:
    """The campaign's figures under the terms the user sets; the budget starts at what the
    list as written costs, so the first figures are close to the list's own."""
    st.subheader("What if")
    scored = reads.scored_cohort(settings, newest.path, newest.cohort, newest.modified)
    if scored.value is None:
        st.info(f"No what-if: {scored.problem}. Score the cohort again (`make score`).")
        return
    cohort = scored.value
    terms = _terms(settings, targets)
    try:
        found = what_if(
            cohort["churn_probability"].to_numpy(float),
            monthly_price(cohort),
            acceptance=settings.offer_acceptance,
            uplift=cohort["uplift"].to_numpy(float) if "uplift" in cohort else None,
            **terms,
        )
    except ValueError as err:
        st.error(f"No what-if for this cohort: {err}")
        return
    _figures(found, len(cohort))


def _terms(settings: Settings, targets: int) -> dict[str, float]:
    cost, budget, control = st.columns(3)
    offer_cost = cost.number_input(
        "offer cost (NTD)", min_value=0.0, value=float(settings.offer_cost), step=1.0, key="cost"
    )
    spend = budget.number_input(
        "budget (NTD)",
        min_value=0.0,
        value=float(targets * settings.offer_cost),
        step=100.0,
        key="budget",
    )
    share = control.slider(
        "control share (never contacted)",
        0.0,
        1.0,
        float(settings.control_share),  # the campaign list's own (KKBOX_CONTROL_SHARE)
        0.05,
        key="control",
    )
    return {"offer_cost": offer_cost, "budget": spend, "control_share": share}


def _figures(found: WhatIf, scored: int) -> None:
    size, saves, net = st.columns(3)
    size.metric("campaign size (contacted)", f"{found.contacted:,}")
    saves.metric("expected saves", f"{found.expected_saves:,.1f}")
    net.metric("expected net value (NTD)", f"{found.net_value:,.0f}")
    bound = "the budget binds" if found.budget_binds else "the budget does not bind"
    st.caption(
        f"Of {scored:,} scored subscribers, {found.worth_an_offer:,} are worth more than an "
        f"offer; {found.listed:,} listed ({bound}), {found.control:,} of them held out as "
        f"control; offers cost {found.cost:,.0f} NTD for {found.saved_value:,.0f} NTD of "
        f"expected saved value."
    )


def verdict_section(settings: Settings) -> None:
    """The newest verdict: realized figures with their 95% intervals beside the forecast and
    the oracle's, the groups compared, and its sentence."""
    st.subheader("Last campaign's verdict")
    found = reads.campaign_verdict(settings)
    if found.value is None:
        st.caption(
            f"No verdict yet: {found.problem}. `make months` (after `make demo`) gives one: it "
            "plays April's campaign, and the quality step judges it once the cohort's labels "
            "land with the next month."
        )
        return
    verdict: Verdict = found.value
    left_out = f"; {verdict.unlabelled:,} without a label left out" if verdict.unlabelled else ""
    returned = verdict.return_on_cost
    ratio = f", a realized return of {returned:.0%} on it" if returned is not None else ""
    st.markdown(
        f"Cohort **{verdict.cohort}**, campaign `{verdict.campaign_id}`: "
        f"{verdict.contacted:,} contacted and {verdict.control:,} held out as control{left_out}; "
        f"offers cost {verdict.cost:,.0f} {verdict.currency}{ratio}."
    )
    st.table(verdict_table(verdict))
    st.write(verdict.said)


def verdict_table(verdict: Verdict) -> pd.DataFrame:
    """Saves and net value: realized with the 95% interval, forecast, and the oracle's
    expectation (synthetic data only); the churn rate observed in each group; "–" where there
    is no figure."""

    def shown(value: float | None, digits: int) -> str:
        return "–" if value is None else f"{value:,.{digits}f}"

    rows = {
        "saves": (
            [verdict.realized_saves, verdict.realized_saves_low, verdict.realized_saves_high]
            + [verdict.forecast_saves, verdict.oracle_saves],
            1,
        ),
        f"net value ({verdict.currency})": (
            [verdict.realized_net_value, verdict.realized_net_value_low]
            + [verdict.realized_net_value_high, verdict.forecast_net_value]
            + [verdict.oracle_net_value],
            0,
        ),
    }
    columns = ["realized", "95% low", "95% high", "forecast", "oracle"]
    table = pd.DataFrame(
        {name: [shown(v, digits) for v in values] for name, (values, digits) in rows.items()},
        index=columns,
    ).T
    for group, rate in (
        ("contacted", verdict.contacted_churn_rate),
        ("control", verdict.control_churn_rate),
    ):
        observed = "–" if rate is None else f"{rate:.1%}"
        table.loc[f"churn rate of the {group}"] = [observed] + ["–"] * (len(columns) - 1)
    return table
