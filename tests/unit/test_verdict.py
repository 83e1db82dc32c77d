"""A campaign's verdict (``churn_transform.monitoring.verdict``): figures computed by hand, the 95%
intervals' coverage of the true effect in seeded simulations, a control group too small to tell,
users without labels, logs that do not follow the plan, and the record in the lake."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn_transform.lake import Lake
from churn_transform.modelling.plan import CHURN_PROBABILITY, UPLIFT, PlanSummary
from churn_transform.monitoring.verdict import (
    CHURN_RANKED,
    Verdict,
    campaign_verdict,
    newest_verdict,
    played_plan,
    read_verdict,
    verdict_metrics,
    write_verdict,
)

Z = 1.959963984540054
COHORT = "2017-05"
CAMPAIGN = "retention-2017-05"


def _summary(offer_cost: float = 10.0, ranked_by: str = UPLIFT) -> PlanSummary:
    return PlanSummary(
        cohort=COHORT,
        campaign_id=CAMPAIGN,
        ranked_by=ranked_by,
        currency="NTD",
        subscribers=100,
        targets=80,
        contacted=40,
        control=40,
        expected_saves=12.0,
        expected_revenue=1200.0,
        cost=40 * offer_cost,
        expected_net_value=800.0,
        offer_cost=offer_cost,
        control_share=0.5,
        lifetime_months=6.0,
    )


def _campaign(
    contacted_churn: list[int], control_churn: list[int], value: float = 100.0
) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """A played log, the labels and the plan: the first users contacted with these outcomes,
    then the control targets with theirs; every user worth ``value``, forecast 0.3 saves and
    20 NTD of net value."""
    n, m = len(contacted_churn), len(control_churn)
    msno = [f"u{i}" for i in range(n + m)]
    treated = [1] * n + [0] * m
    log = pd.DataFrame(
        {"msno": msno, "campaign_id": CAMPAIGN, "offered_date": 20170501, "treated": treated}
    )
    plan = pd.DataFrame(
        {
            "msno": msno,
            "target": True,
            "contact": [t == 1 for t in treated],
            "control": [t == 0 for t in treated],
            "lifetime_value": value,
            "expected_save": 0.3,
            "offer_value": 20.0,
        }
    )
    labels = pd.Series(contacted_churn + control_churn, index=msno, name="is_churn")
    return log, labels, plan


def _halved() -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """40 contacted, 10 churned (25%); 40 held out, 20 churned (50%)."""
    return _campaign([1] * 10 + [0] * 30, [1] * 20 + [0] * 20)


def test_the_figures_are_those_computed_by_hand() -> None:
    log, labels, plan = _halved()
    oracle = pd.DataFrame(
        {"churn_probability": 0.5, "churn_probability_offered": 0.25}, index=plan["msno"]
    )
    verdict = campaign_verdict(log, labels, plan, _summary(), oracle)
    assert (verdict.contacted, verdict.control, verdict.unlabelled) == (40, 40, 0)
    assert (verdict.contacted_churn_rate, verdict.control_churn_rate) == (0.25, 0.5)
    assert verdict.realized_saves == pytest.approx(40 * (0.5 - 0.25))
    saves_error = math.sqrt(0.25 * 0.75 / 40 + 0.5 * 0.5 / 40)
    assert verdict.realized_saves_low == pytest.approx(10 - 40 * Z * saves_error)
    assert verdict.realized_saves_high == pytest.approx(10 + 40 * Z * saves_error)
    assert verdict.cost == 400.0
    # retained values: 75 of 100 NTD a contacted user on average, 50 a held out one
    assert verdict.realized_net_value == pytest.approx(40 * (75 - 50) - 400)
    # sample variances (n - 1) of 0/100 values kept by 75% and 50%
    value_error = math.sqrt(100**2 * (0.1875 + 0.25) / 39)
    assert verdict.realized_net_value_low == pytest.approx(600 - 40 * Z * value_error)
    assert verdict.realized_net_value_high == pytest.approx(600 + 40 * Z * value_error)
    assert verdict.return_on_cost == pytest.approx(600 / 400)
    assert (verdict.forecast_saves, verdict.forecast_net_value) == pytest.approx((12.0, 800.0))
    assert verdict.oracle_saves == pytest.approx(40 * 0.25)
    assert verdict.oracle_net_value == pytest.approx(40 * 0.25 * 100 - 400)
    assert "against a forecast of 800 and the oracle's 600: whether it paid" in verdict.said


def test_the_sentence_says_which_intervals_exclude_zero() -> None:
    said = campaign_verdict(*_halved(), _summary()).said
    assert said.startswith(f"Campaign {CAMPAIGN} saved 10.0 subscribers (95% interval 1.8 to 18.2)")
    assert "more than chance would give" in said
    assert "whether it paid for itself is not settled" in said  # -230 to 1,430 NTD
    cheap = campaign_verdict(*_halved(), _summary(offer_cost=0.0)).said
    assert "net value 1,000 NTD" in cheap and "it paid for itself" in cheap


def test_no_difference_and_a_loss_are_said_as_such() -> None:
    even = campaign_verdict(*_campaign([1] * 20 + [0] * 20, [1] * 20 + [0] * 20), _summary())
    assert even.realized_saves == 0 and "no difference distinguishable from chance" in even.said
    worse = campaign_verdict(*_campaign([1] * 30 + [0] * 10, [1] * 10 + [0] * 30), _summary())
    assert "lost 20.0 subscribers" in worse.said and "it did not pay for itself" in worse.said


def test_an_empty_control_group_is_too_small_to_tell() -> None:
    log, labels, plan = _campaign([1] * 10 + [0] * 30, [])
    verdict = campaign_verdict(log, labels, plan, _summary())
    assert verdict.control == 0 and verdict.control_churn_rate is None
    assert verdict.realized_saves is None and verdict.realized_net_value_high is None
    assert verdict.return_on_cost is None
    assert verdict.cost == 400.0 and verdict.forecast_saves == pytest.approx(12.0)
    assert verdict.too_small == "control"
    assert verdict.said == (
        f"Campaign {CAMPAIGN}: too small to tell. The control group had 0 churners and 0 "
        "stayers; an interval needs 10 of each. Hold out more: set a larger "
        "KKBOX_CONTROL_SHARE (e.g. 0.5) before the cohort is scored. Net value forecast 800 "
        "NTD. Churned: 25.0% of 40 contacted, no one held out."
    )


@pytest.mark.parametrize(
    ("contacted", "control", "said"),
    [
        (
            [1] * 10 + [0] * 30,
            [1] * 9 + [0] * 300,
            "The control group had 9 churners and 300 stayers; an interval needs 10 of each. "
            "Hold out more: set a larger KKBOX_CONTROL_SHARE",
        ),
        (
            [1] * 10 + [0] * 30,
            [1] * 300 + [0] * 9,
            "The control group had 300 churners and 9 stayers",
        ),
        (
            [1] * 9 + [0] * 300,
            [1] * 20 + [0] * 20,
            "The contacted group had 9 churners and 300 stayers; an interval needs 10 of each. "
            "It takes a larger campaign.",
        ),
    ],
)
def test_a_group_with_few_churners_or_stayers_is_too_small_to_tell(
    contacted: list[int], control: list[int], said: str
) -> None:
    verdict = campaign_verdict(*_campaign(contacted, control), _summary())
    assert verdict.realized_saves is None and said in verdict.said


def test_the_sentence_says_both_groups_churn_rates() -> None:
    said = campaign_verdict(*_halved(), _summary()).said
    assert said.endswith(" Churned: 25.0% of 40 contacted, 50.0% of 40 held out.")
    few = campaign_verdict(*_campaign([1] * 10 + [0] * 30, [1] * 8 + [0] * 4), _summary()).said
    assert "Churned: 25.0% of 40 contacted, 66.7% of 12 held out." in few


def _oracle(offered: float) -> pd.DataFrame:
    """The oracle's answer for the users of ``_halved``: churn 0.5, ``offered`` with an offer."""
    msno = [f"u{i}" for i in range(80)]
    return pd.DataFrame(
        {"churn_probability": 0.5, "churn_probability_offered": offered}, index=msno
    )


