"""KKBox dates are integers YYYYMMDD; the core computes on day numbers (days since 1970-01-01)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def to_days(yyyymmdd: npt.ArrayLike) -> IntArray:
    """Day numbers of YYYYMMDD integers, vectorised; raises on an impossible month or day."""
    values = np.asarray(yyyymmdd, dtype=np.int64)
    year, month, day = values // 10_000, (values // 100) % 100, values % 100
    bad = (month < 1) | (month > 12) | (day < 1) | (day > 31)
    if bad.any():
        raise ValueError(f"not a YYYYMMDD date: {values[bad][0]}")
    months = ((year - 1970) * 12 + (month - 1)).astype("datetime64[M]")
    days = months.astype("datetime64[D]").astype(np.int64) + (day - 1)
    back = to_yyyymmdd(days)
    if (back != values).any():
        raise ValueError(f"not a calendar date: {values[back != values][0]}")
    return days


def to_yyyymmdd(days: npt.ArrayLike) -> IntArray:
    """YYYYMMDD integers of day numbers, vectorised."""
    as_dates = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
    years = as_dates.astype("datetime64[Y]")
    months = as_dates.astype("datetime64[M]")
    year = years.astype(np.int64) + 1970
    month = (months - years.astype("datetime64[M]")).astype(np.int64) + 1
    day = (as_dates - months.astype("datetime64[D]")).astype(np.int64) + 1
    return year * 10_000 + month * 100 + day


def day(iso: str) -> int:
    """Day number of an ISO date string, e.g. ``day("2017-03-01")``."""
    return (dt.date.fromisoformat(iso) - dt.date(1970, 1, 1)).days


def month_bounds(month: str) -> tuple[int, int]:
    """First day of ``YYYY-MM`` and first day of the month after, as day numbers."""
    try:
        first = dt.date.fromisoformat(f"{month}-01")
    except ValueError as err:
        raise ValueError(f"cohort month must look like 2017-03, got {month!r}") from err
    following = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    epoch = dt.date(1970, 1, 1)
    return (first - epoch).days, (following - epoch).days


def add_months(month: str, count: int) -> str:
    """``YYYY-MM`` ``count`` months after ``month`` (before it when ``count`` is negative)."""
    year, number = int(month[:4]), int(month[5:7]) - 1 + count
    return f"{year + number // 12:04d}-{number % 12 + 1:02d}"


def parse_yyyymmdd(
    values: npt.ArrayLike,
) -> tuple[npt.NDArray[np.datetime64], npt.NDArray[np.bool_]]:
    """Dates (datetime64[ns], NaT where missing or impossible) and a mask of the impossible ones.

    Unlike ``to_days`` this never raises: it is for raw files, where a bad value is counted.
    """
    raw = np.asarray(values, dtype=np.float64)
    present = ~np.isnan(raw)
    whole = np.where(present, raw, 19700101).astype(np.int64)
    year, month, day_ = whole // 10_000, (whole // 100) % 100, whole % 100
    plausible = (month >= 1) & (month <= 12) & (day_ >= 1) & (day_ <= 31) & (year >= 1900)
    plausible &= year <= 2200
    months = np.where(plausible, (year - 1970) * 12 + (month - 1), 0).astype("datetime64[M]")
    days = months.astype("datetime64[D]").astype(np.int64) + np.where(plausible, day_ - 1, 0)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_length = _MONTH_DAYS[np.clip(month, 1, 12)] + (leap & (month == 2))
    valid = present & plausible & (day_ <= month_length)
    parsed = days.astype("datetime64[D]").astype("datetime64[ns]")
    parsed[~valid] = np.datetime64("NaT")
    return parsed, present & ~valid


def months_between(earlier: str, later: str) -> int:
    """Whole months from ``earlier`` to ``later`` (both YYYY-MM)."""
    (y0, m0), (y1, m1) = (map(int, earlier.split("-")), map(int, later.split("-")))
    return (y1 - y0) * 12 + (m1 - m0)


def shift_month(month: str, months: int) -> str:
    """``month`` (YYYY-MM) moved by ``months`` (negative: back)."""
    year, number = map(int, month.split("-"))
    index = year * 12 + number - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"
