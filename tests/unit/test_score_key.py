"""``score`` says "already scored" only for the same model version and the same gold (issue #30,
8): a cohort whose gold changed since (late rows, a corrected increment) is scored again."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd

from churn_transform.lake import Lake
from churn_transform.monitoring.predictions import GOLD, PREDICTIONS, SCORES, scored_by


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