def test_a_churn_probability_list_saving_far_below_its_forecast_is_said_why() -> None:
    assert CHURN_RANKED == CHURN_PROBABILITY
    churn_ranked = _summary(ranked_by=CHURN_PROBABILITY)
    why = "Ranked by churn probability, the list targets likely churners an offer rarely saves"
    # the oracle expects 40 * 0.01 = 0.4 saves against a forecast of 12
    hardly = campaign_verdict(*_halved(), churn_ranked, _oracle(0.49))
    assert hardly.ranked_by == CHURN_PROBABILITY
    assert hardly.said.endswith(
        f"{why}: the forecast of 12.0 saves assumes it keeps a share of each (docs/uplift.md)."
    )
    # no oracle; realized: 40 * (0.5 - 0.475) = 1 save against 12
    realized = campaign_verdict(*_campaign([1] * 19 + [0] * 21, [1] * 20 + [0] * 20), churn_ranked)
    assert realized.realized_saves == pytest.approx(1.0) and why in realized.said
    # the oracle expects 10 saves, realized 10: near the forecast of 12
    assert why not in campaign_verdict(*_halved(), churn_ranked, _oracle(0.25)).said
    # an uplift list is not said to be ranked by churn probability
    uplift = campaign_verdict(*_halved(), _summary(), _oracle(0.49))
    assert uplift.ranked_by == UPLIFT and why not in uplift.said


