"""The retraining policy (``monitoring.policy``) and its agreement with the decay alert."""

from __future__ import annotations

import re
from dataclasses import replace

import yaml

from churn_transform.dates import months_between, shift_month
from churn_transform.monitoring.policy import Evidence, Policy, decide
from churn_transform.settings import PROJECT_ROOT

POLICY = Policy(max_auc_drop=0.03, max_age_months=6, retrain_on_drift=True, max_client_share=0.5)


def _evidence(**change: object) -> Evidence:
    values: dict[str, object] = {
        "cohort": "2017-06",
        "realized_auc": 0.90,
        "evaluated_auc": 0.91,
        "evaluated_cohort": "2017-03",
        "drift_alarm": False,
    }
    return Evidence(**{**values, **change})  # type: ignore[arg-type]


def test_a_champion_within_every_limit_is_kept_and_says_why() -> None:
    decision = decide(POLICY, _evidence())
    assert not decision.retrain
    assert "realized ROC AUC 0.9000 on 2017-06, 0.0100 below the champion's" in decision.text()
    better = decide(POLICY, _evidence(realized_auc=0.95)).text()
    assert "realized ROC AUC 0.9500 on 2017-06, 0.0400 above the champion's own 0.9100" in better
    assert "no drift alarm" in decision.text() and "3 month(s)" in decision.text()


def test_each_rule_alone_asks_for_a_retrain() -> None:
    decayed = decide(POLICY, _evidence(realized_auc=0.87))
    assert decayed.retrain and decayed.reasons == (
        "realized ROC AUC 0.8700 on 2017-06, 0.0400 below the champion's own 0.9100 (retrain when "
        "more than 0.03 below)",
    )
    assert decide(POLICY, _evidence(drift_alarm=True)).retrain
    assert not decide(replace(POLICY, retrain_on_drift=False), _evidence(drift_alarm=True)).retrain
    old = decide(replace(POLICY, max_age_months=3), _evidence())
    assert old.retrain and "judged on 2017-03, 3 month(s) before 2017-06" in old.text()
    assert not decide(POLICY, _evidence(realized_auc=None)).retrain


def test_months_between_crosses_years() -> None:
    assert months_between("2016-11", "2017-02") == 3
    assert months_between("2017-03", "2017-03") == 0
    assert shift_month("2016-11", 3) == "2017-02" and shift_month("2017-01", -1) == "2016-12"


def test_the_decay_alert_and_the_cycle_use_the_policy_s_limit() -> None:
    cycle = yaml.safe_load((PROJECT_ROOT / "MLproject").read_text())["entry_points"]["cycle"]
    default = float(cycle["parameters"]["max_auc_drop"]["default"])
    alerts = yaml.safe_load((PROJECT_ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    rules = {r["alert"]: r for g in alerts["groups"] for r in g["rules"]}
    limit = re.search(
        r"kkbox_evaluated_roc_auc - ([0-9.]+)", rules["ChurnModelQualityDecayed"]["expr"]
    )
    assert limit is not None and float(limit[1]) == default


def test_a_drift_one_client_could_cause_alone_is_no_reason_to_retrain() -> None:
    """Issue 30: one key's repeated records raised the drift share and forced a retrain."""
    flooded = decide(POLICY, _evidence(drift_alarm=True, drift_top_client_share=0.9))
    assert not flooded.retrain
    assert "the drift alarm rests on one client's traffic (90% of the subscribers judged; " in (
        flooded.text()
    )
    assert decide(POLICY, _evidence(drift_alarm=True, drift_top_client_share=0.5)).retrain
    assert decide(POLICY, _evidence(drift_alarm=True, drift_top_client_share=None)).retrain
    single = replace(POLICY, max_client_share=1.0)  # a deployment with one client, by choice
    assert decide(single, _evidence(drift_alarm=True, drift_top_client_share=1.0)).retrain
