"""``score`` says "already scored" only for the same model version and the same gold (issue #30,
8): a cohort whose gold changed since (late rows, a corrected increment) is scored again."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd

from churn_transform.lake import Lake
from churn_transform.modelling.plan import CHURN_PROBABILITY, UPLIFT, PlanSummary, planned_alike
from churn_transform.monitoring.predictions import (
    CAMPAIGN_SUMMARY,
    GOLD,
    PREDICTIONS,
    SCORES,
    scored_by,
)
from tests.unit.test_verdict import _summary


def _scored(lake: Lake, run: str, version: str, gold_hash: str | None) -> None:
    buffer = io.BytesIO()
    pd.DataFrame({"msno": ["AAAA="], "model_version": [version]}).to_parquet(buffer)
    lake.write_bytes(buffer.getvalue(), PREDICTIONS, "2017-05", run, SCORES)
    if gold_hash is not None:
        read = json.dumps({"version": "v1", "hash": gold_hash}).encode()
        lake.write_bytes(read, PREDICTIONS, "2017-05", run, GOLD)


def test_a_cohort_is_already_scored_by_the_same_version_from_the_same_gold(
    tmp_path: Path,
) -> None:
    lake = Lake(str(tmp_path))
    _scored(lake, "run1", "3", "aaaa")
    assert scored_by(lake, "2017-05", "3", "aaaa")


def test_a_cohort_whose_gold_changed_is_scored_again(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    _scored(lake, "run1", "3", "aaaa")
    assert not scored_by(lake, "2017-05", "3", "bbbb")
    assert not scored_by(lake, "2017-05", "4", "aaaa")


def test_a_score_that_does_not_say_what_gold_it_read_is_made_again(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    _scored(lake, "run1", "3", None)
    assert not scored_by(lake, "2017-05", "3", "aaaa")


def _planned(lake: Lake, run: str) -> PlanSummary:
    """A churn-probability plan: offer cost 10, acceptance 0.3, control share 0.1."""
    summary = replace(_summary(ranked_by=CHURN_PROBABILITY), control_share=0.1, acceptance=0.3)
    lake.write_bytes(summary.to_json().encode(), PREDICTIONS, "2017-05", run, CAMPAIGN_SUMMARY)
    return summary


def test_a_cohort_scored_with_other_plan_settings_is_planned_again(tmp_path: Path) -> None:
    """Another control share, acceptance or ranking rule is another plan: the cohort is scored
    again, so the plan a campaign plays is the one the settings ask for."""
    lake = Lake(str(tmp_path))
    _scored(lake, "run1", "3", "aaaa")
    _planned(lake, "run1")

    def alike(control_share: float, acceptance: float, rule: str) -> bool:
        return scored_by(
            lake,
            "2017-05",
            "3",
            "aaaa",
            lambda plan: planned_alike(plan, 10.0, acceptance, control_share, rule),
        )

    assert alike(0.1, 0.3, CHURN_PROBABILITY)
    assert not alike(0.5, 0.3, CHURN_PROBABILITY)
    assert not alike(0.1, 0.2, CHURN_PROBABILITY)
    assert not alike(0.1, 0.3, UPLIFT)


def test_a_plan_written_before_its_acceptance_was_recorded_is_made_again(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    _scored(lake, "run1", "3", "aaaa")
    old = json.loads(_planned(lake, "run1").to_json())
    del old["acceptance"]  # a campaign.json from before the field
    lake.write_bytes(json.dumps(old).encode(), PREDICTIONS, "2017-05", "run1", CAMPAIGN_SUMMARY)
    loaded = PlanSummary.from_json(json.dumps(old))
    assert loaded.acceptance is None
    assert not planned_alike(loaded, 10.0, 0.3, 0.1, CHURN_PROBABILITY)
    assert not scored_by(
        lake,
        "2017-05",
        "3",
        "aaaa",
        lambda plan: planned_alike(plan, 10.0, 0.3, 0.1, CHURN_PROBABILITY),
    )
