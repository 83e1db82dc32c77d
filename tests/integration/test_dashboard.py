"""The Streamlit dashboard in-process, with Streamlit's AppTest: each tab against a real service,
registry and lake, and against none (tests/integration/test_dashboard_browser.py drives it in a
real browser)."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import requests
import streamlit as st
from streamlit.testing.v1 import AppTest

from churn_transform.lake import Lake
from churn_transform.modelling.campaign import monthly_price
from churn_transform.modelling.explanation import READABLE
from churn_transform.modelling.whatif import WhatIf, what_if
from churn_transform.monitoring.predictions import read_scored
from churn_transform.monitoring.verdict import Verdict, write_verdict
from churn_transform.schema import EXAMPLE_RECORD
from churn_transform.settings import PROJECT_ROOT, Settings
from dashboard import client
from tests.conftest import (
    Champion,
    drift_command,
    free_port,
    records_of,
    run_step,
    serve,
    stop,
    tracking_store,
)

pytestmark = pytest.mark.integration
APP = str(PROJECT_ROOT / "dashboard" / "app.py")
SETTINGS = ("MLFLOW_TRACKING_URI", "KKBOX_LAKE_URI", "KKBOX_TRAFFIC_LOG_URI", "KKBOX_SERVICE_URL")
TABS = ("Model", "Live", "Drift", "Campaign", "Subscriber", "Months")
#: A verdict on March's campaign, its figures as ``monitoring.verdict`` would give them.
VERDICT = Verdict(
    cohort="2017-03",
    campaign_id="retention-2017-03",
    currency="NTD",
    contacted=40,
    control=40,
    unlabelled=0,
    not_compared=0,
    contacted_churn_rate=0.25,
    control_churn_rate=0.5,
    realized_saves=10.0,
    realized_saves_low=1.8,
    realized_saves_high=18.2,
    cost=400.0,
    realized_net_value=600.0,
    realized_net_value_low=-230.0,
    realized_net_value_high=1430.0,
    return_on_cost=1.5,
    forecast_saves=12.0,
    forecast_net_value=800.0,
    oracle_saves=10.0,
    oracle_net_value=600.0,
)


@pytest.fixture(scope="module")
def live(champion: Champion, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A running service that has answered 300 requests, a drift report of them, March scored
    and measured, and the campaign list of April."""
    traffic = tmp_path_factory.mktemp("dashboard-traffic")
    env = {**champion.env, "KKBOX_TRAFFIC_LOG_URI": str(traffic)}
    process, url = serve(env)
    try:
        with requests.Session() as session:
            for record in records_of(champion.gold("2017-03"), slice(0, 300)):
                session.post(f"{url}/predict", json={"records": [record]}, timeout=30)
        command = drift_command()
        for _ in range(50):  # the writer thread is asynchronous
            if sum(1 for p in traffic.rglob("*.jsonl") for _ in p.open()) == 300:
                break
            time.sleep(0.1)
        run_step(env, *command)
        # March scored as a month before, and measured once its labels are in
        run_step(env, sys.executable, "-m", "steps.score", "--cohort", "2017-03")
        quality = ["--traffic-start", "none", "--traffic-end", "none", "--min-segment-users", "50"]
        run_step(env, sys.executable, "-m", "steps.quality", "--cohort", "2017-03", *quality)
        run_step(env, sys.executable, "-m", "steps.score", "--cohort", "2017-04")
        yield {**env, "KKBOX_SERVICE_URL": url}
    finally:
        stop(process)


def _app(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], tab: str = "Model") -> AppTest:
    """The dashboard with ``env``'s settings, run with ``tab`` open, its caches empty (they
    live as long as the process, as in a real server)."""
    for name in SETTINGS:
        monkeypatch.setenv(name, env[name])
    st.cache_data.clear()
    return _open(AppTest.from_file(APP, default_timeout=60), tab)


