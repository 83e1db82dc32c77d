"""Retention offers: a known effect per subscriber, and a past campaign with a random control."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn_transform.synthetic import GeneratorConfig
from churn_transform.synthetic.campaign import CAMPAIGN_COHORT, CAMPAIGN_FILE
from churn_transform.synthetic.oracle import OFFER, WEIGHTS, offer_change
from churn_transform.synthetic.report import describe
from tests.generator.conftest import Dataset, make

SMALL = {"users": 1500, "log_start": "2016-11-01", "chunk_users": 600, "seed": 3}
SHARE = 0.4
#: Enough users that the decisions of the subscribers the offer moves most tell the treated
#: probability from the untreated one (about 5 standard errors apart).
LARGE = {"users": 30_000, "log_start": "2016-11-01", "seed": 5}


def _drivers(**values: float) -> pd.DataFrame:
    """One subscriber: an engaged auto-renewer paying list price, changed by ``values``."""
    typical = dict.fromkeys(WEIGHTS, 0.0) | {"silent_days": 1.0, "active_30": 20.0}
    return pd.DataFrame([typical | values])


def _effect(**values: float) -> float:
    """The drop in churn logit the offer brings (positive: it saves)."""
    return float(-offer_change(_drivers(**values))[0])


@pytest.mark.parametrize(
    ("drivers", "change"),
    [
        ({"no_auto_renew": 1, "discount_last": 1}, -(1.2 + 0.9)),
        ({"no_auto_renew": 1, "free_last": 1, "silent_days": 17}, -(1.2 + 0.6) * np.exp(-1)),
        ({"no_auto_renew": 1, "last_is_cancel": 1}, -(1 - 0.95) * 1.2),
        ({}, -0.15),
        ({"silent_days": 17}, 0.8 - 0.15 * np.exp(-1)),
        ({"silent_days": 45}, -0.15 * np.exp(-3.8)),
    ],
)
def test_the_change_of_the_logit_is_the_documented_formula(
    drivers: dict[str, float], change: float
) -> None:
    assert offer_change(_drivers(**drivers))[0] == pytest.approx(change)


def test_price_sensitive_manual_renewers_are_saved_most() -> None:
    auto = _effect()
    manual = _effect(no_auto_renew=1)
    discounted = _effect(no_auto_renew=1, discount_last=1)
    free = _effect(no_auto_renew=1, free_last=1)
    assert 0 < auto < 0.2 < manual < free < discounted + OFFER["free"]
    assert discounted > manual


@pytest.mark.parametrize(
    "drivers",
    [
        {"no_auto_renew": 1, "last_is_cancel": 1, "discount_last": 1},  # just cancelled
        {"no_auto_renew": 1, "silent_days": 60, "active_30": 0},  # stopped listening long ago
    ],
)
def test_cancellers_and_the_long_silent_are_rarely_saved(drivers: dict[str, float]) -> None:
    assert 0 <= _effect(**drivers) < 0.1 * _effect(no_auto_renew=1)


def test_an_auto_renewer_gone_quiet_is_reminded_to_leave() -> None:
    assert _effect(silent_days=20, active_30=5) < -0.5
    assert _effect(silent_days=20, active_30=5, no_auto_renew=1) > 0


@pytest.mark.parametrize("share", [-0.1, 1.0])
def test_a_campaign_share_out_of_range_is_named(share: float) -> None:
    with pytest.raises(ValueError, match=r"campaign_share must lie in \[0, 1\)"):
        GeneratorConfig(users=10, campaign_share=share)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Dataset, Dataset]:
    root = tmp_path_factory.mktemp("offers")
    return make(root / "none", **SMALL), make(root / "campaign", campaign_share=SHARE, **SMALL)


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns), ignore_index=True)


def test_without_a_campaign_there_is_no_log_and_no_offered_column(
    pair: tuple[Dataset, Dataset],
) -> None:
    none = pair[0]
    assert not (none.root / "raw" / CAMPAIGN_FILE).exists()
    assert "churn_probability_offered" not in none.oracle().columns


def test_a_campaign_changes_the_log_the_oracle_columns_and_treated_decisions_only(
    pair: tuple[Dataset, Dataset],
) -> None:
    none, campaign = pair
    before, after = _digests(none.root / "raw"), _digests(campaign.root / "raw")
    assert set(after) == {*before, CAMPAIGN_FILE}
    for name in ("members_v3.csv", "train.csv"):  # decided before the campaign
        assert after[name] == before[name]
    # the past: the same rows (the outliers of total_secs, a file quirk, are drawn anew)
    pd.testing.assert_frame_equal(
        _sorted(none.read("transactions.csv")), _sorted(campaign.read("transactions.csv"))
    )
    listening = [c for c in none.read("user_logs.csv").columns if c != "total_secs"]
    pd.testing.assert_frame_equal(
        _sorted(none.read("user_logs.csv")[listening]),
        _sorted(campaign.read("user_logs.csv")[listening]),
    )
    plain, offered = none.oracle(), campaign.oracle()
    assert list(offered.columns) == [*plain.columns, "churn_probability_offered"]
    earlier = offered["cohort"] < CAMPAIGN_COHORT
    pd.testing.assert_frame_equal(
        offered.loc[earlier, plain.columns].reset_index(drop=True),
        plain[plain["cohort"] < CAMPAIGN_COHORT].reset_index(drop=True),
    )
    march = _march(campaign).join(_march(none), rsuffix="_none", how="outer")
    assert march["is_churn_none"].notna().all() and march["is_churn"].notna().all()
    np.testing.assert_array_equal(march["churn_probability"], march["churn_probability_none"])
    control = march[march["treated"] == 0]
    assert (control["is_churn"] == control["is_churn_none"]).all()
    moved = march[march["is_churn"] != march["is_churn_none"]]
    assert (moved["treated"] == 1).all() and len(moved) > 0
    # the offer moves a decision only the way its effect points: saved where it lowers the risk
    saves = moved["is_churn"] == 0
    lower = moved["churn_probability_offered"] < moved["churn_probability"]
    assert (saves == lower).all()


def _march(data: Dataset) -> pd.DataFrame:
    """The campaign cohort's oracle answers with the campaign's ``treated`` (0 without one)."""
    oracle = data.oracle()
    march = oracle[oracle["cohort"] == CAMPAIGN_COHORT].set_index("msno")
    log = data.root / "raw" / CAMPAIGN_FILE
    if not log.exists():
        return march[["churn_probability", "is_churn"]]
    campaign = pd.read_csv(log).set_index("msno")
    assert campaign.index.is_unique and campaign.index.sort_values().equals(
        march.index.sort_values()
    )
    return march.join(campaign)


def test_the_log_records_one_campaign_at_the_cohort_cutoff(pair: tuple[Dataset, Dataset]) -> None:
    log = pd.read_csv(pair[1].root / "raw" / CAMPAIGN_FILE)
    assert list(log.columns) == ["msno", "campaign_id", "offered_date", "treated"]
    assert set(log["campaign_id"]) == {"retention-2017-03"}
    assert set(log["offered_date"]) == {20170301}
    assert set(log["treated"]) == {0, 1}


def test_the_campaign_is_reproducible_from_the_seed_in_any_number_of_processes(
    pair: tuple[Dataset, Dataset], tmp_path: Path
) -> None:
    again = make(tmp_path / "again", campaign_share=SHARE, processes=2, **SMALL)
    assert _digests(again.root / "raw") == _digests(pair[1].root / "raw")
    assert _digests(again.root / "oracle") == _digests(pair[1].root / "oracle")
    other = make(tmp_path / "other", campaign_share=SHARE, **(SMALL | {"seed": 4}))
    assert (
        _digests(other.root / "raw")[CAMPAIGN_FILE] != _digests(pair[1].root / "raw")[CAMPAIGN_FILE]
    )


@pytest.fixture(scope="module")
def large_data(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return make(tmp_path_factory.mktemp("large"), campaign_share=0.5, **LARGE)


@pytest.fixture(scope="module")
def large(large_data: Dataset) -> pd.DataFrame:
    return _march(large_data)


def test_the_offered_share_matches_the_parameter(large: pd.DataFrame) -> None:
    treated = large["treated"]
    assert treated.mean() == pytest.approx(0.5, abs=3 * np.sqrt(0.25 / len(treated)))


@pytest.mark.parametrize(("group", "taken", "other"), [(0, "", "_offered"), (1, "_offered", "")])
def test_decisions_follow_the_probability_of_their_group(
    large: pd.DataFrame, group: int, taken: str, other: str
) -> None:
    """Among subscribers the offer moves by over 0.1, the churn rate of each group lies within 3
    standard errors of its own mean probability and more than 3 from the other group's."""
    effect = large["churn_probability"] - large["churn_probability_offered"]
    users = large[(effect.abs() > 0.1) & (large["treated"] == group)]
    own, wrong = users[f"churn_probability{taken}"], users[f"churn_probability{other}"]
    error = np.sqrt((own * (1 - own)).sum()) / len(users)
    assert users["is_churn"].mean() == pytest.approx(own.mean(), abs=3 * error)
    assert abs(users["is_churn"].mean() - wrong.mean()) > 3 * error


