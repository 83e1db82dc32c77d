"""Subscription histories: payments, renewals, cancels and returns, written as transaction rows.

Each user runs a chain of paid periods. At every expiry the user renews or churns. Outside the
cohort months the choice follows the latent traits (``latent_churn_chance``); at a cohort cutoff
it is taken by the oracle on observed behaviour and handed in through ``Chain.decide``. The rows
carry the real file's quirks: cancels that end a membership before their own date, 0-day rows,
free and discounted payments, stacked renewals that push expiry years ahead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churn_transform.dates import day
from churn_transform.synthetic.population import (
    NEVER,
    PRICES,
    STACK_PLAN_SHARE,
    Users,
)

LAST_EXPIRY = 24394  # 2036-10-15, the latest expiry in the real files
NEW_PAYMENT_METHOD = 42  # appears only with the shift knob on
_STACK_BEFORE = day("2017-01-10")
_FEWER_SWITCHES_FROM = day("2016-12-01")
_TX_FIELDS = ("user", "date", "plan", "price", "paid", "auto", "expire", "cancel", "method")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _price_draws() -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Each plan length's price options and their cumulative probabilities, as PRICES orders."""
    draws = []
    for plan_days, (options, weights) in PRICES.items():
        cdf = (np.array(weights) / sum(weights)).cumsum()
        draws.append((plan_days, np.array(options), cdf / cdf[-1]))
    return draws


_PRICE_DRAWS = _price_draws()


def price_of(rng: np.random.Generator, plans: np.ndarray) -> np.ndarray:
    """A list price for each plan length."""
    prices = np.zeros(len(plans), dtype=np.int64)
    for plan_days, options, cdf in _PRICE_DRAWS:
        hit = plans == plan_days
        count = int(np.count_nonzero(hit))
        if count:
            # rng.choice(options, count, p=...) draws just so (one uniform a pick, then the
            # cumulative probabilities), after checks of p that cost more than these few picks.
            prices[hit] = options[cdf.searchsorted(rng.random(count), side="right")]
    return prices


def _later(start: np.ndarray, plan: np.ndarray) -> np.ndarray:
    """The expiry of a plan bought from ``start``: monthly plans run to the same day next month
    (the last day of a shorter month), so a monthly subscriber expires once in every month."""
    month = start.astype("datetime64[D]").astype("datetime64[M]")
    next_month = month + 1
    length = ((next_month + 1).astype("datetime64[D]") - next_month.astype("datetime64[D]")).astype(
        np.int64
    )
    day_of_month = (start.astype("datetime64[D]") - month.astype("datetime64[D]")).astype(np.int64)
    monthly = next_month.astype("datetime64[D]").astype(np.int64) + np.minimum(
        day_of_month, length - 1
    )
    return np.where(plan == 30, monthly, start + plan)


