"""Scoring one part file of a gold table: a part without users scores to none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from churn_transform.lake import Lake
from churn_transform.modelling.model import ChurnModel
from churn_transform.modelling.uplift import UpliftConfig, fit_uplift
from churn_transform.monitoring.scoring import REASONS, score_part
from churn_transform.schema import FEATURES
from tests.unit.test_explanation import _gold
from tests.unit.test_explanation import model as model  # noqa: F401 (the fixture)

COLUMNS = ["msno", "churn_probability", "churn", *[f"reason_{i + 1}" for i in range(REASONS)]]


def _part(folder: Path, users: int) -> str:
    gold = _gold(users, seed=7)[0].assign(msno=[f"{i:043d}=" for i in range(users)])
    gold["msno"] = gold["msno"].astype("string")
    path = folder / f"part-{users:05d}.parquet"
    gold.to_parquet(path, index=False)
    return str(path)


def test_a_part_without_users_scores_to_no_rows_with_every_column(
    model: ChurnModel, tmp_path: Path
) -> None:
    lake = Lake(str(tmp_path))
    empty = score_part(lake, _part(tmp_path, 0), model)
    full = score_part(lake, _part(tmp_path, 4), model)
    assert empty.empty and list(empty.columns) == list(full.columns)
    assert set(COLUMNS) <= set(full.columns) and len(full) == 4
    both = pd.concat([empty, full], ignore_index=True)
    assert both["churn_probability"].tolist() == full["churn_probability"].tolist()


def test_with_an_uplift_model_each_user_gets_its_uplift(model: ChurnModel, tmp_path: Path) -> None:
    gold, label = _gold(600, seed=3)
    treated = np.arange(600) % 2
    uplift = fit_uplift(gold, treated, label, UpliftConfig(n_estimators=20, min_child_samples=20))
    lake = Lake(str(tmp_path))
    path = _part(tmp_path, 5)
    scored = score_part(lake, path, model, uplift)
    features = pd.read_parquet(path)[list(FEATURES)]
    np.testing.assert_allclose(scored["uplift"], uplift.predict(features))
    assert "uplift" not in score_part(lake, path, model).columns
    assert score_part(lake, _part(tmp_path, 0), model, uplift)["uplift"].empty
