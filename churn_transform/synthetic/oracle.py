"""The churn decision at a cohort cutoff: a known probability of what the data shows.

At the cutoff ``c`` (first day of the cohort month) each cohort user's churn probability is
``sigmoid(logit)`` where the logit is a fixed function of behaviour visible in the generated
files before ``c`` (the DRIVERS below); the decision is one Bernoulli draw of it. That draw is
the only noise: the probability is therefore the best any model of the files can do, and is
written out as the oracle. Latent traits never enter it directly; they act through behaviour.

Drivers, all computed from rows dated before ``c`` (transactions in date order, subscriptions
before cancels on the same day, "last" rows ignoring 0-day rows; listening from user_logs
total_secs as generated, i.e. before outliers are injected):

- ``no_auto_renew``: ``is_auto_renew`` of the last transaction is 0.
- ``last_is_cancel``: the last transaction is a cancel.
- ``cancels_365``: cancel rows in the 365 days before ``c`` (capped at 3).
- ``long_plan``: ``payment_plan_days`` of the last non-cancel row is 90 or more.
- ``free_last`` / ``discount_last``: that row paid 0 / less than its list price.
- ``method_41``: ``payment_method_id`` of the last row is 41.
- ``newness``: exp(-tenure/45), tenure = days from the first transaction to ``c``.
- ``trend``: log((secs of the last 14 days / 14 + 60) / (secs of days c-44..c-15 / 30 + 60)),
  clipped to [-3, 1].
- ``silent_days``: days since the last log row (60 when none in the 60 days before ``c``).
- ``active_30``: days with a log row among the last 30.
- ``no_profile``: no members_v3 row (such users churn less in the real data).
- ``days_to_expiry``: the cohort expiry minus ``c``.

The truth changes with the behaviour shift (``shift`` > 0, cohorts from ``shift_start``): among
subscribers who turned auto-renew off, listening turns from a reason to stay into a sign of
leaving (they use up what they paid for, then go), and the quiet ones wait. Their listening terms
turn about typical values: ``w * d`` becomes ``w * t + (1 - 2 * shift) * w * (d - t)`` (TURNED
gives ``t``). A model of the months before cannot know it; one trained after it can learn it.

A retention offer (a discount on the renewal, made at the cutoff) changes the same logit by
``offer_change``, a fixed function of the same drivers. The oracle writes each user's probability
without it (``churn_probability``) and with it (``churn_probability_offered``); a past campaign
(``campaign``) draws its offered users' decisions from the second. With ``manual`` for
``no_auto_renew``:

    change = OFFER["reminded"] * (1 - manual) * asleep
             - reach * (manual * (OFFER["manual"] + OFFER["discount"] * discount_last
                                  + OFFER["free"] * free_last) + (1 - manual) * OFFER["auto"])
    reach = (1 - OFFER["cancelled"] * last_is_cancel) * exp(-max(silent_days - 7, 0) / 10)
    asleep = 1 when ASLEEP_DAYS[0] <= silent_days < ASLEEP_DAYS[1], else 0

Manual renewers are saved often, the more so when their last payment was discounted or free; a
recent canceller has made up their mind and a subscriber silent for weeks does not read the offer
(``reach`` near 0); an auto-renewer renews anyway (a small change); an auto-renewer who stopped
listening two to six weeks ago is reminded of a subscription they forgot they pay for, and some
leave (a positive change, for a few percent of a cohort).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

INTERCEPT = -5.1
WEIGHTS: dict[str, float] = {
    "no_auto_renew": 2.88,
    "last_is_cancel": 2.16,
    "cancels_365": 0.66,
    "long_plan": -1.2,
    "free_last": 1.68,
    "discount_last": 0.72,
    "method_41": -0.6,
    "newness": 1.8,
    "trend": -1.08,
    "silent_days": 0.05,
    "active_30": -0.048,
    "no_profile": -1.2,
    "days_to_expiry": 0.018,
}
#: The offer's weights in ``offer_change`` (a negative change of the logit saves).
OFFER: dict[str, float] = {
    "manual": 1.2,
    "discount": 0.9,
    "free": 0.6,
    "auto": 0.15,
    "cancelled": 0.95,
    "reminded": 0.8,
}
#: Days without listening (from, to) in which an offer reminds an auto-renewer to leave.
ASLEEP_DAYS = (14, 45)
#: The listening drivers whose terms turn under the shift among auto-renew-off subscribers, and
#: the typical value of each among them (about its mean), around which it turns.
TURNED: dict[str, float] = {"trend": 0.1, "silent_days": 15.0, "active_30": 10.0}


def observed_drivers(
    transactions: pd.DataFrame,
    secs: np.ndarray,
    first_day: int,
    has_profile: np.ndarray,
    expiry: np.ndarray,
    users: np.ndarray,
    cutoff: int,
) -> pd.DataFrame:
    """The DRIVERS of ``users`` at ``cutoff``, one row per user (index = user); ``secs`` holds
    every user's seconds per day from ``first_day`` on."""
    past = transactions[(transactions["date"] < cutoff) & transactions["user"].isin(users)]
    past = past.sort_values(["user", "date", "cancel"], kind="stable")
    # 0-day rows share their day with a real payment and have no order against it in the
    # files: the "last" drivers skip them, so they are the same whatever the row order.
    real = past[(past["plan"] > 0) | (past["cancel"] == 1)]
    last = real.groupby("user").last()
    last_paid = real[real["cancel"] == 0].groupby("user").last()
    drivers = pd.DataFrame(index=pd.Index(users, name="user"))
    drivers["no_auto_renew"] = 1 - last["auto"].reindex(users).to_numpy()
    drivers["last_is_cancel"] = last["cancel"].reindex(users).to_numpy()
    recent = past[(past["cancel"] == 1) & (past["date"] >= cutoff - 365)]
    drivers["cancels_365"] = recent.groupby("user").size().reindex(users, fill_value=0).clip(0, 3)
    paid = last_paid.reindex(users)
    drivers["long_plan"] = (paid["plan"] >= 90).astype(int).to_numpy()
    drivers["free_last"] = (paid["paid"] == 0).astype(int).to_numpy()
    drivers["discount_last"] = ((paid["paid"] > 0) & (paid["paid"] < paid["price"])).astype(int)
    drivers["method_41"] = (last["method"].reindex(users) == 41).astype(int).to_numpy()
    first = past.groupby("user")["date"].min().reindex(users)
    drivers["newness"] = np.exp(-(cutoff - first.to_numpy()) / 45.0)
    drivers = drivers.join(_listening_drivers(secs[users], cutoff - first_day, users))
    drivers["no_profile"] = (~has_profile[users]).astype(int)
    drivers["days_to_expiry"] = expiry[users] - cutoff
    return drivers