class Chain:
    """The subscription state of a chunk of users and the transaction rows written so far."""

    def __init__(
        self, users: Users, rng: np.random.Generator, shift: float, shift_start: int
    ) -> None:
        n = len(users)
        self.users, self.rng, self.shift, self.shift_start = users, rng, shift, shift_start
        self.expiry = np.full(n, -1, dtype=np.int64)
        self.alive = np.zeros(n, dtype=bool)
        self.comeback = users.start.copy()  # next (re)subscription day
        self.last_date = np.full(n, -1, dtype=np.int64)
        self.periods = np.zeros(n, dtype=np.int64)
        self.first_date = np.full(n, NEVER, dtype=np.int64)
        self.next_bill = np.full(n, NEVER, dtype=np.int64)  # stackers' next monthly payment
        self._rows: list[dict[str, np.ndarray]] = []
        #: (users, from, to): days a cancel took away from a paid period (no listening).
        self.blocked: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    # ---- rows -------------------------------------------------------------------------
    def _emit(
        self,
        idx: np.ndarray,
        date: np.ndarray,
        plan: np.ndarray,
        expire: np.ndarray,
        cancel: int,
        paid: np.ndarray | None = None,
    ) -> None:
        rng, users = self.rng, self.users
        price = price_of(rng, plan)
        if paid is None:
            # Discounts and free renewals are rare (about 1% of rows in transactions_v2).
            extra = 0.3 * self.shift * (date >= self.shift_start)
            discounted = rng.random(len(idx)) < 0.05 * users.price_sensitivity[idx] + extra
            paid = np.where(discounted, (price * rng.uniform(0.5, 0.9, len(idx))).round(), price)
            free = rng.random(len(idx)) < 0.015 * users.price_sensitivity[idx]
            paid = np.where(free, 0, paid).astype(np.int64)
        else:
            price = np.where(paid == 0, 0, price)  # promotional free months are listed at 0
        method = users.payment_method[idx].copy()
        shifted = (date >= self.shift_start) & (rng.random(len(idx)) < 0.4 * self.shift)
        method[shifted] = NEW_PAYMENT_METHOD
        # Free months (promotions, trials, 0-day rows) do not renew by themselves.
        auto = users.auto[idx] & (cancel == 0) & (paid > 0)
        auto &= ~((date >= self.shift_start) & (rng.random(len(idx)) < 0.25 * self.shift))
        auto ^= rng.random(len(idx)) < 0.01
        self._rows.append(
            dict(
                user=idx,
                date=date,
                plan=plan,
                price=price,
                paid=paid,
                auto=auto.astype(np.int64),
                expire=expire,
                cancel=np.full(len(idx), cancel),
                method=method,
            )
        )
        self.last_date[idx] = np.maximum(self.last_date[idx], date)

    def _subscribe(self, idx: np.ndarray, date: np.ndarray, expire_base: np.ndarray) -> None:
        rng, users = self.rng, self.users
        plan = users.plan[idx].copy()
        newcomer = self.periods[idx] == 0
        paid = None
        if newcomer.any():
            trial = newcomer & ((rng.random(len(idx)) < 0.10) | users.promo[idx])
            trial &= ~users.stacker[idx]
            plan[trial & ~users.promo[idx] & (rng.random(len(idx)) < 0.3)] = 7
            paid = np.where(trial, 0, -1)
        expire = np.minimum(_later(expire_base, plan), LAST_EXPIRY)
        if paid is not None and (paid == 0).any():
            self._emit(
                idx[paid == 0],
                date[paid == 0],
                plan[paid == 0],
                expire[paid == 0],
                0,
                paid=np.zeros(int((paid == 0).sum()), dtype=np.int64),
            )
            keep = paid != 0
            idx, date, plan, expire = idx[keep], date[keep], plan[keep], expire[keep]
        self._emit(idx, date, plan, expire, 0)
        zero_day = rng.random(len(idx)) < 0.045
        if zero_day.any():
            z = idx[zero_day]
            self._emit(
                z,
                date[zero_day],
                np.zeros(len(z), dtype=np.int64),
                expire[zero_day],
                0,
                paid=np.zeros(len(z), dtype=np.int64),
            )

    # ---- events -----------------------------------------------------------------------
    def _start(self, idx: np.ndarray) -> None:
        date = self.comeback[idx]
        self.first_date[idx] = np.minimum(self.first_date[idx], date)
        before = len(self._rows)
        self._subscribe(idx, date, date)
        self._sync_expiry(before)
        self.alive[idx], self.comeback[idx] = True, NEVER
        self.periods[idx] += 1
        stackers = idx[self.users.stacker[idx]]
        self.next_bill[stackers] = self.last_date[stackers] + 30

    def _bill(self, idx: np.ndarray) -> None:
        """Stackers' monthly payment, most often for a 410-day plan, added to their expiry."""
        date = np.maximum(self.next_bill[idx], self.last_date[idx] + 1)
        plan = np.where(self.rng.random(len(idx)) < STACK_PLAN_SHARE, 410, 30)
        expire = np.minimum(self.expiry[idx] + plan, LAST_EXPIRY)
        self._emit(idx, date, plan, expire, 0)
        self.expiry[idx] = expire
        self.next_bill[idx] = date + 30

    def _sync_expiry(self, before: int) -> None:
        for rows in self._rows[before:]:
            if len(rows["cancel"]) and rows["cancel"][0] == 0:
                self.expiry[rows["user"]] = np.maximum(self.expiry[rows["user"]], rows["expire"])

    def renew(self, idx: np.ndarray, floor: np.ndarray) -> None:
        """Retained: a renewal within 30 days of expiry (auto on the day, manual around it)."""
        rng, expiry = self.rng, self.expiry[idx]
        manual = ~self.users.auto[idx]
        offset = np.where(rng.random(len(idx)) < 0.3, -1, 0)
        offset = np.where(manual, np.clip(rng.normal(2.0, 6.0, len(idx)).round(), -15, 25), offset)
        # Strictly after the last row: same-day rows with different expiries have no order.
        date = np.maximum(
            expiry + offset.astype(np.int64), np.maximum(floor, self.last_date[idx] + 1)
        )
        # A few cancel auto-renew, then re-subscribe anyway: the cancel keeps the expiry.
        when = date - rng.integers(3, 12, len(idx))
        # Such switches were common until late 2016 (about 4% of v1 rows are cancels, 2.5% of v2).
        chance = np.where(date < _FEWER_SWITCHES_FROM, 0.035, 0.005)
        switch = (rng.random(len(idx)) < chance) & (when >= floor) & (when > self.last_date[idx])
        if switch.any():
            s = idx[switch]
            self._emit(s, when[switch], self.users.plan[s], expiry[switch], 1)
        before = len(self._rows)
        self._subscribe(idx, date, np.maximum(expiry, date))
        self._sync_expiry(before)
        # Stacked rows span up to 20 days: kept clear of the cohort cutoffs, where they would
        # straddle a cutoff and blur which month the user belongs to.
        self._stack(idx, date, (rng.random(len(idx)) < 0.0008) & (date < _STACK_BEFORE))
        self.periods[idx] += 1

    def _stack(self, idx: np.ndarray, date: np.ndarray, chosen: np.ndarray) -> None:
        """A few users buy many long plans at once, pushing expiry years ahead."""
        for user, when in zip(idx[chosen], date[chosen], strict=True):
            for extra in range(1, int(self.rng.integers(3, 20))):
                if self.expiry[user] + 410 > LAST_EXPIRY:
                    break
                expire = np.array([self.expiry[user] + 410])
                self._emit(np.array([user]), np.array([when + extra]), np.array([410]), expire, 0)
                self.expiry[user] = expire[0]

    def churn(self, idx: np.ndarray, floor: np.ndarray) -> None:
        """Churned: auto payers cancel (often ending the membership at once); some return later."""
        rng, expiry = self.rng, self.expiry[idx]
        cancels = self.users.auto[idx] & (rng.random(len(idx)) < 0.2)
        if cancels.any():
            c = idx[cancels]
            when = np.maximum(expiry[cancels] - rng.integers(0, 21, len(c)), floor[cancels])
            ends_now = rng.random(len(c)) < 0.7
            expire = np.where(ends_now, when - rng.integers(1, 4, len(c)), expiry[cancels])
            self._emit(c, when, self.users.plan[c], expire, 1)
            cut = expire < self.expiry[c]
            self.blocked.append((c[cut], when[cut], self.expiry[c][cut]))
            self.expiry[c] = np.minimum(self.expiry[c], expire)
        self.alive[idx] = False
        # A user who has stopped listening seldom comes back: a returning user who never logs
        # would keep paying, unseen, for months.
        engaged = self.users.decay_at(idx, self.expiry[idx])
        returns = rng.random(len(idx)) < self.users.return_chance[idx] * engaged
        gap = 30 + rng.exponential(150.0, len(idx)).astype(np.int64) + 1
        later = np.maximum(self.expiry[idx] + gap, self.last_date[idx] + 1)
        self.comeback[idx] = np.where(returns, later, NEVER)

    def latent_churn_chance(self, idx: np.ndarray) -> np.ndarray:
        """Churn chance at an expiry outside the cohort months, from the latent traits."""
        users = self.users
        logit = (
            -3.4
            + 1.7 * ~users.auto[idx]
            + 2.0 * users.price_sensitivity[idx]
            + 2.2 * (1.0 - users.decay_at(idx, self.expiry[idx]))
            + 0.8 * (self.periods[idx] < 2)
            - 0.8 * (users.plan[idx] >= 90)
        )
        return _sigmoid(logit)

    def advance(self, until: int) -> None:
        """Play every start, payment, renewal and return that happens before day ``until``."""
        while True:
            starting = np.flatnonzero(~self.alive & (self.comeback < until))
            if len(starting):
                self._start(starting)
            billing = self.alive & (self.next_bill < until)
            # A stacker's payments come before its expiry: it is never due while it pays.
            due = np.flatnonzero(self.alive & (self.expiry < until) & ~billing)
            billed = np.flatnonzero(billing)
            if len(billed):
                self._bill(billed)
            if not len(due) and not len(starting) and not len(billed):
                return
            if len(due):
                churned = self.rng.random(len(due)) < self.latent_churn_chance(due)
                self.decide(due, churned, self.last_date[due])

    def decide(self, idx: np.ndarray, churned: np.ndarray, floor: np.ndarray) -> None:
        """Apply renew/churn decisions; no row is dated before ``floor``."""
        if (~churned).any():
            self.renew(idx[~churned], floor[~churned])
        if churned.any():
            self.churn(idx[churned], floor[churned])

    def pre_cutoff_cancels(self, idx: np.ndarray, cutoff: int, chance: np.ndarray) -> None:
        """Auto payers switching auto-renew off shortly before a cutoff (membership runs on)."""
        chosen = self.users.auto[idx] & (self.rng.random(len(idx)) < chance)
        c = idx[chosen]
        when = cutoff - self.rng.integers(1, 21, len(c))
        ok = when > self.last_date[c]
        c, when = c[ok], when[ok]
        self._emit(c, when, self.users.plan[c], self.expiry[c], 1)

    def transactions(self) -> pd.DataFrame:
        """All rows so far, with user index and day-number dates (not yet in file format)."""
        if not self._rows:
            return pd.DataFrame({name: np.array([], dtype=np.int64) for name in _TX_FIELDS})
        if len(self._rows) > 1:  # joined once: the next call joins only the rows written since
            self._rows = [
                {name: np.concatenate([rows[name] for rows in self._rows]) for name in _TX_FIELDS}
            ]
        return pd.DataFrame(self._rows[0])
