"""The shared transformer: scikit-learn's estimator contract, and odd inputs serving will meet."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from churn_transform.modelling.transformer import MISSING, UNSEEN, ChurnFeatures
from churn_transform.schema import FEATURES


@parametrize_with_checks([ChurnFeatures()])
def test_scikit_learn_estimator_checks(estimator, check) -> None:  # type: ignore[no-untyped-def]
    check(estimator)


def _gold(rows: int = 6, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    gold = pd.DataFrame({name: rng.integers(0, 60, rows).astype(float) for name in FEATURES})
    gold["gender"] = pd.array(rng.choice(["male", "female", None], rows), dtype="string")
    gold["city"] = rng.choice([1.0, 5.0, 13.0], rows)
    gold["bd"] = [25.0, -7168.0, 2016.0, 0.0, 40.0, np.nan][:rows]
    gold.loc[0, "days_since_last_log"] = np.nan
    return gold


@pytest.fixture
def fitted() -> ChurnFeatures:
    return ChurnFeatures().fit(_gold())


def test_one_row_alone_equals_that_row_in_a_batch(fitted: ChurnFeatures) -> None:
    batch = fitted.transform(_gold(6, seed=3))
    for i in range(6):
        alone = fitted.transform(_gold(6, seed=3).iloc[[i]])
        np.testing.assert_array_equal(alone[0], batch[i])


def test_output_names_and_width(fitted: ChurnFeatures) -> None:
    names = list(fitted.get_feature_names_out())
    assert fitted.transform(_gold()).shape[1] == len(names) == len(set(names))
    assert {"trend_14_vs_30_before", "completion_30", "no_profile", "gender"} <= set(names)


def test_implausible_ages_are_imputed(fitted: ChurnFeatures) -> None:
    names = list(fitted.get_feature_names_out())
    ages = fitted.transform(_gold())[:, names.index("bd")]
    assert ages[0] == 25.0 and ages[4] == 40.0
    assert set(ages[[1, 2, 3, 5]]) == {fitted.medians_["bd"]} == {32.5}


def test_unseen_and_missing_categories(fitted: ChurnFeatures) -> None:
    names = list(fitted.get_feature_names_out())
    odd = _gold(2)
    odd["city"] = [22.0, np.nan]
    odd["gender"] = pd.array(["other", None], dtype="string")
    out = fitted.transform(odd)
    assert out[:, names.index("city")].tolist() == [UNSEEN, MISSING]
    assert out[:, names.index("gender")].tolist() == [UNSEEN, MISSING]


def test_an_all_null_row_gets_learned_values(fitted: ChurnFeatures) -> None:
    empty = _gold(1)
    for column in FEATURES:
        empty[column] = pd.array([None], dtype="string") if column == "gender" else np.nan
    out = fitted.transform(empty)
    assert np.isfinite(out).all()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(st.just(float("nan")), st.floats(min_value=-1e15, max_value=1e15)),
        min_size=len(FEATURES) - 1,
        max_size=len(FEATURES) - 1,
    )
)
def test_extreme_values_stay_finite(values: list[float]) -> None:
    transformer = ChurnFeatures().fit(_gold())
    row = _gold(1)
    numeric = [c for c in FEATURES if c != "gender"]
    row.loc[0, numeric] = values
    assert np.isfinite(transformer.transform(row)).all()


def test_a_missing_column_is_named(fitted: ChurnFeatures) -> None:
    with pytest.raises(KeyError, match="secs_30"):
        fitted.transform(_gold().drop(columns="secs_30"))


def test_non_numeric_value_is_named(fitted: ChurnFeatures) -> None:
    bad = _gold().astype({"tx_count": object})
    bad.loc[0, "tx_count"] = "many"
    with pytest.raises(ValueError, match="tx_count"):
        fitted.transform(bad)


def test_clone_pickle_and_pipeline_give_the_same_output(fitted: ChurnFeatures) -> None:
    gold = _gold()
    expected = fitted.transform(gold)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fitted)).transform(gold), expected)
    np.testing.assert_array_equal(clone(fitted).fit(gold).transform(gold), expected)
    np.testing.assert_array_equal(
        make_pipeline(ChurnFeatures()).fit(gold).transform(gold), expected
    )
    assert clone(ChurnFeatures(max_age=90)).get_params()["max_age"] == 90


def test_input_is_not_modified(fitted: ChurnFeatures) -> None:
    gold = _gold()
    fitted.transform(gold)
    pd.testing.assert_frame_equal(gold, _gold())
