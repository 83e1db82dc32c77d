"""The platform's dashboard, one tab per question: the champion (Model), the service's recent
predictions (Live), drift (Drift), whom the retention team contacts (Campaign), one subscriber's
score, standing and reasons (Subscriber), and month after month, the realized quality of every
labelled cohort and what each monthly cycle decided (Months).

    streamlit run dashboard/app.py      # or: make dashboard

Settings (``KKBOX_SERVICE_URL``, ``KKBOX_LAKE_URI``, ``MLFLOW_TRACKING_URI``,
``KKBOX_TRAFFIC_LOG_URI``) choose what it reads. A missing piece (no service, no traffic, no
drift report yet) gets a note saying what to run; the other tabs still work. Only the open tab
runs (a tab is a link too: ``?tab=Drift``), and reads are cached (``dashboard/reads.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `streamlit run` from anywhere

from churn_transform.settings import Settings  # noqa: E402
from dashboard import client, model, monitoring, monthly, reads, retention, subscriber  # noqa: E402

TABS: dict[str, Callable[[Settings], None]] = {
    "Model": model.section,
    "Live": monitoring.live,
    "Drift": monitoring.drift,
    "Campaign": retention.section,
    "Subscriber": subscriber.section,
    "Months": monthly.section,
}

st.set_page_config(page_title="KKBox churn platform", layout="wide")
settings = Settings()
client.bound_registry_calls()
title, refresh = st.columns([6, 1], vertical_alignment="bottom")
title.title("KKBox churn platform")
if refresh.button("Refresh", help="Read the service, the registry and the lake again"):
    reads.clear()
tabs = st.tabs(list(TABS), key="tab", on_change="rerun", bind="query-params")
for tab, section in zip(tabs, TABS.values(), strict=True):
    if tab.open:
        with tab:
            section(settings)
