"""``training.fit``: every training row is fitted, and the calibration is out of fold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churn_transform.modelling.training import TrainConfig, fit
from churn_transform.schema import FEATURES, LABEL

CONFIG = TrainConfig(n_estimators=60, early_stopping_rounds=10, min_child_samples=10)


def _gold(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    gold = pd.DataFrame({name: rng.gamma(2.0, 10.0, rows) for name in FEATURES})
    gold["gender"] = pd.array(rng.choice(["male", "female", None], rows), dtype="string")
    gold["city"] = rng.choice([1.0, 5.0, 13.0, np.nan], rows)
    logit = gold["cancel_count"] / 5 - 5
    gold[LABEL] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(float)
    return gold


@pytest.fixture(scope="module")
def fitted():  # type: ignore[no-untyped-def]
    gold = _gold(1500, seed=1)
    return gold, fit(gold, CONFIG)


def test_the_served_booster_is_fitted_on_every_training_row(fitted) -> None:  # type: ignore[no-untyped-def]
    gold, result = fitted
    booster = result.model.pipeline.named_steps["model"].booster_
    assert booster.num_trees() == result.best_iteration
    # a tree's root counts its bag: about ``subsample`` of every row (a fold's booster: of 4/5)
    root = booster.dump_model()["tree_info"][0]["tree_structure"]["internal_count"]
    assert root == pytest.approx(CONFIG.subsample * len(gold), rel=0.02)
    medians = result.model.pipeline.named_steps["features"].medians_
    assert medians["cancel_count"] == pytest.approx(gold["cancel_count"].median())


def test_the_out_of_fold_scores_judge_every_row_and_rank_like_the_truth(fitted) -> None:  # type: ignore[no-untyped-def]
    gold, result = fitted
    # out-of-fold: honest, so well below the in-sample fit yet well above chance
    assert 0.6 < result.validation["roc_auc"] < 0.95
    assert result.validation["churn_rate"] == pytest.approx(gold[LABEL].mean())
    assert result.validation["mean_probability"] == pytest.approx(gold[LABEL].mean(), abs=0.02)
    probability = result.model.predict_proba(gold[list(FEATURES)])[:, 1]
    assert roc_auc_score(gold[LABEL], probability) > result.validation["roc_auc"] - 0.05


def test_a_cohort_with_fewer_churners_than_folds_is_refused_naming_them() -> None:
    gold = _gold(200, seed=2).assign(**{LABEL: 0.0})
    gold.loc[:2, LABEL] = 1.0
    with pytest.raises(ValueError, match="3 churner\\(s\\) among 200 users: 5-fold"):
        fit(gold, CONFIG)