def _open(app: AppTest, tab: str) -> AppTest:
    """``app`` with ``tab`` open. The tabs are bound to the URL's ``tab`` parameter, which
    AppTest keeps between runs and would win over the session's state alone."""
    app.query_params["tab"] = tab
    app.session_state["tab"] = tab
    return app.run()


def _click(app: AppTest, label: str) -> AppTest:
    (button,) = [b for b in app.button if b.label == label]
    return button.click().run()


def _nothing_there(tmp_path: Path) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": tracking_store(tmp_path / "mlflow.db"),
        "KKBOX_LAKE_URI": str(tmp_path / "lake"),
        "KKBOX_TRAFFIC_LOG_URI": str(tmp_path / "t"),
        "KKBOX_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
    }


def test_with_nothing_there_each_tab_says_what_to_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    app = _app(monkeypatch, _nothing_there(tmp_path))
    assert [tab.label for tab in app.tabs] == list(TABS)
    notes = {}
    for tab in TABS:
        _open(app, tab)
        assert not app.exception, tab
        notes[tab] = " ".join(note.value for note in app.info)
    assert "`make demo`" in notes["Model"] and "`make serve`" in notes["Model"]
    assert "`make serve`" in notes["Live"] and "`make drift`" in notes["Drift"]
    assert "`make score`" in notes["Campaign"]
    assert "`make months`" in notes["Months"] and "`make quality COHORT=2017-03`" in notes["Months"]
    assert "mlflow run" not in " ".join(notes.values())
    _open(app, "Subscriber")
    _click(app, "Score")
    assert "does not answer" in app.error[0].value and "`make serve`" in app.error[0].value


