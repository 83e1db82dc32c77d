"""Who the synthetic users are: latent traits that drive behaviour, and their members_v3 rows.

Traits are never written out; they shape what the users do (subscribe, renew, listen), and the
churn decision at each cohort month is taken on what that behaviour shows (see ``oracle``).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churn_transform.dates import day, to_yyyymmdd

TX_START = day("2015-01-01")
FIRST_REGISTRATION = day("2004-03-26")
LAST_REGISTRATION = day("2017-04-29")
NEVER = np.iinfo(np.int32).max // 2

#: A newcomer registers on any day at this rate (per user of the chunk), as from 2015 to April 2017.
NEWCOMERS_PER_DAY = 0.7 * 0.25 / (LAST_REGISTRATION - TX_START)

# Value mixes from the spec (shares of rows in the real files).
_CITIES = np.array([1, 5, 13, 4, 22, 15, 6, 14, 12, 9, 11, 18, 8, 10, 3, 17, 21, 7, 16, 20, 19])
_CITY_WEIGHTS = np.array(
    [
        50,
        6.5,
        5.5,
        3.8,
        3.4,
        3.0,
        1.7,
        1.3,
        1.0,
        0.8,
        0.7,
        0.5,
        0.5,
        0.4,
        0.3,
        0.2,
        0.2,
        0.1,
        0.05,
        0.03,
        0.02,
    ]
)
_VIA = np.array([7, 9, 3, 4, 13])
_VIA_WEIGHTS = np.array([54, 27, 12, 6.3, 0.7])
_PM_AUTO = np.array([41, 40, 39, 38, 37, 36, 34, 33, 31, 30, 29, 28, 27, 23, 22, 21, 20, 19, 18])
_PM_AUTO_W = np.array(
    [56, 3, 12, 5, 3, 5, 2, 1.5, 1, 1, 0.8, 0.7, 0.6, 0.5, 0.4, 0.4, 0.4, 0.3, 0.4]
)
_PM_MANUAL = np.array(
    [38, 32, 36, 39, 40, 41, 35, 26, 25, 17, 16, 15, 14, 13, 12, 11, 10, 8, 6, 3, 1]
)
_PM_MANUAL_W = np.array(
    [26, 22, 12, 8, 6, 6, 4, 2, 2, 1.5, 1.5, 1.2, 1.2, 1, 1, 0.8, 0.8, 0.5, 0.5, 0.5, 0.5]
)
PLANS = np.array([30, 7, 90, 100, 180, 195, 360, 365, 410])
_PLAN_WEIGHTS = np.array([89.5, 1.0, 2.0, 0.8, 2.0, 0.5, 1.6, 0.9, 1.7])
#: List prices (NTD) offered for each plan length, each with its weight. 0-day rows and
#: promotional free months are listed at 0 (they are not discounts).
PRICES: dict[int, tuple[tuple[int, ...], tuple[float, ...]]] = {
    0: ((0,), (1,)),
    7: ((35,), (1,)),
    30: ((149, 99, 180, 129, 100, 119, 150), (58, 12, 11, 7, 4, 4, 4)),
    90: ((477, 480, 447), (1, 1, 1)),
    100: ((298, 300), (1, 1)),
    180: ((536, 894), (1, 1)),
    195: ((894,), (1,)),
    360: ((1200, 1788), (1, 1)),
    365: ((1299, 1200), (1, 1)),
    410: ((1788,), (1,)),
}
#: Stackers pay every month, most months for a 410-day plan: their expiry runs years ahead.
STACK_PLAN_SHARE = 0.75


def _pick(rng: np.random.Generator, values: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    return rng.choice(values, size=n, p=weights / weights.sum())


def make_msno(rng: np.random.Generator, n: int) -> np.ndarray:
    """KKBox-style user ids: 32 random bytes in base64 (44 characters ending in ``=``)."""
    raw = rng.bytes(32 * n)
    return np.array(
        [base64.b64encode(raw[i : i + 32]).decode("ascii") for i in range(0, 32 * n, 32)],
        dtype=object,
    )


@dataclass(frozen=True)
class Users:
    """Latent traits and profile of one chunk of users (arrays indexed by user)."""

    msno: np.ndarray
    start: np.ndarray  # first subscription day, NEVER for a dormant member
    promo: np.ndarray  # joined in the February 2017 promotion: first month free
    stacker: np.ndarray  # pays every month for long plans: expiry years ahead, in no cohort
    registered: np.ndarray
    has_profile: np.ndarray
    auto: np.ndarray  # pays by auto-renewal
    payment_method: np.ndarray
    plan: np.ndarray
    price_sensitivity: np.ndarray
    engagement: np.ndarray  # chance of listening on a subscribed day; 0 = never logs
    volume: np.ndarray  # songs on an active day, median
    band_shares: np.ndarray  # (n, 5) shares of num_25 .. num_100
    unique_ratio: np.ndarray
    song_seconds: np.ndarray
    disengage_day: np.ndarray  # engagement starts to decay here
    decay_days: np.ndarray
    return_chance: np.ndarray

    def __len__(self) -> int:
        return len(self.msno)

    def decay(self, days: np.ndarray, rows: slice = slice(None)) -> np.ndarray:
        """Engagement multiplier (1 = intact) of the users ``rows`` (every user by default) on
        every day: shape (users, days)."""
        since = days[None, :] - self.disengage_day[rows, None]
        return np.exp(-np.clip(since, 0, None) / self.decay_days[rows, None])

    def decay_at(self, idx: np.ndarray, days: np.ndarray | int) -> np.ndarray:
        """Engagement multiplier of users ``idx`` on one day each."""
        since = np.asarray(days) - self.disengage_day[idx]
        return np.exp(-np.clip(since, 0, None) / self.decay_days[idx])


def draw_users(rng: np.random.Generator, n: int) -> Users:
    """Draw ``n`` users: 30% dormant members, the rest subscribe at some point from 2015 on.

    Most subscribers are veterans on monthly plans, so that, as in the real data, most of one
    cohort month's users are in the next one too; newcomers arrive at a steady rate, with a
    small promotion wave in February 2017.
    """
    dormant = rng.random(n) < 0.30
    veteran = ~dormant & (rng.random(n) < 0.75)
    newcomer = ~dormant & ~veteran
    registered = np.empty(n, dtype=np.int64)
    registered[dormant | veteran] = rng.integers(
        FIRST_REGISTRATION, TX_START, size=int((dormant | veteran).sum())
    )
    arrivals = TX_START + ((LAST_REGISTRATION - TX_START) * rng.random(int(newcomer.sum())))
    promo_arrival = rng.random(int(newcomer.sum())) < 0.07
    arrivals[promo_arrival] = rng.integers(
        day("2017-02-01"), day("2017-03-01"), int(promo_arrival.sum())
    )
    promo = np.zeros(n, dtype=bool)
    promo[np.flatnonzero(newcomer)[promo_arrival]] = True
    registered[newcomer] = arrivals.astype(np.int64)
    stacker = ~dormant & ~promo & (rng.random(n) < 0.033)
    plan = np.where(stacker, 410, _pick(rng, PLANS, _PLAN_WEIGHTS, n))
    start = np.full(n, NEVER, dtype=np.int64)
    # Veterans were already subscribed in 2015: their first payment comes at any point of
    # their plan, so long plans do not all expire in the same month.
    start[veteran] = TX_START + rng.integers(0, np.maximum(45, plan[veteran]))
    start[newcomer] = registered[newcomer] + rng.integers(0, 4, int(newcomer.sum()))
    return _traits(rng, registered, start, promo, stacker, plan, dormant)


def draw_newcomers(rng: np.random.Generator, n: int, first_day: int, end_day: int) -> Users:
    """Draw ``n`` users registering between ``first_day`` and ``end_day`` (the months after the
    files), each subscribing within a few days, as the newcomers of ``draw_users`` do."""
    registered = rng.integers(first_day, end_day, n).astype(np.int64)
    stacker = rng.random(n) < 0.033
    plan = np.where(stacker, 410, _pick(rng, PLANS, _PLAN_WEIGHTS, n))
    start = registered + rng.integers(0, 4, n)
    nobody = np.zeros(n, dtype=bool)
    return _traits(rng, registered, start, nobody, stacker, plan, nobody)


def _traits(
    rng: np.random.Generator,
    registered: np.ndarray,
    start: np.ndarray,
    promo: np.ndarray,
    stacker: np.ndarray,
    plan: np.ndarray,
    dormant: np.ndarray,
) -> Users:
    """Payment habits, listening and decay of users whose arrival is drawn."""
    n = len(registered)
    auto = stacker | (rng.random(n) < 0.79)
    payment_method = np.where(
        auto, _pick(rng, _PM_AUTO, _PM_AUTO_W, n), _pick(rng, _PM_MANUAL, _PM_MANUAL_W, n)
    )
    engagement = np.where(rng.random(n) < 0.10, 0.0, rng.beta(2.4, 1.7, n))
    shares = rng.dirichlet(np.array([18.0, 5.0, 4.0, 4.0, 69.0]) / 8.0, n)
    rarely_skips = rng.random(n) < 0.25
    shares[rarely_skips, 0] *= 0.08
    shares /= shares.sum(axis=1, keepdims=True)
    volume = np.exp(rng.normal(np.log(19.0), 0.6, n))
    return Users(
        msno=make_msno(rng, n),
        start=start,
        promo=promo,
        stacker=stacker,
        registered=registered,
        has_profile=dormant | (rng.random(n) >= 0.11),
        auto=auto,
        payment_method=payment_method,
        plan=plan,
        price_sensitivity=rng.beta(1.0, 5.0, n),
        engagement=engagement,
        volume=volume,
        band_shares=shares,
        unique_ratio=rng.beta(6.0, 2.0, n),
        song_seconds=rng.normal(235.0, 25.0, n).clip(120, 400),
        disengage_day=start + rng.exponential(550.0, n).astype(np.int64),
        decay_days=rng.uniform(12.0, 60.0, n),
        return_chance=rng.beta(1.5, 4.0, n),
    )


def members_frame(
    rng: np.random.Generator, users: Users, shift: float, shift_start: int
) -> pd.DataFrame:
    """members_v3 rows (users with a profile), with the real file's dirty values."""
    n = len(users)
    blank = rng.random(n) < 0.66  # profiles left empty: bd 0, no gender
    bd = np.where(blank, 0, np.clip(rng.gamma(9.0, 3.2, n).astype(np.int64) + 1, 14, 70))
    bd = np.where(~blank & (rng.random(n) < 0.02), 0, bd)
    shifted = (users.registered >= shift_start) & (bd > 0) & (rng.random(n) < 0.6 * shift)
    bd = np.where(shifted, rng.integers(14, 20, n), bd)
    odd = rng.random(n)
    bd = np.where(odd < 0.00004, -rng.integers(1, 7169, n), bd)
    bd = np.where((odd >= 0.00004) & (odd < 0.0008), rng.integers(101, 2017, n), bd)
    gender = np.where(
        blank & (rng.random(n) < 0.97),
        np.full(n, None, dtype=object),
        np.where(rng.random(n) < 0.52, "male", "female"),
    )
    registered_via = _pick(rng, _VIA, _VIA_WEIGHTS, n)
    if n > 0 and rng.random() < min(1.0, n / 200_000):
        registered_via[rng.integers(0, n)] = -1  # the real file holds one such row
    members = pd.DataFrame(
        {
            "msno": users.msno,
            "city": np.where(
                blank & (rng.random(n) < 0.3), 1, _pick(rng, _CITIES, _CITY_WEIGHTS, n)
            ),
            "bd": bd,
            "gender": pd.array(gender, dtype="string"),
            "registered_via": registered_via,
            "registration_init_time": to_yyyymmdd(users.registered),
        }
    )
    return members[users.has_profile].reset_index(drop=True)
