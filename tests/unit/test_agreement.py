"""Agreement of a model's reasons with the oracle's terms, on hand-made users."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_transform.schema import FEATURES
from churn_transform.synthetic.agreement import DRIVER_FEATURES, agreement, by_driver
from churn_transform.synthetic.oracle import WEIGHTS


def _terms(seed: int, users: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(users, len(WEIGHTS))), columns=list(WEIGHTS))


def _reasons_carrying(terms: pd.DataFrame) -> pd.DataFrame:
    """Per-feature reasons equal to the centred terms, each on its driver's first feature."""
    reasons = pd.DataFrame(0.0, index=terms.index, columns=list(FEATURES))
    for driver, features in DRIVER_FEATURES.items():
        reasons[features[0]] = terms[driver] - terms[driver].mean()
    return reasons


def test_every_oracle_driver_is_read_from_gold_features_and_none_twice() -> None:
    assert set(DRIVER_FEATURES) == set(WEIGHTS)
    carried = [f for features in DRIVER_FEATURES.values() for f in features]
    assert len(carried) == len(set(carried)) and set(carried) <= set(FEATURES)


def test_reasons_equal_to_the_terms_agree_fully() -> None:
    terms = _terms(0)
    found = agreement(_reasons_carrying(terms), terms)
    assert found.rank_correlation == pytest.approx(1.0)
    assert found.top_reason == found.top_reason_in_oracle_top3 == 1.0


def test_reasons_of_other_users_agree_no_better_than_chance() -> None:
    terms = _terms(1, users=2000)
    found = agreement(_reasons_carrying(_terms(2, users=2000)), terms)
    assert abs(found.rank_correlation) < 0.1
    assert found.top_reason < 0.15


def test_reasons_spread_over_a_driver_s_features_are_summed() -> None:
    reasons = pd.DataFrame(0.0, index=[0], columns=list(FEATURES))
    reasons[["secs_7", "secs_30"]] = [0.25, 0.5]
    assert by_driver(reasons).loc[0, "trend"] == 0.75


def test_different_numbers_of_users_are_an_error() -> None:
    with pytest.raises(ValueError, match="3 explained users but 2 oracle rows"):
        agreement(_reasons_carrying(_terms(0, 3)), _terms(0, 2))
