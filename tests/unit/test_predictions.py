"""The batch predictions in the lake (issue #32): what ``score`` writes is what ``quality`` reads,
in one layout; and the realized figures a quality run logs are read back by the one function
that named them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn_transform.lake import Lake
from churn_transform.modelling.plan import action_plan, contact_log
from churn_transform.monitoring.predictions import (
    BATCH,
    CAMPAIGN,
    CAMPAIGN_SUMMARY,
    GOLD,
    PREDICTIONS,
    SCORES,
    GoldRead,
    batch_scores,
    campaign_plans,
    newest_plan,
    read_scored,
    scored_by,
    write_beside,
    write_campaign,
    write_predictions,
)
from churn_transform.monitoring.quality import (
    ALL,
    realized_figures,
    realized_quality,
    reported_metrics,
)

#: ``monitoring.scoring.score``'s frame, cut to what the layout keeps.
SCORED = pd.DataFrame(
    {
        "msno": ["AAAA=", "BBBB=", "CCCC="],
        "churn_probability": [0.9, 0.2, 0.6],
        "churn": [True, False, True],
        "reason_1": ["cancelled", "", "short plan"],
    }
)


def _write(lake: Lake, run: str, version: str, gold_hash: str = "aaaa") -> str:
    return write_predictions(lake, "2017-05", run, SCORED, version, GoldRead("v3", gold_hash))


def test_a_run_s_scores_submission_and_gold_are_written_in_their_folder(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    submission = _write(lake, "run1", "4")
    folder = tmp_path / PREDICTIONS / "2017-05" / "run1"
    assert submission == lake.url(PREDICTIONS, "2017-05", "run1", "submission.csv")
    submitted = pd.read_csv(folder / "submission.csv")  # the competition's columns
    assert submitted.to_dict("list") == {
        "msno": ["AAAA=", "BBBB=", "CCCC="],
        "is_churn": [0.9, 0.2, 0.6],
    }
    scores = pd.read_parquet(folder / SCORES)
    assert scores.to_dict("list") == {
        "msno": ["AAAA=", "BBBB=", "CCCC="],
        "churn_probability": [0.9, 0.2, 0.6],
        "churn": [True, False, True],
        "model_version": ["4", "4", "4"],
    }
    assert (folder / GOLD).read_text() == '{"version": "v3", "hash": "aaaa"}'


def test_what_was_written_is_already_scored_by_its_version_from_its_gold(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    _write(lake, "run1", "4")
    assert scored_by(lake, "2017-05", "4", "aaaa")
    assert not scored_by(lake, "2017-05", "5", "aaaa")
    assert not scored_by(lake, "2017-05", "4", "bbbb")


def test_the_campaign_list_leaves_out_the_plan_columns(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    ranked = SCORED.assign(target=True, last_list_price=149, last_plan_days=30)
    url = write_campaign(lake, "2017-05", "run1", ranked)
    shown = pd.read_csv(lake.path_of(url))
    assert shown.columns.tolist() == ["msno", "churn_probability", "churn", "reason_1", "target"]


def _plan(lake: Lake, run: str, control_share: float, when: int) -> None:
    """The campaign list and totals a scoring run ``run`` of 2017-05 wrote at time ``when``."""
    reasons = ["last transaction was a cancellation: 1", "", "auto-renew on the last plan: 0"]
    scores = SCORED.assign(
        reason_1=reasons, last_list_price=149.0, last_plan_days=30, days_to_expiry=3
    )
    ranked, plan = action_plan(scores, "2017-05", 1.0, 0.3, control_share)
    write_campaign(lake, "2017-05", run, ranked)
    write_beside(lake, "2017-05", run, CAMPAIGN_SUMMARY, plan.to_json().encode())
    os.utime(lake.path_of(lake.url(PREDICTIONS, "2017-05", run, CAMPAIGN)), (when, when))


def test_the_newest_plan_is_the_list_and_totals_of_the_cohort_s_newest_run(
    tmp_path: Path,
) -> None:
    lake = Lake(str(tmp_path))
    _plan(lake, "later", 0.5, 2_000_000)
    _plan(lake, "earlier", 0.0, 1_000_000)
    found = newest_plan(lake, "2017-05")
    assert found is not None
    listed, plan = found
    assert plan.control_share == 0.5 and plan.cohort == "2017-05"
    assert listed["msno"].tolist() == ["AAAA=", "CCCC=", "BBBB="]  # ranked by probability
    assert listed["target"].dtype == bool and listed["contact"].dtype == bool
    assert int(listed["target"].sum()) == plan.targets
    log = contact_log(listed, plan.cohort)
    assert log["treated"].sum() == plan.contacted and len(log) == plan.targets


def test_a_cohort_without_a_plan_has_no_newest_plan(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    _plan(lake, "run1", 0.0, 1_000_000)
    assert newest_plan(lake, "2017-06") is None


def test_a_newest_list_without_its_totals_is_refused_naming_them(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    _plan(lake, "run1", 0.0, 1_000_000)
    (tmp_path / PREDICTIONS / "2017-05" / "run1" / CAMPAIGN_SUMMARY).unlink()
    with pytest.raises(FileNotFoundError, match=f"run1/{CAMPAIGN} has no {CAMPAIGN_SUMMARY}"):
        newest_plan(lake, "2017-05")


def test_every_plan_of_a_cohort_is_read_back_newest_first(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    _plan(lake, "later", 0.5, 2_000_000)
    _plan(lake, "earlier", 0.0, 1_000_000)
    plans = campaign_plans(lake, "2017-05")
    assert [plan.control_share for _, plan in plans] == [0.5, 0.0]
    assert plans[0][0]["msno"].tolist() == ["AAAA=", "CCCC=", "BBBB="]
    assert campaign_plans(lake, "2017-06") == []


def _gold(lake: Lake, version: str, prices: list[float]) -> None:
    """Gold version ``version`` of 2017-05 with SCORED's users (in another order) and plans."""
    (url,) = lake.stage("gold", ["features_2017-05"], version).values()
    lake.fs.makedirs(lake.path_of(url), exist_ok=True)
    plans = pd.DataFrame(
        {"msno": ["CCCC=", "AAAA=", "BBBB="], "last_list_price": prices, "last_plan_days": 30}
    )
    plans.to_parquet(f"{lake.path_of(url)}/part-00000.parquet", index=False)
    lake.complete("gold", "features_2017-05", version)


