"""One chunk of synthetic KKBox: users, their histories, and the cohort decisions in time order.

Chunks are independent (a user's whole history lives in one chunk), so a dataset of any size is
a sequence of chunks, each seeded from the run's seed and its own index; ``in_order`` plays them
in several processes and hands their results back in chunk order.
"""

from __future__ import annotations

import copy
import ctypes
import itertools
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd

from churn_transform.dates import day, month_bounds, to_yyyymmdd
from churn_transform.labels import churn_labels
from churn_transform.synthetic.campaign import CAMPAIGN_STREAM, Campaign, PlayedCampaigns
from churn_transform.synthetic.decisions import decide_cohort, stream
from churn_transform.synthetic.listening import (
    DRIVER_WINDOW,
    Listening,
    seconds_before,
    subscribed_days,
)
from churn_transform.synthetic.months import Months, simulate_months
from churn_transform.synthetic.population import Users, draw_users, members_frame
from churn_transform.synthetic.subscriptions import Chain

#: Cohort months: Feb and Mar 2017 are labelled (train.csv, train_v2.csv); Apr is scored.
COHORTS = ("2017-02", "2017-03", "2017-04")
LOGS_END = day("2017-04-01")  # user_logs_v2 ends with March 2017
HISTORY_END = day("2017-06-01")  # far enough for every April label to be final
#: Chunks submitted and not yet handed back, per process: enough to keep every process busy
#: while the caller writes one result, few enough that finished results cannot pile up.
_IN_FLIGHT_PER_PROCESS = 2

Task = TypeVar("Task")
Result = TypeVar("Result")


@dataclass(frozen=True)
class ChunkConfig:
    users: int
    log_start: int
    shift: float
    shift_start: int = day("2017-03-01")
    months: int = 0  # further months simulated after March 2017 (see ``months``)
    campaign_share: float = 0.0  # the share of the past campaign's cohort offered (``campaign``)
    played: PlayedCampaigns | None = None  # campaigns played as their logs say (``campaign``)


@dataclass(frozen=True)
class Chunk:
    """Everything one chunk produces, still with user indices and day numbers."""

    users: Users
    members: pd.DataFrame
    transactions: pd.DataFrame  # the whole history, including rows after the files end
    logs: pd.DataFrame
    #: cohort, user, churn_probability, decided_churn, the oracle's terms; a played campaign's
    #: cohort as it played (the base files' chain decided it as without the campaign)
    oracle: pd.DataFrame
    months: Months | None = None  # the further months, when asked for


def simulate_chunk(seed: np.random.SeedSequence, config: ChunkConfig) -> Chunk:
    """Play a chunk's users from 2015 to mid 2017, taking the oracle decision at each cutoff."""
    if config.log_start > month_bounds(COHORTS[0])[0] - DRIVER_WINDOW:
        raise ValueError("the listening window must start at least 60 days before a cutoff")
    # Separate streams, so that the shift knob (which changes how much is drawn after it
    # starts) leaves every earlier draw, and so the whole past, exactly as it was. The further
    # months (``months``) draw from streams 5 and up: the writer takes stream 4.
    rng, chain_rng, listening_rng, members_rng = (
        np.random.default_rng(child) for child in seed.spawn(4)
    )
    users = draw_users(rng, config.users)
    members = members_frame(members_rng, users, config.shift, config.shift_start)
    chain = Chain(users, chain_rng, config.shift, config.shift_start)
    window = (config.log_start, LOGS_END)
    listening = Listening(users, listening_rng, window, config.shift, config.shift_start)

    def seconds(at: Chain, cutoff: int) -> tuple[np.ndarray, int]:
        return seconds_before((listening,), at.transactions(), at.blocked, len(users), cutoff)

    past = None
    if config.campaign_share:
        past = Campaign(config.campaign_share, stream(seed, CAMPAIGN_STREAM))
    decisions = [decide_cohort(cohort, chain, rng, seconds, past) for cohort in COHORTS[:-1]]
    scored, going_on = COHORTS[-1], chain
    if config.played is not None and scored in config.played.offered:
        # Its campaign is played in a copy, on the same draws, and the further months go on from
        # there; the base goes on as without it, so the base files' draws over the hidden rows
        # after them stay those of a run without it, and their bytes too.
        going_on, played_rng = copy.deepcopy((chain, rng), {id(users): users})
        decisions.append(decide_cohort(scored, going_on, played_rng, seconds, config.played))
        decide_cohort(scored, chain, rng, seconds, past)
    else:
        decisions.append(decide_cohort(scored, chain, rng, seconds, past))
    further = None
    if config.months:
        # A copy goes on: the base goes to HISTORY_END exactly as without further months.
        if going_on is chain:
            going_on = copy.deepcopy(chain, {id(users): users})
        shift = (config.shift, config.shift_start)
        further = simulate_months(seed, going_on, listening, config.months, shift, config.played)
    chain.advance(HISTORY_END)
    subscribed = _subscribed(chain, len(users), config.log_start)
    return Chunk(
        users=users,
        members=members,
        transactions=chain.transactions(),
        logs=listening.rows(subscribed),
        oracle=pd.concat(decisions, ignore_index=True),
        months=further,
    )


