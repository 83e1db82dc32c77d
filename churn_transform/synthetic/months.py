"""The months after March 2017: the timeline goes on, one cohort decision at each month's cutoff.

The chunk's users go on from the state right after the April decisions (a copy: the base files
stay those of a run without further months), joined by newcomers registering after the last
registration of members_v3. Every draw comes from streams of its own (5 and up), so the months
change nothing the base files hold. Listening goes on from ``FILES_END`` in a second window;
the oracle's drivers read both windows at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churn_transform.dates import add_months, month_bounds
from churn_transform.synthetic.campaign import PlayedCampaigns
from churn_transform.synthetic.decisions import decide_cohort, stream
from churn_transform.synthetic.listening import Listening, seconds_before, subscribed_days
from churn_transform.synthetic.population import (
    LAST_REGISTRATION,
    NEWCOMERS_PER_DAY,
    Users,
    draw_newcomers,
    members_frame,
)
from churn_transform.synthetic.subscriptions import Chain

#: The first further month: its data is the first increment after the base files.
FIRST_MONTH = "2017-04"


def further_months(months: int) -> list[str]:
    """The increments' months: April 2017 and the ``months - 1`` after it."""
    return [add_months(FIRST_MONTH, k) for k in range(months)]


def further_cohorts(months: int) -> list[str]:
    """The cohorts decided in the further months: May 2017 on, one per increment."""
    return [add_months(FIRST_MONTH, k) for k in range(1, months + 1)]


@dataclass(frozen=True)
class Months:
    """The further months of one chunk, with user indices into ``msno`` and day numbers."""

    msno: np.ndarray  # the chunk's users, then the newcomers
    members: pd.DataFrame  # the newcomers' members_v3 rows
    transactions: pd.DataFrame  # the whole history as it went on, with the hidden rows after
    logs: pd.DataFrame  # listening from FILES_END to the end of the last month
    oracle: pd.DataFrame  # the decisions of the further cohorts


@dataclass
class _Line:
    """A set of users going through the months: a chain, its listening windows, its decisions."""

    chain: Chain
    listening: Sequence[Listening]
    rng: np.random.Generator
    offset: int  # index of the first user in ``Months.msno``

    def seconds(self, at: Chain, cutoff: int) -> tuple[np.ndarray, int]:
        return seconds_before(self.listening, at.transactions(), at.blocked, len(at.users), cutoff)

    def decide(self, cohort: str, played: PlayedCampaigns | None) -> pd.DataFrame:
        decided = decide_cohort(cohort, self.chain, self.rng, self.seconds, played)
        return decided.assign(user=decided["user"] + self.offset)

    def logs(self, first_day: int, end_day: int) -> pd.DataFrame:
        n = len(self.chain.users)
        window = self.listening[-1]
        subscribed = subscribed_days(
            self.chain.transactions(), self.chain.blocked, n, first_day, end_day
        )
        rows = window.rows(subscribed)
        return rows.assign(user=rows["user"] + self.offset)

    def transactions(self) -> pd.DataFrame:
        rows = self.chain.transactions()
        return rows.assign(user=rows["user"] + self.offset)


def simulate_months(
    seed: np.random.SeedSequence,
    chain: Chain,
    listening: Listening,
    months: int,
    shift: tuple[float, int],
    played: PlayedCampaigns | None = None,
) -> Months:
    """Go on from ``chain`` (just after the April decisions) for ``months`` further months.

    ``listening`` is the chunk's window up to ``FILES_END``; ``shift`` the knob and its first day;
    ``played`` the campaigns played in the further cohorts (their offered users, by msno).
    """
    last = further_cohorts(months)[-1]
    files_end, end = listening.end_day, month_bounds(last)[0]
    history_end = month_bounds(add_months(last, 2))[0]  # the last cohort's labels are final
    users = chain.users
    chain.rng = stream(seed, 5)
    more = Listening(users, stream(seed, 6), (files_end, end), *shift)
    lines = [_Line(chain, (listening, more), stream(seed, 7), 0)]
    newcomers = _newcomers(stream(seed, 8), len(users), end)
    lines.append(
        _Line(
            Chain(newcomers, stream(seed, 9), *shift),
            (Listening(newcomers, stream(seed, 10), (files_end, end), *shift),),
            stream(seed, 11),
            len(users),
        )
    )
    decisions = [
        line.decide(cohort, played) for cohort in further_cohorts(months) for line in lines
    ]
    for line in lines:
        line.chain.advance(history_end)
    return Months(
        msno=np.concatenate([users.msno, newcomers.msno]),
        members=members_frame(stream(seed, 12), newcomers, *shift),
        transactions=pd.concat([line.transactions() for line in lines], ignore_index=True),
        logs=pd.concat([line.logs(files_end, end) for line in lines], ignore_index=True),
        oracle=pd.concat(decisions, ignore_index=True),
    )


def _newcomers(rng: np.random.Generator, chunk_users: int, end: int) -> Users:
    """Users registering from the day after members_v3's last registration to ``end``, at the
    rate newcomers arrived before, so cohorts keep their size as the months go on."""
    first = LAST_REGISTRATION + 1
    count = int(rng.poisson(NEWCOMERS_PER_DAY * chunk_users * (end - first)))
    return draw_newcomers(rng, count, first, end)
