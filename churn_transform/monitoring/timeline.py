"""Which model version served when, from the traffic log: the versions that answered each day,
and the switches between them (a promotion or a rollback, as the service lived it).

Both read a frame of logged predictions with ``ts`` (seconds since the epoch) and
``model_version``, as ``serving.traffic.read_served`` gives it; days are UTC days.
"""

from __future__ import annotations

import pandas as pd

DAYS = ("day", "model_version", "predictions", "first", "last")
SWITCHES = ("time", "from_version", "to_version")


def _ordered(traffic: pd.DataFrame) -> pd.DataFrame:
    ordered = traffic.sort_values("ts", kind="stable", ignore_index=True)
    return pd.DataFrame(
        {
            "time": pd.to_datetime(ordered["ts"], unit="s", utc=True),
            "model_version": ordered["model_version"].astype(str),
        }
    )


def served_by_day(traffic: pd.DataFrame) -> pd.DataFrame:
    """One row per day and version that answered that day: its ``predictions`` and the ``first``
    and ``last`` of them (UTC); by day, then by the time each version first answered."""
    if traffic.empty:
        return pd.DataFrame(columns=list(DAYS))
    served = _ordered(traffic)
    served["day"] = served["time"].dt.date
    days = served.groupby(["day", "model_version"], sort=False).agg(
        predictions=("time", "size"), first=("time", "min"), last=("time", "max")
    )
    return days.reset_index().sort_values(["day", "first"], ignore_index=True)[list(DAYS)]


def switches(traffic: pd.DataFrame, settle: float = 0.0) -> pd.DataFrame:
    """Every time the version answering changed: its ``time`` (the first answer of the new
    version), ``from_version`` and ``to_version``. Changes at most ``settle`` seconds apart are
    one change, from the version before the first to the one after the last: replicas (and
    worker processes) check the alias each at its own moment, so both versions answer for up to
    a polling interval; a back-and-forth that ends where it began is no switch."""
    ordered = traffic.sort_values("ts", kind="stable")
    times = [float(ts) for ts in ordered["ts"]]
    versions = [str(version) for version in ordered["model_version"]]
    moments = [i for i in range(1, len(versions)) if versions[i] != versions[i - 1]]
    found: list[tuple[pd.Timestamp, str, str]] = []
    group: list[int] = []
    for moment in [*moments, None]:  # None: the end, which closes the last group
        if group and (moment is None or times[moment] - times[group[-1]] > settle):
            before, after = versions[group[0] - 1], versions[group[-1]]
            if before != after:
                found.append((pd.Timestamp(times[group[0]], unit="s", tz="UTC"), before, after))
            group = []
        if moment is not None:
            group.append(moment)
    return pd.DataFrame(found, columns=list(SWITCHES))
