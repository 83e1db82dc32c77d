"""Listening statistics of a user-logs file: active days, daily seconds and plays, the num_* mix.

Medians come from fixed histograms (10-second bins up to a day, one bin a play up to 5,000), so
a 28 GB file is summarised in a few thousand counters.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa

from churn_transform.fidelity.statistic import Counts, Statistic, bins, shares

#: The month whose active days are counted: the last month each real file covers (YYYYMM).
LAST_MONTH = {"user_logs.csv": 201702, "user_logs_v2.csv": 201703}
NUM_COLUMNS = ("num_25", "num_50", "num_75", "num_985", "num_100")
DAY_SECONDS = 86_400
_SECS_BIN = 10
_MAX_PLAYS = 5_000


def _histogram(values: np.ndarray, key: str) -> Counts:
    bins, counts = np.unique(values, return_counts=True)
    return Counter({(key, int(b)): int(n) for b, n in zip(bins, counts, strict=True)})


def count_user_logs(block: pa.RecordBatch, last_month: int) -> Counts:
    """Counts of one block of user logs; ``last_month`` (YYYYMM) is the month of active days."""
    secs = block.column("total_secs").to_numpy()
    nums = {c: block.column(c).to_numpy() for c in NUM_COLUMNS}
    plays = sum(nums.values())
    within_day = (secs >= 0) & (secs <= DAY_SECONDS)
    counts = _histogram((secs[within_day] // _SECS_BIN).astype(np.int64), "secs")
    counts += _histogram(np.minimum(plays, _MAX_PLAYS), "plays")
    counts.update({f"plays_{c}": int(v.sum()) for c, v in nums.items()})
    counts.update({f"zero_{c}": int((v == 0).sum()) for c, v in nums.items()})
    counts.update(
        rows=len(secs),
        month_rows=int((block.column("date").to_numpy() // 100 == last_month).sum()),
        plays=int(plays.sum()),
        secs_in_day=int(within_day.sum()),
        secs_ms_in_day=round(1000 * float(secs[within_day].sum())),  # Counter adds ints
        secs_negative=int((secs < 0).sum()),
        secs_over_86400=int((secs > DAY_SECONDS).sum()),
        secs_over_1e12=int((secs > 1e12).sum()),
        num_unq_below_1=int((block.column("num_unq").to_numpy() < 1).sum()),
    )
    return counts


def _median(counts: Counts, key: str) -> float:
    """The lower edge of the histogram bin holding the middle value; NaN when empty."""
    histogram = bins(counts, key)
    total, seen = sum(n for _, n in histogram), 0
    for value, n in histogram:
        seen += n
        if 2 * seen >= total:
            return float(value)
    return float("nan")


def user_log_statistics(file: str, counts: Counts, users: int) -> list[Statistic]:
    rows, plays, in_day = counts["rows"], counts["plays"], counts["secs_in_day"]

    def number(name: str, value: float, over: int) -> Statistic:
        return Statistic(file, name, value, over, share=False)

    stats = [
        number("rows", rows, rows),
        number("active_days_last_month", counts["month_rows"] / max(users, 1), users),
        number("daily_secs_median", _median(counts, "secs") * _SECS_BIN, in_day),
        number("daily_secs_mean", counts["secs_ms_in_day"] / 1000 / max(in_day, 1), in_day),
        number("daily_plays_median", _median(counts, "plays"), rows),
        number("daily_plays_mean", plays / max(rows, 1), rows),
    ]
    stats += [
        Statistic(file, f"plays_share_{c}", counts[f"plays_{c}"] / max(plays, 1), plays)
        for c in NUM_COLUMNS
    ]
    names = [f"zero_{c}" for c in NUM_COLUMNS]
    names += ["secs_negative", "secs_over_86400", "secs_over_1e12", "num_unq_below_1"]
    return stats + shares(file, counts, names, rows)