def test_the_effect_s_direction_in_each_group_of_every_cohort(large_data: Dataset) -> None:
    terms = pd.read_csv(large_data.root / "oracle" / "oracle_terms.csv")
    answers = large_data.oracle().merge(terms, on=["cohort", "msno"])
    drivers = {name: answers[name] / weight for name, weight in WEIGHTS.items()}
    effect = answers["churn_probability"] - answers["churn_probability_offered"]
    manual, cancelled = drivers["no_auto_renew"] > 0.5, drivers["last_is_cancel"] > 0.5
    listening = drivers["silent_days"] < 7
    priced = (drivers["discount_last"] > 0.5) | (drivers["free_last"] > 0.5)
    price_sensitive = effect[manual & ~cancelled & listening & priced]
    auto = effect[~manual]
    assert len(price_sensitive) > 100 and price_sensitive.mean() > 0.1
    assert price_sensitive.mean() > 10 * abs(auto.mean())
    assert (price_sensitive > 0).all()
    for rarely_saved in (manual & cancelled, manual & (drivers["silent_days"] >= 45)):
        assert len(effect[rarely_saved]) > 50
        assert effect[rarely_saved].abs().mean() < 0.01 and effect[rarely_saved].abs().max() < 0.05
    reminded = effect < 0
    assert 0.005 < reminded.mean() < 0.1 and (~manual[reminded]).all()
    assert effect.mean() > 0


def test_the_summary_shows_the_campaign_s_groups_beside_the_oracle(
    pair: tuple[Dataset, Dataset],
) -> None:
    none, campaign = pair
    assert describe(none.root / "raw", none.root / "oracle").campaign == {}
    report = describe(campaign.root / "raw", campaign.root / "oracle")
    march = _march(campaign)
    offered = march[march["treated"] == 1]
    users, churn, without, with_offer = report.campaign["offered"]
    assert users == len(offered) and users + report.campaign["control"][0] == len(march)
    assert churn == pytest.approx(offered["is_churn"].mean())
    assert with_offer == pytest.approx(offered["churn_probability_offered"].mean())
    assert without == pytest.approx(offered["churn_probability"].mean())
    assert (
        "retention-2017-03" in report.text() and "campaign_offered_churn" in report.oracle_metrics()
    )