def test_users_without_labels_are_left_out_of_the_figures_and_the_cost() -> None:
    log, labels, plan = _halved()
    unlabelled = labels.drop(["u0", "u1"])  # two contacted churners
    unlabelled.loc["u40"] = np.nan  # a held out churner
    verdict = campaign_verdict(log, unlabelled, plan, _summary())
    assert (verdict.contacted, verdict.control, verdict.unlabelled) == (38, 39, 3)
    assert verdict.contacted_churn_rate == pytest.approx(8 / 38)
    assert verdict.control_churn_rate == pytest.approx(19 / 39)
    assert verdict.cost == 380.0 and verdict.forecast_saves == pytest.approx(38 * 0.3)


def test_held_out_users_outside_the_plan_s_control_targets_are_not_compared() -> None:
    log, labels, plan = _halved()
    plan.loc[plan["msno"].isin(["u40", "u41"]), "target"] = False
    verdict = campaign_verdict(log, labels, plan, _summary())
    assert (verdict.control, verdict.not_compared) == (38, 2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"campaign_id": "retention-2017-04"}, "row 3: campaign_id 'retention-2017-04' is not"),
        ({"treated": 2}, "row 3: treated 2 is neither 0 nor 1"),
        ({"msno": "stranger"}, "row 3: msno 'stranger' is not in the plan"),
        ({"msno": "u0"}, "row 3: msno 'u0' is listed twice"),
    ],
)
def test_a_log_that_does_not_follow_the_plan_is_refused_naming_its_row(
    change: dict[str, object], message: str
) -> None:
    log, labels, plan = _halved()
    for column, value in change.items():
        log[column] = log[column].astype(object)
        log.loc[3, column] = value
    with pytest.raises(ValueError, match=message):
        campaign_verdict(log, labels, plan, _summary())


def test_a_contacted_user_the_plan_held_out_is_refused() -> None:
    log, labels, plan = _halved()
    log.loc[45, "treated"] = 1
    with pytest.raises(ValueError, match="row 45: msno 'u45' was contacted, but the plan did not"):
        campaign_verdict(log, labels, plan, _summary())


@pytest.mark.parametrize(
    ("frame", "column", "message"),
    [
        ("plan", "lifetime_value", "the plan has no column lifetime_value"),
        ("plan", "expected_save", "the plan has no column expected_save"),
        ("log", "treated", "the campaign log has no column treated"),
        ("oracle", "churn_probability_offered", "the oracle has no column churn_probability_of"),
    ],
)
def test_a_missing_column_is_named(frame: str, column: str, message: str) -> None:
    log, labels, plan = _halved()
    oracle = pd.DataFrame(
        {"churn_probability": 0.5, "churn_probability_offered": 0.25}, index=plan["msno"]
    )
    frames = {"log": log, "plan": plan, "oracle": oracle}
    frames[frame] = frames[frame].drop(columns=column)
    with pytest.raises(ValueError, match=message):
        campaign_verdict(frames["log"], labels, frames["plan"], _summary(), frames["oracle"])


def test_a_label_that_is_not_0_or_1_and_a_missing_value_are_named() -> None:
    log, labels, plan = _halved()
    wrong = labels.copy()
    wrong["u2"] = 2
    with pytest.raises(ValueError, match="the label of msno 'u2' is 2"):
        campaign_verdict(log, wrong, plan, _summary())
    plan.loc[5, "lifetime_value"] = np.nan
    with pytest.raises(ValueError, match="msno 'u5' has no lifetime_value"):
        campaign_verdict(log, labels, plan, _summary())


