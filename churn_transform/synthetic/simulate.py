"""One chunk of synthetic KKBox: users, their histories, and the cohort decisions in time order.

Chunks are independent (a user's whole history lives in one chunk), so a dataset of any size is
a sequence of chunks, each seeded from the run's seed and its own index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from churn_transform.dates import day, month_bounds
from churn_transform.labels import churn_labels
from churn_transform.synthetic.listening import Listening, subscribed_days
from churn_transform.synthetic.oracle import churn_probability, observed_drivers, oracle_terms
from churn_transform.synthetic.population import Users, draw_users, members_frame
from churn_transform.synthetic.subscriptions import Chain

#: Cohort months: Feb and Mar 2017 are labelled (train.csv, train_v2.csv); Apr is scored.
COHORTS = ("2017-02", "2017-03", "2017-04")
LOGS_END = day("2017-04-01")  # user_logs_v2 ends with March 2017
HISTORY_END = day("2017-06-01")  # far enough for every April label to be final


@dataclass(frozen=True)
class ChunkConfig:
    users: int
    log_start: int
    shift: float


@dataclass(frozen=True)
class Chunk:
    """Everything one chunk produces, still with user indices and day numbers."""

    users: Users
    members: pd.DataFrame
    transactions: pd.DataFrame  # the whole history, including rows after the files end
    logs: pd.DataFrame
    oracle: pd.DataFrame  # cohort, user, churn_probability, decided_churn, the oracle's terms


def simulate_chunk(seed: np.random.SeedSequence, config: ChunkConfig) -> Chunk:
    """Play a chunk's users from 2015 to mid 2017, taking the oracle decision at each cutoff."""
    # Separate streams, so that the shift knob (which changes how much is drawn after March
    # 2017) leaves every earlier draw, and so the whole past, exactly as it was.
    rng, chain_rng, listening_rng, members_rng = (
        np.random.default_rng(child) for child in seed.spawn(4)
    )
    users = draw_users(rng, config.users)
    members = members_frame(members_rng, users, config.shift)
    chain = Chain(users, chain_rng, config.shift)
    listening = Listening(users, listening_rng, config.log_start, LOGS_END, config.shift)
    decisions = []
    for cohort in COHORTS:
        cutoff, month_end = month_bounds(cohort)
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
        subscribed = _subscribed(chain, len(users), config.log_start)
        drivers = observed_drivers(
            chain.transactions(),
            listening.seconds_matrix(subscribed),
            listening,
            users.has_profile,
            chain.expiry,
            in_cohort,
            cutoff,
        )
        probability = churn_probability(drivers)
        churned = rng.random(len(in_cohort)) < probability
        chain.decide(in_cohort, churned, np.full(len(in_cohort), cutoff))
        decisions.append(
            pd.DataFrame(
                {
                    "cohort": cohort,
                    "user": in_cohort,
                    "churn_probability": probability,
                    "decided_churn": churned.astype(int),
                }
            ).join(oracle_terms(drivers).reset_index(drop=True))
        )
    chain.advance(HISTORY_END)
    subscribed = _subscribed(chain, len(users), config.log_start)
    return Chunk(
        users=users,
        members=members,
        transactions=chain.transactions(),
        logs=listening.rows(subscribed),
        oracle=pd.concat(decisions, ignore_index=True),
    )


def _subscribed(chain: Chain, n_users: int, log_start: int) -> np.ndarray:
    return subscribed_days(chain.transactions(), chain.blocked, n_users, log_start, LOGS_END)


def cohort_labels(transactions: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The official rule applied to file-format transactions, for every cohort month."""
    return {cohort: churn_labels(transactions, cohort) for cohort in COHORTS}