def test_credentials_in_the_settings_never_reach_the_page(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there: every message names the unreachable URI
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    env = {
        **_nothing_there(tmp_path),
        "MLFLOW_TRACKING_URI": f"http://admin:hunter2@x@127.0.0.1:{port}",  # "@" in a password
        "KKBOX_SERVICE_URL": f"http://hunter2-token@127.0.0.1:{port}",  # a token as the user
    }
    app = _app(monkeypatch, env)
    shown = [e.value for kind in (app.info, app.caption, app.error) for e in kind]
    _click(_open(app, "Subscriber"), "Score")
    shown += [e.value for e in app.error]
    assert f"admin:***@127.0.0.1:{port}" in " ".join(shown)
    assert f"***@127.0.0.1:{port}" in app.error[0].value
    assert "hunter2" not in " ".join(shown)


def test_an_unreachable_registry_is_given_up_within_seconds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """MLflow's own retries left on (7, with a backoff of 2: 502 s for the page before)."""
    for name in client.REGISTRY_PATIENCE:
        monkeypatch.delenv(name, raising=False)
    env = {**_nothing_there(tmp_path), "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}
    start = time.monotonic()
    app = _app(monkeypatch, env)
    assert time.monotonic() - start < 15
    assert "No model to show" in app.info[0].value and "`make demo`" in app.info[0].value
    assert "no champion in the registry at http://127.0.0.1:" in app.info[0].value


def test_it_shows_the_champion_traffic_and_drift(
    monkeypatch: pytest.MonkeyPatch, live: dict[str, str]
) -> None:
    app = _app(monkeypatch, live)
    assert not app.exception and not app.info
    assert "Version 1 of `kkbox-churn`, served by the service" in app.caption[0].value
    metrics = {m.label: m.value for m in app.metric}
    assert float(metrics["roc auc"]) > 0.7
    assert "## Intended use" in app.expander[0].markdown[0].value  # the model card
    segments = app.dataframe[0].value
    assert {"value", "users", "roc_auc"} <= set(segments.columns)
    _open(app, "Live")
    assert not app.exception and {m.label: m.value for m in app.metric}["predictions"] == "300"
    _open(app, "Drift")
    assert not app.exception and not app.info
    assert app.subheader[0].value.startswith(("No drift that costs", "Drift: estimated ROC AUC"))
    drift_table = app.dataframe[0].value
    assert len(drift_table) == 41 and {"method", "statistic", "threshold"} <= set(drift_table)


def test_a_click_reads_no_source_again_until_refresh(
    monkeypatch: pytest.MonkeyPatch, live: dict[str, str]
) -> None:
    calls: dict[str, int] = {}
    for name in ("service_metadata", "champion_segments", "lake_files", "read_campaign"):
        original = getattr(client, name)

        def counted(*args: object, _name: str = name, _original: object = original) -> object:
            calls[_name] = calls.get(_name, 0) + 1
            return _original(*args)  # type: ignore[operator]

        monkeypatch.setattr(client, name, counted)
    app = _app(monkeypatch, live)
    _open(app, "Campaign")
    for _ in range(3):
        app.checkbox[0].set_value(not app.checkbox[0].value).run()
    _open(app, "Model")
    assert calls == {
        "service_metadata": 1,
        "champion_segments": 1,
        "lake_files": 1,
        "read_campaign": 1,
    }
    _click(app, "Refresh")
    _open(app, "Campaign")
    assert calls["service_metadata"] == 2 and calls["read_campaign"] == 2


def test_the_campaign_is_filtered_by_the_feature_a_reason_names(
    monkeypatch: pytest.MonkeyPatch, live: dict[str, str]
) -> None:
    app = _app(monkeypatch, live, "Campaign")
    assert not app.exception and not app.info
    listed = app.dataframe[0].value
    assert len(listed) and listed["target"].all()
    assert listed["churn_probability"].is_monotonic_decreasing
    app.checkbox[0].uncheck().run()
    everyone = app.dataframe[0].value
    assert len(everyone) > len(listed) and not everyone["target"].all()
    (reasons,) = [box for box in app.selectbox if box.label.startswith("with the reason")]
    named = set(reasons.options) - {"any"}
    written = everyone[["reason_1", "reason_2", "reason_3"]].stack()
    assert named == {reason.rsplit(": ", 1)[0] for reason in written}
    assert named <= set(READABLE.values()) and len(named) <= len(READABLE) < len(written.unique())
    name = written.str.rsplit(": ", n=1).str[0].value_counts().index[0]  # the commonest
    reasons.set_value(name).run()
    kept = app.dataframe[0].value
    said = kept[["reason_1", "reason_2", "reason_3"]].apply(
        lambda column: column.str.startswith(f"{name}: ")
    )
    assert len(kept) and said.any(axis=1).all()
    assert (
        len(kept)
        == everyone[["reason_1", "reason_2", "reason_3"]]
        .apply(lambda column: column.str.startswith(f"{name}: "))
        .any(axis=1)
        .sum()
    )
    app.selectbox[-1].set_value("revenue_at_risk").run()
    assert app.dataframe[0].value["revenue_at_risk"].is_monotonic_decreasing


def _shown(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def _said(found: WhatIf) -> dict[str, str]:
    return {
        "campaign size (contacted)": f"{found.contacted:,}",
        "expected saves": f"{found.expected_saves:,.1f}",
        "expected net value (NTD)": f"{found.net_value:,.0f}",
    }


def test_the_what_if_recomputes_the_campaign_from_the_scored_cohort(
    monkeypatch: pytest.MonkeyPatch, live: dict[str, str]
) -> None:
    """Offer cost, budget and control share change the figures as ``what_if`` says, on the
    April scores and the plans of the gold they were made from (issue #35, 5)."""
    (run,) = Path(live["KKBOX_LAKE_URI"]).glob("predictions/2017-04/*/campaign.csv")
    scored = read_scored(Lake(live["KKBOX_LAKE_URI"]), "2017-04", run.parent.name)
    targets = int(pd.read_csv(run)["target"].sum())

    app = _app(monkeypatch, live, "Campaign")
    settings = Settings()  # the dashboard's, from the same environment
    cost = settings.offer_cost

    def expected(
        offer_cost: float = cost,
        budget: float = targets * cost,
        control_share: float = settings.control_share,  # the list's own, where the slider starts
    ) -> dict[str, str]:
        found = what_if(
            scored["churn_probability"].to_numpy(float),
            monthly_price(scored),
            acceptance=settings.offer_acceptance,
            offer_cost=offer_cost,
            budget=budget,
            control_share=control_share,
        )
        return _said(found)

    assert not app.exception and not app.info
    first = _shown(app)
    assert first == expected() and first["campaign size (contacted)"] != "0"
    app.number_input(key="cost").set_value(cost / 2).run()
    cheaper = _shown(app)  # the same budget buys more offers
    assert cheaper == expected(offer_cost=cost / 2) and cheaper != first
    app.slider(key="control").set_value(0.25).run()
    assert _shown(app) == expected(offer_cost=cost / 2, control_share=0.25) != cheaper
    app.number_input(key="budget").set_value(cost * 10).run()  # 20 offers at half the cost
    assert _shown(app) == expected(offer_cost=cost / 2, control_share=0.25, budget=cost * 10)
    assert _shown(app)["campaign size (contacted)"] == "15"  # 20 listed, 5 held out
    assert "the budget binds" in app.caption[-1].value


def test_the_last_campaign_s_verdict_stands_beside_its_forecast(
    monkeypatch: pytest.MonkeyPatch, live: dict[str, str]
) -> None:
    lake = Lake(live["KKBOX_LAKE_URI"])
    app = _app(monkeypatch, live, "Campaign")
    captions = " ".join(caption.value for caption in app.caption)
    assert "No verdict yet: no campaign has been judged yet. `make months` (after" in captions
    assert "`make demo`) gives one" in captions
    url = write_verdict(lake, VERDICT)
    try:
        app = _app(monkeypatch, live, "Campaign")  # with empty caches
        shown = app.table[0].value
        assert list(shown.columns) == ["realized", "95% low", "95% high", "forecast", "oracle"]
        assert list(shown.loc["saves"]) == ["10.0", "1.8", "18.2", "12.0", "10.0"]
        assert list(shown.loc["net value (NTD)"]) == ["600", "-230", "1,430", "800", "600"]
        assert list(shown.loc["churn rate of the contacted"]) == ["25.0%", "–", "–", "–", "–"]
        assert list(shown.loc["churn rate of the control"]) == ["50.0%", "–", "–", "–", "–"]
        headings = [heading.value for heading in app.subheader]
        verdict_at = headings.index("Last campaign's verdict")  # March's, before April's list
        assert headings.index("Newest campaign list — Cohort 2017-04") > verdict_at
        said = " ".join(block.value for block in app.markdown)
        assert "40 contacted and 40 held out as control" in said
        assert "a realized return of 150% on it" in said and VERDICT.said in said
    finally:
        lake.fs.rm(lake.path_of(url))


def test_the_form_shows_the_service_s_answer_and_its_errors(
    monkeypatch: pytest.MonkeyPatch, live: dict[str, str]
) -> None:
    app = _app(monkeypatch, live, "Subscriber")
    app.text_area[0].set_value(json.dumps({**EXAMPLE_RECORD, "bd": 2016.0}))
    _click(app, "Score")
    assert "refused the record (400)" in app.error[0].value
    refusal = json.loads(app.json[0].value)
    assert ["records", 0, "bd"] in [fault["loc"] for fault in refusal["detail"]]
    app.text_area[0].set_value(json.dumps(EXAMPLE_RECORD))
    _click(app, "Score")
    assert app.success[0].value.startswith("churn probability")


def _ask(live: dict[str, str], endpoint: str, record: dict) -> dict:
    answer = requests.post(
        f"{live['KKBOX_SERVICE_URL']}/{endpoint}", json={"records": [record]}, timeout=30
    )
    answer.raise_for_status()
    return answer.json()[0]


def test_a_subscriber_is_placed_in_the_scored_cohort(
    monkeypatch: pytest.MonkeyPatch, live: dict[str, str], champion: Champion
) -> None:
    """A subscriber the model says stays, though high in the cohort's ranking (issue #29, 5)."""
    lists = Path(live["KKBOX_LAKE_URI"]).glob("predictions/2017-04/*/campaign.csv")
    campaign = pd.read_csv(max(lists, key=lambda path: path.stat().st_mtime))
    stays = campaign[~campaign["churn"]]
    chosen = stays.iloc[0]  # the riskiest the model lets go
    gold = champion.gold("2017-04")
    (record,) = records_of(gold[gold["msno"] == chosen["msno"]])
    mine = _ask(live, "predict", record)["churn_probability"]
    app = _app(monkeypatch, live, "Subscriber")
    app.text_area[0].set_value(json.dumps(record))
    _click(app, "Score")
    assert not app.exception
    assert app.success[0].value.startswith(f"churn probability {mine:.3f}: the model's decision")
    assert "is stays" in app.success[0].value
    probabilities = campaign["churn_probability"]
    shown = {m.label: m.value for m in app.metric}
    assert shown["percentile in cohort 2017-04"] == f"{100 * (probabilities < mine).mean():.0f}"
    assert shown["in the top"] == f"{100 * (probabilities >= mine).mean():.1f}%"
    assert shown["lift over the cohort's mean"] == f"{mine / probabilities.mean():.1f}x"
    rank = int(campaign.index[campaign["msno"] == chosen["msno"]][0]) + 1
    targeted = f"targeted, {rank:,} of {campaign['target'].sum():,}"
    assert shown["targeted by the campaign"] == (targeted if chosen["target"] else "no")
    assert mine / probabilities.mean() > 2  # high above the mean, and yet "stays"


def test_the_reasons_are_shown_in_probability_points_with_units(
    monkeypatch: pytest.MonkeyPatch, live: dict[str, str]
) -> None:
    expected = _ask(live, "explain", EXAMPLE_RECORD)
    app = _app(monkeypatch, live, "Subscriber")
    _click(app, "Explain")
    assert not app.exception
    reasons = app.dataframe[0].value.set_index("feature")
    base = 1 / (1 + math.exp(-expected["base_log_odds"]))
    moved = 100 * (expected["churn_probability"] - base)
    assert reasons["probability points"].sum() == pytest.approx(moved, abs=1e-6)
    for reason in expected["reasons"]:  # same signs, same order as the log-odds
        assert reasons.loc[reason["feature"], "log-odds"] == pytest.approx(reason["contribution"])
        assert (reasons.loc[reason["feature"], "probability points"] > 0) == (
            reason["contribution"] > 0
        )
    values = reasons["value"]
    assert values["last_list_price"] == "119 NTD" and values["days_to_expiry"] == "3 days"
    assert values["secs_30"] == "1,884.7 s (31.4 min)" and values["secs_7"] == "0 s"
    assert values["last_payment_method_id"] == "code 41" and values["last_is_auto_renew"] == "yes"
    assert values["days_since_last_cancel"] == "unknown" and values["auto_renew_share"] == "100%"
    assert len(app.get("vega_lite_chart")) == 1  # the waterfall
    said = " ".join(c.value for c in app.caption)
    assert f"from the model's base value ({base:.1%})" in said and "not a churn rate" in said
    assert "on average" not in said


def test_it_shows_the_realized_quality_of_each_labelled_cohort(
    monkeypatch: pytest.MonkeyPatch, live: dict[str, str]
) -> None:
    app = _app(monkeypatch, live, "Months")
    assert not app.exception and not app.info
    history = app.dataframe[-1].value
    (march,) = history[history["cohort"] == "2017-03"].itertuples()
    assert march.source == "batch" and march.model_version == "1"
    assert 0.7 < march.roc_auc <= march.oracle_roc_auc + 0.05
    assert "No monthly cycle has run yet: `make months`" in app.caption[-1].value
