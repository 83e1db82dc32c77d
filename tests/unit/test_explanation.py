"""Reasons for a prediction: exact on the calibrated log-odds, handed back to gold features."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from scipy.special import logit
from sklearn.pipeline import Pipeline

from churn_transform.modelling.explanation import READABLE, attribution_matrix, explain
from churn_transform.modelling.model import ChurnModel
from churn_transform.modelling.transformer import ChurnFeatures
from churn_transform.schema import FEATURES


def _gold(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    gold = pd.DataFrame({name: rng.gamma(2.0, 10.0, rows) for name in FEATURES})
    gold["gender"] = pd.array(rng.choice(["male", "female", None], rows), dtype="string")
    gold["city"] = rng.choice([1.0, 5.0, 13.0, np.nan], rows)
    gold["last_is_auto_renew"] = rng.choice([0.0, 1.0], rows)
    risk = 3 - gold["cancel_count"] / 10 + 2 * gold["last_is_auto_renew"]
    churn = rng.random(rows) < 1 / (1 + np.exp(risk))
    return gold, churn.astype(int)


@pytest.fixture(scope="module")
def model() -> ChurnModel:
    gold, label = _gold(800, seed=1)
    transformer = ChurnFeatures().fit(gold[:500])
    booster = lgb.LGBMClassifier(n_estimators=40, verbose=-1, random_state=0)
    pipeline = Pipeline([("features", transformer), ("model", booster)])
    pipeline.fit(gold[:500], label[:500])
    return ChurnModel(pipeline).fit(gold[500:], label[500:])


def test_reasons_add_up_to_the_calibrated_log_odds(model: ChurnModel) -> None:
    rows, _ = _gold(40, seed=2)
    explanation = explain(model, rows)
    expected = logit(model.predict_proba(rows)[:, 1])
    np.testing.assert_allclose(explanation.log_odds, expected, atol=1e-9)
    assert list(explanation.contributions.columns) == list(FEATURES)


def test_the_features_that_drive_the_label_carry_the_largest_reasons(model: ChurnModel) -> None:
    rows, _ = _gold(300, seed=3)
    size = explain(model, rows).contributions.abs().mean().sort_values(ascending=False)
    assert set(size.index[:2]) == {"cancel_count", "last_is_auto_renew"}


def test_a_derived_column_is_shared_equally_among_its_inputs() -> None:
    matrix = attribution_matrix(["tenure_days", "skip_30", "gender"])
    where = {name: j for j, name in enumerate(FEATURES)}
    assert matrix[0, where["tenure_days"]] == 1.0
    assert matrix[1, where["num_25_30"]] == matrix[1, where["songs_30"]] == 0.5
    assert matrix[2].sum() == matrix[2, where["gender"]] == 1.0


def test_a_model_input_with_no_gold_source_is_an_error_naming_it() -> None:
    with pytest.raises(KeyError, match="'mystery'"):
        attribution_matrix(["mystery"])


def test_top_reasons_are_readable_and_only_those_raising_the_risk(model: ChurnModel) -> None:
    rows, _ = _gold(20, seed=4)
    explanation = explain(model, rows)
    for i, reasons in enumerate(explanation.top(3)):
        row = explanation.contributions.iloc[i]
        raising = row[row > 0].sort_values(ascending=False)
        assert reasons == [READABLE[f] for f in raising.index[:3]]


def test_top_reasons_can_say_the_value_sent(model: ChurnModel) -> None:
    rows, _ = _gold(5, seed=5)
    rows.loc[0, "last_is_auto_renew"] = 0.0
    rows["city"] = np.nan
    explanation = explain(model, rows)
    plain, said = explanation.top(40), explanation.top(40, rows)
    for names, texts in zip(plain, said, strict=True):
        assert [t.split(": ")[0] for t in texts] == names
    assert (
        "auto-renew on the last plan: 0" in said[0] or "auto-renew on the last plan" not in plain[0]
    )
    assert all(t == "city: unknown" for r in said for t in r if t.startswith("city"))


def test_every_gold_feature_has_a_readable_name() -> None:
    assert set(READABLE) == set(FEATURES)


def test_no_rows_have_no_reasons(model: ChurnModel) -> None:
    rows, _ = _gold(0, seed=5)
    explanation = explain(model, rows)
    assert explanation.contributions.shape == (0, len(FEATURES))
    assert list(explanation.contributions.columns) == list(FEATURES)
    assert explanation.top(3, rows) == [] and explanation.records(rows) == []
    assert explanation.base == explain(model, _gold(2, seed=6)[0]).base