def _listening_drivers(secs: np.ndarray, cut: int, users: np.ndarray) -> pd.DataFrame:
    if cut < 60:
        raise ValueError("the listening window must start at least 60 days before a cutoff")
    last14 = secs[:, cut - 14 : cut].sum(axis=1)
    before = secs[:, cut - 44 : cut - 14].sum(axis=1)
    window = secs[:, cut - 60 : cut] > 0
    seen = window.any(axis=1)
    silent = np.where(seen, 1 + np.argmax(window[:, ::-1], axis=1), 60)
    return pd.DataFrame(
        {
            "trend": np.log((last14 / 14 + 60) / (before / 30 + 60)).clip(-3.0, 1.0),
            "silent_days": silent,
            "active_30": window[:, 30:].sum(axis=1),
        },
        index=pd.Index(users, name="user"),
    )


def probability_of(terms: pd.DataFrame, change: np.ndarray | float = 0.0) -> np.ndarray:
    """The oracle: the probability from its terms (``oracle_terms``), sigmoid of their sum plus
    ``INTERCEPT``; ``change`` (``offer_change``) gives the probability with the offer."""
    logit = INTERCEPT + terms.sum(axis=1).to_numpy() + change
    return 1.0 / (1.0 + np.exp(-logit))


def offer_change(drivers: pd.DataFrame) -> np.ndarray:
    """The offer's change of each user's churn logit, from the DRIVERS (the module says how)."""
    manual = drivers["no_auto_renew"].to_numpy(float)
    silent = drivers["silent_days"].to_numpy(float)
    cancelled = drivers["last_is_cancel"].to_numpy(float)
    reach = (1.0 - OFFER["cancelled"] * cancelled) * np.exp(-np.maximum(silent - 7.0, 0.0) / 10)
    price = (
        OFFER["manual"]
        + OFFER["discount"] * drivers["discount_last"].to_numpy(float)
        + OFFER["free"] * drivers["free_last"].to_numpy(float)
    )
    saved = reach * (manual * price + (1.0 - manual) * OFFER["auto"])
    asleep = (silent >= ASLEEP_DAYS[0]) & (silent < ASLEEP_DAYS[1])
    return OFFER["reminded"] * (1.0 - manual) * asleep - saved


def oracle_terms(drivers: pd.DataFrame, shift: float = 0.0) -> pd.DataFrame:
    """Each user's term of each driver in the oracle's logit (weight times driver, turned by
    ``shift`` as the module says): the true reasons, which ``INTERCEPT`` plus their sum turns
    into the probability (``probability_of``)."""
    terms = {name: weight * drivers[name].to_numpy(float) for name, weight in WEIGHTS.items()}
    if shift:
        off = drivers["no_auto_renew"].to_numpy(float)
        for name, typical in TURNED.items():
            value = drivers[name].to_numpy(float)
            terms[name] -= 2.0 * shift * off * WEIGHTS[name] * (value - typical)
    return pd.DataFrame(terms, index=drivers.index)
