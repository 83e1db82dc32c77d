"""The campaign list as an action plan: the two ranking rules, the sizing, the sticky control
group never contacted, the action table, the call-by date and totals that add up."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn_transform.modelling.explanation import READABLE
from churn_transform.modelling.plan import (
    ACTIONS,
    CHURN_PROBABILITY,
    RE_ENGAGEMENT,
    RENEWAL_NUDGE,
    RETENTION_OFFER,
    UPLIFT,
    WIN_BACK,
    PlanSummary,
    action,
    action_plan,
    by_uplift,
    call_by,
    campaign_id,
    contact_log,
    expected_months,
    in_control,
)

USERS = pd.Series([f"user{i:06d}" for i in range(20_000)])


def _scores(uplift: list[float] | None = None) -> pd.DataFrame:
    scores = pd.DataFrame(
        {
            "msno": ["a", "b", "c", "d"],
            "churn_probability": [0.1, 0.8, 0.5, 0.2],
            "churn": [False, True, True, False],
            "reason_1": [
                "auto-renew on the last plan: 0",
                "last transaction was a cancellation: 1",
                "listening time, last 7 days: 0",
                "",
            ],
            "last_list_price": [149.0, 149.0, 99.0, 149.0],
            "last_plan_days": [30, 30, 30, 30],
            "days_to_expiry": [0, 14, 29, np.nan],
            "city": [1, 5, 1, 13],
        }
    )
    return scores if uplift is None else scores.assign(uplift=uplift)


@pytest.mark.parametrize("share", [0.05, 0.1, 0.3])
def test_the_control_share_is_about_the_parameter(share: float) -> None:
    drawn = in_control(USERS, "retention-2017-04", share).mean()
    assert drawn == pytest.approx(share, abs=4 * np.sqrt(share * (1 - share) / len(USERS)))


def test_the_control_group_is_sticky_across_runs_and_orders_and_new_per_campaign() -> None:
    first = in_control(USERS, "retention-2017-04", 0.1)
    shuffled = USERS.sample(frac=1, random_state=3)
    again = in_control(shuffled, "retention-2017-04", 0.1)
    assert (again == first[shuffled.index]).all()
    other = in_control(USERS, "retention-2017-05", 0.1)
    assert 0 < (other != first).mean() < 0.3  # a new draw, about 2 * 0.1 * 0.9 differ


def test_a_larger_share_keeps_every_subscriber_the_smaller_one_held_out() -> None:
    small, large = in_control(USERS, "c", 0.1), in_control(USERS, "c", 0.2)
    assert not (small & ~large).any() and large.sum() > small.sum()


@pytest.mark.parametrize("share", [-0.1, 1.0])
def test_a_control_share_outside_0_1_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="control share must lie in"):
        in_control(USERS[:3], "c", share)


def test_control_subscribers_are_listed_but_never_contacted() -> None:
    users = pd.DataFrame(
        {
            "msno": USERS[:2000],
            "churn_probability": np.linspace(0.05, 0.95, 2000),
            "churn": False,
            "last_list_price": 149.0,
            "last_plan_days": 30,
            "days_to_expiry": 10,
        }
    )
    listed, plan = action_plan(users, "2017-04", 10.0, 0.3, 0.2)
    assert listed["control"].any() and not (listed["contact"] & listed["control"]).any()
    assert (listed["contact"] == listed["target"] & ~listed["control"]).all()
    assert plan.control == int((listed["target"] & listed["control"]).sum()) > 0
    assert plan.targets == plan.contacted + plan.control


def test_the_uplift_rule_ranks_by_incremental_value_and_keeps_the_positive_ones() -> None:
    # values 0.1 * 100 - 5, 0.02 * 100 - 5, 0.3 * 10 - 5, 0.06 * 100 - 5: 5, -3, -2, 1
    rated = by_uplift(
        np.array([0.1, 0.02, 0.3, 0.06]), np.array([100.0, 100.0, 10.0, 100.0]), 5.0, 1.0
    )
    assert rated.order.tolist() == [0, 3, 2, 1] and rated.size == 2
    np.testing.assert_allclose(rated.value, [5.0, -3.0, -2.0, 1.0])


def test_the_lifetime_is_the_months_a_kept_subscriber_stays_within_a_year() -> None:
    assert expected_months(0.5) == pytest.approx(2 * (1 - 0.5**12))
    assert (expected_months(0.0), expected_months(1.0)) == (1.0, 12.0)
    with pytest.raises(ValueError, match="renewal rate must lie in"):
        expected_months(1.5)


def test_with_an_uplift_the_list_is_ranked_by_uplift_times_lifetime_value() -> None:
    listed, plan = action_plan(_scores([0.01, 0.05, 0.2, -0.02]), "2017-04", 10.0, 0.3, 0.0)
    months = expected_months(1 - np.mean([0.1, 0.8, 0.5, 0.2]))
    values = np.array([0.01 * 149, 0.05 * 149, 0.2 * 99, -0.02 * 149]) * months - 10
    assert listed["msno"].tolist() == ["c", "b", "a", "d"]
    np.testing.assert_allclose(listed["offer_value"], values[[2, 1, 0, 3]])
    assert listed["target"].tolist() == (values[[2, 1, 0, 3]] > 0).tolist()
    assert set(listed["ranked_by"]) == {UPLIFT} and plan.ranked_by == UPLIFT
    assert plan.lifetime_months == pytest.approx(months)


def test_without_an_uplift_the_list_is_today_s_churn_probability_rule() -> None:
    listed, plan = action_plan(_scores(), "2017-04", 10.0, 0.3, 0.0)
    # offer value 0.3 * p * price - 10: 0.3 * 0.8 * 149 - 10 = 25.76, 0.3 * 0.5 * 99 - 10 = 4.85
    assert listed["msno"].tolist() == ["b", "c", "d", "a"]
    assert listed["target"].tolist() == [True, True, False, False]
    assert listed["offer_value"].iloc[:2].tolist() == pytest.approx([25.76, 4.85])
    assert set(listed["ranked_by"]) == {CHURN_PROBABILITY} and plan.lifetime_months is None
    assert listed["uplift"].isna().all()


def test_the_list_keeps_today_s_columns_first_and_the_plan_s_after() -> None:
    listed, _ = action_plan(_scores(), "2017-04", 10.0, 0.3, 0.0)
    assert listed.columns.tolist()[:14] == [
        "msno",
        "churn_probability",
        "churn",
        "target",
        "revenue_at_risk",
        "offer_value",
        "contact",
        "control",
        "action",
        "call_by",
        "ranked_by",
        "uplift",
        "lifetime_value",
        "expected_save",
    ]
    assert "reason_1" in listed and "city" in listed and "days_to_expiry" not in listed


def test_each_row_says_its_action_and_its_plan_s_expiry() -> None:
    listed, _ = action_plan(_scores(), "2017-04", 10.0, 0.3, 0.0)
    row = listed.set_index("msno")
    assert row["action"].to_dict() == {
        "a": RENEWAL_NUDGE,
        "b": WIN_BACK,
        "c": RE_ENGAGEMENT,
        "d": RETENTION_OFFER,
    }
    assert row["call_by"].to_dict() == {"a": "2017-04-01", "b": "2017-04-15", "c": "2017-04-30"} | {
        "d": ""
    }


@pytest.mark.parametrize(
    ("feature", "expected"),
    [
        ("last_is_auto_renew", RENEWAL_NUDGE),
        ("auto_renew_share", RENEWAL_NUDGE),
        ("secs_30", RE_ENGAGEMENT),
        ("days_since_last_log", RE_ENGAGEMENT),
        ("days_since_last_cancel", WIN_BACK),
        ("last_is_cancel", WIN_BACK),
        ("bd", RETENTION_OFFER),
    ],
)
def test_the_action_table_maps_a_reason_s_feature_to_its_action(
    feature: str, expected: str
) -> None:
    assert ACTIONS[feature] == expected
    assert action(f"{READABLE[feature]}: 3") == expected


def test_the_action_table_covers_every_feature_a_reason_may_name() -> None:
    assert set(ACTIONS) == set(READABLE)


def test_a_reason_naming_no_feature_is_refused() -> None:
    with pytest.raises(ValueError, match="'mood: 3' names no feature"):
        action("mood: 3")


def test_the_summary_s_totals_add_up_over_the_contacted() -> None:
    uplift = np.random.default_rng(0).normal(0.05, 0.05, 2000)
    users = pd.DataFrame(
        {
            "msno": USERS[:2000],
            "churn_probability": np.random.default_rng(1).uniform(0, 0.4, 2000),
            "churn": False,
            "last_list_price": 149.0,
            "last_plan_days": 30,
            "days_to_expiry": 3,
            "uplift": uplift,
        }
    )
    listed, plan = action_plan(users, "2017-04", 10.0, 0.3, 0.1)
    contacted = listed[listed["contact"]]
    assert plan.contacted == len(contacted) and plan.targets == int(listed["target"].sum())
    assert plan.cost == 10.0 * len(contacted)
    assert plan.expected_saves == pytest.approx(contacted["uplift"].sum())
    assert plan.expected_net_value == pytest.approx(contacted["offer_value"].sum())
    assert plan.expected_revenue - plan.cost == pytest.approx(plan.expected_net_value)
    assert (plan.currency, plan.campaign_id, plan.subscribers) == ("NTD", "retention-2017-04", 2000)
    assert PlanSummary.from_json(plan.to_json()) == plan
    assert "NTD" in plan.said and f"{plan.contacted:,} contacted" in plan.said


def test_a_missing_uplift_is_refused_naming_the_row() -> None:
    with pytest.raises(ValueError, match=r"row 2 \(msno 'c'\) has no uplift"):
        action_plan(_scores([0.1, 0.1, np.nan, 0.1]), "2017-04", 10.0, 0.3, 0.1)


def test_the_call_by_date_is_the_cohort_s_first_day_plus_the_days_to_expiry() -> None:
    said = call_by("2017-02", pd.Series([0, 27, np.nan]))
    assert said.tolist() == ["2017-02-01", "2017-02-28", ""]
    assert campaign_id("2017-02") == "retention-2017-02"


def test_the_draw_is_sha256_of_the_campaign_and_msno_so_no_process_changes_it() -> None:
    # unlike Python's hash(), salted per process: the draw a later run (or month) makes again
    expected = [
        int(hashlib.sha256(f"retention-2017-04:{m}".encode()).hexdigest()[:16], 16) / 2**64 < 0.3
        for m in USERS[:200]
    ]
    assert in_control(USERS[:200], "retention-2017-04", 0.3).tolist() == expected


def test_under_the_uplift_rule_a_kept_subscriber_is_worth_a_month_times_the_lifetime() -> None:
    listed, plan = action_plan(_scores([0.01, 0.05, 0.2, -0.02]), "2017-04", 10.0, 0.3, 0.0)
    row = listed.set_index("msno")
    months = plan.lifetime_months
    assert row["lifetime_value"].to_dict() == pytest.approx(
        {"a": 149 * months, "b": 149 * months, "c": 99 * months, "d": 149 * months}
    )
    assert row["expected_save"].to_dict() == pytest.approx(
        {"a": 0.01, "b": 0.05, "c": 0.2, "d": -0.02}
    )
    np.testing.assert_allclose(
        listed["offer_value"], listed["expected_save"] * listed["lifetime_value"] - 10.0
    )


def test_under_the_churn_rule_a_kept_subscriber_is_worth_a_month_of_the_plan() -> None:
    listed, _ = action_plan(_scores(), "2017-04", 10.0, 0.3, 0.0)
    row = listed.set_index("msno")
    assert row["lifetime_value"].to_dict() == pytest.approx({"a": 149, "b": 149, "c": 99, "d": 149})
    # the saves: acceptance times the churn probability
    assert row["expected_save"].to_dict() == pytest.approx(
        {"a": 0.03, "b": 0.24, "c": 0.15, "d": 0.06}
    )


def _listed() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "msno": ["b", "c", "a", "d"],
            "target": [True, True, True, False],
            "contact": [True, False, True, False],
            "control": [False, True, False, True],
        }
    )


def test_the_contact_log_has_a_row_per_target_treated_when_contacted() -> None:
    log = contact_log(_listed(), "2017-04")
    assert log.columns.tolist() == ["msno", "campaign_id", "offered_date", "treated"]
    assert log["msno"].tolist() == ["b", "c", "a"]  # the untargeted d is not in the campaign
    assert log["treated"].tolist() == [1, 0, 1]  # c: a target held out as control
    assert set(log["campaign_id"]) == {"retention-2017-04"}
    assert set(log["offered_date"]) == {20170401}


def test_the_contact_log_of_a_list_read_back_from_csv_is_the_same(tmp_path: Path) -> None:
    listed, _ = action_plan(_scores([0.01, 0.05, 0.2, -0.02]), "2017-06", 10.0, 0.3, 0.5)
    listed.to_csv(tmp_path / "campaign.csv", index=False)
    read = pd.read_csv(tmp_path / "campaign.csv", keep_default_na=False, na_values=[""])
    pd.testing.assert_frame_equal(contact_log(read, "2017-06"), contact_log(listed, "2017-06"))
    assert set(contact_log(listed, "2017-06")["offered_date"]) == {20170601}


def test_a_list_without_its_contact_column_gives_no_log() -> None:
    with pytest.raises(ValueError, match="campaign list has no column contact"):
        contact_log(_listed().drop(columns="contact"), "2017-04")