def test_the_scored_cohort_is_read_with_the_plans_of_the_gold_it_was_scored_from(
    tmp_path: Path,
) -> None:
    lake = Lake(str(tmp_path))
    _gold(lake, "v3", [99.0, 149.0, 180.0])
    _gold(lake, "v4", [1.0, 1.0, 1.0])  # a later gold: not what run1 read
    _write(lake, "run1", "4")
    scored = read_scored(lake, "2017-05", "run1")
    assert scored["msno"].tolist() == ["AAAA=", "BBBB=", "CCCC="]
    assert scored["churn_probability"].tolist() == [0.9, 0.2, 0.6]
    assert scored["last_list_price"].tolist() == [149.0, 180.0, 99.0]


def test_a_scored_cohort_whose_gold_is_gone_is_refused_naming_the_version(
    tmp_path: Path,
) -> None:
    lake = Lake(str(tmp_path))
    _write(lake, "run1", "4")
    with pytest.raises(FileNotFoundError, match="gold/features_2017-05 version v3 is no longer"):
        read_scored(lake, "2017-05", "run1")
    with pytest.raises(FileNotFoundError, match="scoring run 2017-05/run2 has no scores.parquet"):
        read_scored(lake, "2017-05", "run2")


def test_every_batch_score_is_read_back_oldest_run_first(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    _write(lake, "later", "5")
    _write(lake, "earlier", "4")
    for run, when in (("earlier", 1_000_000), ("later", 2_000_000)):
        os.utime(tmp_path / PREDICTIONS / "2017-05" / run / SCORES, (when, when))
    read = batch_scores(lake, "2017-05")
    assert read["model_version"].tolist() == ["4"] * 3 + ["5"] * 3
    assert read["ts"].tolist() == [0] * 3 + [1] * 3 and set(read["source"]) == {BATCH}


def test_a_cohort_never_scored_reads_as_no_predictions(tmp_path: Path) -> None:
    assert batch_scores(Lake(str(tmp_path)), "2017-05").empty


def _quality(tmp_path: Path) -> pd.DataFrame:
    lake = Lake(str(tmp_path))
    _write(lake, "run1", "4")
    labels = pd.Series([1, 0, 0], index=["AAAA=", "BBBB=", "CCCC="], name="is_churn")
    oracle = pd.Series([0.8, 0.1, 0.3], index=labels.index)
    return realized_quality(batch_scores(lake, "2017-05"), labels, oracle=oracle)


def test_the_realized_figures_logged_are_read_back_for_their_version(tmp_path: Path) -> None:
    quality = _quality(tmp_path)
    overall = quality[quality["segment"] == ALL].iloc[0]
    read = realized_figures(reported_metrics(quality), "4")
    assert read["roc_auc"] == overall["roc_auc"] == 1.0
    assert read["oracle_roc_auc"] == overall["oracle_roc_auc"]
    assert set(read) == {
        "roc_auc",
        "log_loss",
        "calibration_error",
        "precision",
        "recall",
        "decision_rate",
        "oracle_roc_auc",
    }


@pytest.mark.parametrize(("version", "source"), [("5", BATCH), ("4", "traffic")])
def test_a_version_or_source_without_predictions_has_no_realized_figures(
    version: str, source: str, tmp_path: Path
) -> None:
    assert realized_figures(reported_metrics(_quality(tmp_path)), version, source) == {}


def test_figures_not_measured_are_not_logged(tmp_path: Path) -> None:
    quality = _quality(tmp_path).assign(oracle_roc_auc=np.nan)
    assert "oracle_roc_auc" not in realized_figures(reported_metrics(quality), "4")