def _subscribed(chain: Chain, n_users: int, log_start: int) -> np.ndarray:
    return subscribed_days(chain.transactions(), chain.blocked, n_users, log_start, LOGS_END)


def cohort_labels(
    transactions: pd.DataFrame, cohorts: Sequence[str] = COHORTS
) -> dict[str, pd.DataFrame]:
    """The official rule applied to file-format transactions (exact repeats counted once), for
    every cohort month of ``cohorts``.

    The rule sorts and groups by msno: it runs on each msno's rank among them instead, which
    orders the rows alike at a fraction of the cost of strings, and the labels get the msno back.
    Of the rows before a cutoff it reads only each user's last (labels.py); it gets only those
    of each user's last day before the cutoff, in their order, and every row from the cutoff on.
    """
    ranks, ids = pd.factorize(transactions["msno"], sort=True)
    ranked = transactions.assign(msno=ranks).drop_duplicates()
    user, date = ranked["msno"].to_numpy(), ranked["transaction_date"].to_numpy(np.int64)
    labels = {}
    for cohort in cohorts:
        cutoff = int(to_yyyymmdd(month_bounds(cohort)[0]))
        before = date < cutoff
        last_day = np.zeros(len(ids), dtype=np.int64)
        np.maximum.at(last_day, user[before], date[before])
        found = churn_labels(ranked[~before | (date == last_day[user])], cohort)
        labels[cohort] = found.assign(msno=np.asarray(ids)[found["msno"].to_numpy()])
    return labels


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the platform tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def in_order(
    work: Callable[[Task], Result], tasks: Iterable[Task], processes: int
) -> Generator[Result]:
    """``work`` of every task, yielded in the tasks' order, computed in ``processes`` processes.

    The processes start at once, before the caller starts any thread of its own (a progress
    bar's). At most ``_IN_FLIGHT_PER_PROCESS`` results per process wait in memory: a result
    that is ready before the ones ahead of it waits for them, and no further task is submitted
    until the oldest is handed back. With one process, everything runs in this one. Closing
    the iterator (or an error) cancels the tasks not yet started.
    """
    if processes <= 1:
        return (work(task) for task in tasks)
    # fork: the workers start with every module already imported (spawn costs seconds of
    # imports per process); the pool forks its workers at the first submit, before it starts
    # its own thread. Elsewhere (macOS) fork is unsafe.
    linux = sys.platform == "linux"
    context = multiprocessing.get_context("fork" if linux else "spawn")
    pool = ProcessPoolExecutor(
        processes, mp_context=context, initializer=_end_with_parent if linux else None
    )
    waiting = iter(tasks)
    first = itertools.islice(waiting, processes * _IN_FLIGHT_PER_PROCESS)
    return _handed_back(pool, work, deque(pool.submit(work, task) for task in first), waiting)


def _end_with_parent() -> None:
    """Ask Linux to stop this worker when the main process dies: killed, it cannot stop its
    workers, and they would wait forever to hand back their chunk."""
    pr_set_pdeathsig = 1  # from <sys/prctl.h>
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _handed_back(
    pool: ProcessPoolExecutor,
    work: Callable[[Task], Result],
    pending: deque[Future[Result]],
    waiting: Iterator[Task],
) -> Generator[Result]:
    try:
        while pending:
            result = pending.popleft().result()
            for task in waiting:  # one more, so the processes stay busy while we yield
                pending.append(pool.submit(work, task))
                break
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
