"""price_of draws list prices exactly as numpy's rng.choice with each plan's weights would."""

from __future__ import annotations

import numpy as np
import pytest

from churn_transform.synthetic.population import PRICES
from churn_transform.synthetic.subscriptions import price_of


def _by_choice(rng: np.random.Generator, plans: np.ndarray) -> np.ndarray:
    """The reference: one rng.choice a plan length, in the order of PRICES."""
    prices = np.zeros(len(plans), dtype=np.int64)
    for plan_days, (options, weights) in PRICES.items():
        hit = plans == plan_days
        p = np.array(weights) / sum(weights)
        prices[hit] = rng.choice(np.array(options), size=int(hit.sum()), p=p)
    return prices


@pytest.mark.parametrize("rows", [0, 1, 7, 500])
def test_prices_and_the_stream_after_them_are_those_of_rng_choice(rows: int) -> None:
    plans = np.random.default_rng(rows).choice(np.array(list(PRICES)), size=rows)
    ours, reference = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(20):
        np.testing.assert_array_equal(price_of(ours, plans), _by_choice(reference, plans))
    assert ours.random() == reference.random()