def _simulated(seed: int) -> tuple[Verdict, float, float]:
    """A campaign of 3,000 targets, a fifth held out, each with their own churn probability with
    and without the offer and their own lifetime value; the verdict of one draw of the outcomes
    and the true effect on the contacted (the saves and net value the probabilities expect)."""
    rng = np.random.default_rng(seed)
    users = 3000
    without = rng.uniform(0.1, 0.6, users)
    offered = without - rng.uniform(0.0, 0.15, users)
    value = rng.uniform(100, 500, users)
    held_out = rng.random(users) < 0.2
    churn = rng.random(users) < np.where(held_out, without, offered)
    msno = [f"s{i}" for i in range(users)]
    log = pd.DataFrame({"msno": msno, "campaign_id": CAMPAIGN, "treated": (~held_out).astype(int)})
    plan = pd.DataFrame(
        {
            "msno": msno,
            "target": True,
            "contact": ~held_out,
            "control": held_out,
            "lifetime_value": value,
            "expected_save": 0.1,
            "offer_value": 1.0,
        }
    )
    labels = pd.Series(churn.astype(int), index=msno)
    verdict = campaign_verdict(log, labels, plan, _summary(offer_cost=20.0))
    drop = (without - offered)[~held_out]
    return verdict, float(drop.sum()), float((drop * value[~held_out]).sum() - 20.0 * drop.size)


def test_the_95_percent_intervals_cover_the_true_effect_about_95_times_in_100() -> None:
    saves_covered, value_covered = [], []
    for seed in range(200):
        verdict, saves, net_value = _simulated(seed)
        low, high = verdict.realized_saves_low, verdict.realized_saves_high
        assert low is not None and high is not None
        saves_covered.append(low <= saves <= high)
        low, high = verdict.realized_net_value_low, verdict.realized_net_value_high
        assert low is not None and high is not None
        value_covered.append(low <= net_value <= high)
    assert 0.90 <= np.mean(saves_covered) <= 0.99
    assert 0.90 <= np.mean(value_covered) <= 0.99


def test_the_record_reads_back_through_json_and_the_lake(tmp_path: Path) -> None:
    log, labels, plan = _campaign([1] * 10 + [0] * 30, [])  # None figures among them
    verdict = campaign_verdict(log, labels, plan, _summary())
    assert Verdict.from_json(verdict.to_json()) == verdict
    lake = Lake(str(tmp_path / "lake"))
    assert read_verdict(lake, COHORT) is None and newest_verdict(lake) is None
    url = write_verdict(lake, verdict)
    assert url.endswith(f"quality/{COHORT}/campaign_verdict.json")
    later = campaign_verdict(*_halved(), _summary())
    write_verdict(lake, Verdict(**{**later.__dict__, "cohort": "2017-06"}))
    assert read_verdict(lake, COHORT) == verdict
    newest = newest_verdict(lake)
    assert newest is not None and newest.cohort == "2017-06"


def test_a_record_from_before_the_ranking_rule_was_kept_still_reads() -> None:
    verdict = campaign_verdict(*_halved(), _summary(ranked_by=CHURN_PROBABILITY))
    record = json.loads(verdict.to_json())
    del record["ranked_by"]
    older = Verdict.from_json(json.dumps(record))
    assert older.ranked_by is None and older == Verdict(**{**verdict.__dict__, "ranked_by": None})


def test_a_record_without_a_field_is_refused_naming_it() -> None:
    text = campaign_verdict(*_halved(), _summary()).to_json().replace('"cost"', '"costs"')
    with pytest.raises(ValueError, match=r"lacks the field\(s\) \['cost'\]"):
        Verdict.from_json(text)


def test_the_metrics_are_the_measured_figures() -> None:
    metrics = verdict_metrics(campaign_verdict(*_halved(), _summary()))
    assert metrics["campaign_realized_saves"] == pytest.approx(10.0)
    assert metrics["campaign_cost"] == 400.0 and metrics["campaign_forecast_net_value"] == 800.0
    assert {"campaign_realized_saves_low", "campaign_realized_net_value_high"} <= set(metrics)
    assert "campaign_oracle_saves" not in metrics  # real data: no oracle
    empty = verdict_metrics(campaign_verdict(*_campaign([1] * 10 + [0] * 30, []), _summary()))
    assert "campaign_realized_saves" not in empty and empty["campaign_control"] == 0


def test_the_plan_played_is_the_newest_whose_contacts_the_log_contacted() -> None:
    log, _, plan = _halved()
    rescored = plan.assign(contact=plan["msno"].isin(["u0", "u1"]))  # a newer champion's list
    older = plan.assign(offer_value=5.0)
    plans = [(rescored, _summary()), (plan, _summary()), (older, _summary())]
    played = played_plan(log, plans)
    assert played is not None and played[0] is plan
    assert played_plan(log.assign(treated=0), plans) is None
