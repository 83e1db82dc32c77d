"""The platform's dashboard: the champion, live predictions, drift, scoring one user, then
what the retention team acts on: the model card, the campaign list, one subscriber's reasons,
the metrics per segment; and month after month, the realized quality of every labelled cohort
and what each monthly cycle decided.

    streamlit run dashboard/app.py      # or: make dashboard

Settings (``KKBOX_SERVICE_URL``, ``KKBOX_LAKE_URI``, ``MLFLOW_TRACKING_URI``,
``KKBOX_TRAFFIC_LOG_URI``) choose what it reads. A missing piece (no service, no traffic, no
drift report yet) gets a note saying what to run; the rest of the page still works.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `streamlit run` from anywhere

from churn_transform.schema import EXAMPLE_RECORD  # noqa: E402
from churn_transform.settings import Settings, masked  # noqa: E402
from dashboard import client, monthly, retention  # noqa: E402

st.set_page_config(page_title="KKBox churn platform", layout="wide")
settings = Settings()
st.title("KKBox churn platform")


def champion_card() -> None:
    st.header("Champion")
    served = client.service_metadata(settings)
    about = served if served.value else client.registry_champion(settings)
    if not about.value:
        st.info(
            f"No model to show: {served.problem}; {about.problem}. Run `make demo`, then "
            "`make serve`."
        )
        return
    model, metrics = about.value, about.value.get("metrics", {})
    source = "served by the service" if served.value else f"from the registry ({served.problem})"
    trained = datetime.fromtimestamp(model["trained_at"] / 1000, UTC)
    st.caption(
        f"Version {model['registry_version']} of `{settings.model_name}`, {source}; "
        f"trained {trained:%Y-%m-%d %H:%M} UTC, run `{model['run_id']}`, "
        f"data version `{model.get('data_version', '?')}`"
    )
    shown = ("roc_auc", "log_loss", "pr_auc", "brier", "threshold", "auc_gap_to_oracle")
    for column, name in zip(st.columns(len(shown)), shown, strict=True):
        value = metrics.get(name)
        column.metric(name.replace("_", " "), "-" if value is None else f"{value:.4f}")


def live_predictions() -> None:
    st.header("Live predictions")
    days = st.slider("days of traffic", 1, 30, 7)
    found = client.traffic(settings, days)
    if found.value is None:
        st.info(
            f"No traffic yet: {found.problem}. Start the service (`make serve`) and send it "
            "requests (README, Serving)."
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


def drift() -> None:
    st.header("Drift")
    found = client.drift_reports(settings)
    if found.value is None:
        st.info(
            f"No drift report yet: {found.problem}. Run "
            "`mlflow run . -e drift --env-manager local` once there is traffic."
        )
        return
    reports = found.value
    latest = reports[-1]
    verdict = "Dataset drift" if latest["dataset_drift"] else "No dataset drift"
    st.subheader(
        f"{verdict}: {len(latest['drifted_columns'])} of {len(latest['columns'])} "
        f"features drifted (share {latest['drift_share']:.2f})"
    )
    st.caption(
        f"window {latest['window'][0]} to {latest['window'][1]}, "
        f"{latest['current_rows']:,} predictions against {latest['reference_rows']:,} "
        f"reference rows, model version {latest['model_version']}, "
        f"report of {latest['created']}"
    )
    st.dataframe(pd.DataFrame(latest["columns"]), hide_index=True)
    history = pd.DataFrame(
        {
            "created": pd.to_datetime([r["created"] for r in reports]),
            "drift share": [r["drift_share"] for r in reports],
        }
    ).set_index("created")
    st.caption("drift share of every report")
    st.line_chart(history)
    with st.expander("Evidently's full report"):
        # our own report, written by the drift step: trusted HTML (Evidently needs its scripts)
        st.iframe(client.report_html(settings, latest["report_path"]), height=900)


def score_one_user() -> None:
    st.header("Score one user")
    with st.form("score"):
        msno = st.text_input("subscriber id (msno), its features read from the feature store")
        cohort = st.text_input("cohort of the id, e.g. 2017-04 (empty: the newest served)")
        text = st.text_area(
            "or a gold record (JSON), when no id is given",
            json.dumps(EXAMPLE_RECORD, indent=1),
            height=300,
        )
        sent = st.form_submit_button("Score")
    if not sent:
        return
    try:
        record = None if msno.strip() else json.loads(text)
    except json.JSONDecodeError as err:
        st.error(f"not JSON: {err}")
        return
    try:
        if record is None:
            status, answer = client.score_id(settings, msno.strip(), cohort.strip() or None)
        else:
            status, answer = client.score(settings, record)
    except Exception as err:  # noqa: BLE001 (show any connection failure to the user)
        st.error(
            f"the service at {masked(settings.service_url)} does not answer "
            f"({type(err).__name__}): `make serve`"
        )
        return
    if status == 200:
        st.success(
            f"churn probability {answer[0]['churn_probability']:.3f}: "
            f"{'churn' if answer[0]['churn'] else 'stays'}"
        )
    else:
        st.error(f"the service refused the {'id' if record is None else 'record'} ({status})")
    st.json(answer)


champion_card()
live_predictions()
drift()
score_one_user()
retention.sections(settings)
monthly.sections(settings)
