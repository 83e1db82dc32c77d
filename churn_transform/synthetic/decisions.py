"""The churn decision of a cohort month, and the chunk's numbered random streams."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from churn_transform.dates import month_bounds
from churn_transform.synthetic.campaign import Offers
from churn_transform.synthetic.oracle import (
    observed_drivers,
    offer_change,
    oracle_terms,
    probability_of,
)
from churn_transform.synthetic.subscriptions import Chain


def stream(seed: np.random.SeedSequence, key: int) -> np.random.Generator:
    """The chunk's random stream number ``key``: the same as ``seed.spawn``'s child of that
    number, whatever was spawned before, so a new purpose takes a new number and disturbs none."""
    child = np.random.SeedSequence(
        seed.entropy, spawn_key=(*seed.spawn_key, key), pool_size=seed.pool_size
    )
    return np.random.default_rng(child)


def decide_cohort(
    cohort: str,
    chain: Chain,
    rng: np.random.Generator,
    seconds: Callable[[Chain, int], tuple[np.ndarray, int]],
    campaign: Offers | None = None,
) -> pd.DataFrame:
    """Play the chain up to the cohort's cutoff and decide its users' churn with the oracle.

    ``seconds(chain, cutoff)`` gives every user's listening per day over days before the
    cutoff, and the first of those days. Users the ``campaign`` offers (``treated``) decide
    with the probability the offer gives (``churn_probability_offered``), on the same draw.
    """
    cutoff, month_end = month_bounds(cohort)
    users = chain.users
    chain.advance(cutoff)
    in_cohort = np.flatnonzero(
        chain.alive
        & (chain.expiry >= cutoff)
        & (chain.expiry < month_end)
        & (chain.last_date < cutoff)
    )
    disengaged = 1.0 - users.decay_at(in_cohort, cutoff)
    switch_off = 1.0 / (
        1.0 + np.exp(4.9 - 2.5 * disengaged - 3.0 * users.price_sensitivity[in_cohort])
    )
    chain.pre_cutoff_cancels(in_cohort, cutoff, switch_off)
    secs, first_day = seconds(chain, cutoff)
    drivers = observed_drivers(
        chain.transactions(),
        secs,
        first_day,
        users.has_profile,
        chain.expiry,
        in_cohort,
        cutoff,
    )
    truth = chain.shift if cutoff >= chain.shift_start else 0.0  # the shift turns the truth
    terms = oracle_terms(drivers, truth)  # the true reasons, and the probability from them
    probability = probability_of(terms)
    offered = probability_of(terms, offer_change(drivers))
    treated = np.zeros(len(in_cohort), dtype=bool)
    taken = probability
    if campaign is not None:
        treated = campaign.assign(cohort, users.msno[in_cohort])
        taken = np.where(treated, offered, probability)
    churned = rng.random(len(in_cohort)) < taken
    chain.decide(in_cohort, churned, np.full(len(in_cohort), cutoff))
    return pd.DataFrame(
        {
            "cohort": cohort,
            "user": in_cohort,
            "churn_probability": probability,
            "decided_churn": churned.astype(int),
            "churn_probability_offered": offered,
            "treated": treated.astype(int),
        }
    ).join(terms.reset_index(drop=True))
