"""ChurnModel: the served fast path computes what scikit-learn's calibrated pipeline computes."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from churn_transform.modelling.model import ONE_THREAD_ROWS, ChurnModel
from churn_transform.modelling.transformer import ChurnFeatures
from churn_transform.schema import FEATURES


def _gold(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    gold = pd.DataFrame({name: rng.gamma(2.0, 10.0, rows) for name in FEATURES})
    gold["gender"] = pd.array(rng.choice(["male", "female", None], rows), dtype="string")
    gold["city"] = rng.choice([1.0, 5.0, 13.0, np.nan], rows)
    churn = rng.random(rows) < 1 / (1 + np.exp(3 - gold["cancel_count"] / 10))
    return gold, churn.astype(int)


@pytest.fixture(scope="module")
def fitted() -> tuple[ChurnModel, CalibratedClassifierCV, pd.DataFrame]:
    gold, label = _gold(600, seed=1)
    transformer = ChurnFeatures().fit(gold[:400])
    booster = lgb.LGBMClassifier(n_estimators=30, verbose=-1, random_state=0)
    pipeline = Pipeline([("features", transformer), ("model", booster)])
    pipeline.fit(gold[:400], label[:400])
    reference = CalibratedClassifierCV(FrozenEstimator(pipeline), method="sigmoid")
    reference.fit(gold[400:], label[400:])
    return ChurnModel(pipeline).fit(gold[400:], label[400:]), reference, _gold(50, seed=2)[0]


def test_probabilities_equal_scikit_learn_s_calibrated_pipeline(fitted) -> None:  # type: ignore[no-untyped-def]
    model, reference, rows = fitted
    np.testing.assert_allclose(model.predict_proba(rows), reference.predict_proba(rows), atol=1e-12)


def test_a_mapping_of_columns_gives_the_frame_s_answer(fitted) -> None:  # type: ignore[no-untyped-def]
    model, _, rows = fitted
    columns = {name: rows[name].tolist() for name in reversed(rows.columns)}
    np.testing.assert_array_equal(model.predict_proba(columns), model.predict_proba(rows))


def test_decisions_follow_the_learned_threshold(fitted) -> None:  # type: ignore[no-untyped-def]
    model, _, rows = fitted
    churn = model.predict_proba(rows)[:, 1]
    assert 0 < model.threshold_ < 1
    np.testing.assert_array_equal(model.predict(rows), (churn >= model.threshold_).astype(int))


def test_rows_score_the_same_alone_on_one_thread_as_in_a_large_input(fitted) -> None:  # type: ignore[no-untyped-def]
    model, _, rows = fitted
    many = pd.concat([rows] * (ONE_THREAD_ROWS // len(rows) + 1), ignore_index=True)
    assert len(rows) <= ONE_THREAD_ROWS < len(many)  # one thread, then LightGBM's default
    np.testing.assert_allclose(
        model.predict_proba(many)[: len(rows)], model.predict_proba(rows), atol=1e-12
    )
