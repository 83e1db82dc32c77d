"""Daily listening: one user_logs row per user and active day while the user is subscribed.

Every potential (user, day) cell is drawn once up front from the latent traits, so the
behaviour the oracle reads at a cutoff is exactly what is later written out. Whether a drawn
cell becomes a row depends only on the subscription on that day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churn_transform.synthetic.population import Users

#: Share of a song's length heard in each num_* band (<25%, 25-50%, 50-75%, 75-98.5%, >98.5%).
_BAND_PLAYED = np.array([0.12, 0.37, 0.62, 0.92, 1.0])
BANDS = ("num_25", "num_50", "num_75", "num_985", "num_100")
#: Days of listening the oracle's drivers read before a cutoff.
DRIVER_WINDOW = 60
#: Users whose (users, days) matrices are drawn at once: a few MB, not the chunk's hundreds.
_BLOCK_USERS = 1000
#: What a cut counts on a day, against 1 for each paid period covering it: one sum of both
#: tells covered and not cut (1 to _CUT - 1) while paid periods overlap fewer than _CUT times.
_CUT = 1 << 16


@dataclass(frozen=True)
class _Drawn:
    """The cells of a window whose draw fell under the chance of listening, user by user, each
    user's days in order (as np.nonzero would give them)."""

    index: np.ndarray  # flat indices into the (users, days) matrix
    per_user: np.ndarray  # cells of each user
    decay: np.ndarray  # each cell's engagement multiplier
    draw: np.ndarray  # each cell's draw and chance, kept only for the shift (else empty)
    chance: np.ndarray


def _drawn_cells(
    users: Users, rng: np.random.Generator, days: np.ndarray, day_factor: np.ndarray, shift: bool
) -> _Drawn:
    """Draw the (users, days) matrix a block of users at a time: the same numbers in the same
    order as all at once, in a few MB at a time instead of hundreds."""
    blocks: list[list[np.ndarray]] = [[] for _ in range(5)]  # in the order of _Drawn's fields
    for first in range(0, len(users), _BLOCK_USERS):
        rows = slice(first, first + _BLOCK_USERS)
        decay = users.decay(days, rows)
        chance = users.engagement[rows, None] * decay * day_factor
        draw = rng.random(chance.shape, dtype=np.float32)
        drawn = draw < chance
        cells = np.flatnonzero(drawn)
        kept = (draw.reshape(-1)[cells], chance.reshape(-1)[cells]) if shift else ()
        found = (
            cells + first * len(days),
            np.count_nonzero(drawn, axis=1),
            decay.reshape(-1)[cells],
            *kept,
        )
        for block, part in zip(blocks, found, strict=False):
            block.append(part)
    return _Drawn(*(np.concatenate(block) if block else np.zeros(0, np.int64) for block in blocks))


class Listening:
    """The drawn listening of a chunk of users over the day window ``[first_day, end_day)``."""

    user: np.ndarray
    day_index: np.ndarray
    bands: list[np.ndarray]  # each cell's songs in each num_* band, one array per band
    unique: np.ndarray
    secs: np.ndarray

    def __init__(
        self,
        users: Users,
        rng: np.random.Generator,
        window: tuple[int, int],
        shift: float,
        shift_start: int,
    ) -> None:
        first_day, end_day = window
        self.first_day, self.end_day = first_day, end_day
        days = np.arange(first_day, end_day)
        weekend = np.isin((days + 3) % 7, (5, 6))  # 1970-01-01 was a Thursday
        shifted = days >= shift_start
        shift_rng = np.random.default_rng(rng.integers(2**63))
        drawn = _drawn_cells(users, rng, days, np.where(weekend, 1.08, 0.97), bool(shift))
        self.n_users = len(users)
        self.user = np.repeat(np.arange(len(users)), drawn.per_user)
        self.day_index = drawn.index - self.user * len(days)
        self._flat = drawn.index  # each cell's index in the flattened (users, days) matrix
        self._draw(users, rng, drawn.decay, drawn.per_user)
        if shift:
            self._shrink(shift_rng, shifted[self.day_index], 1.0 - 0.35 * shift)
            # The shift thins the drawn cells afterwards, so the draws themselves do not change.
            thinned = drawn.draw < drawn.chance * np.where(
                shifted[self.day_index], 1.0 - 0.45 * shift, 1.0
            )
            self._keep(thinned)

    def _shrink(self, rng: np.random.Generator, cells: np.ndarray, factor: float) -> None:
        """The shift: fewer plays on the shifted days, drawn from a stream of its own."""
        counts = np.stack([band[cells] for band in self.bands], axis=1)
        before = counts @ _BAND_PLAYED
        counts = rng.binomial(counts, factor)
        for band, shrunk in zip(self.bands, counts.T, strict=True):
            band[cells] = shrunk
        songs = counts.sum(axis=1)
        self.unique[cells] = np.clip(self.unique[cells], 1, np.maximum(songs, 1))
        after = counts @ _BAND_PLAYED
        scaled = self.secs[cells] * np.where(before > 0, after / np.maximum(before, 1e-9), factor)
        self.secs[cells] = np.maximum(np.round(scaled, 3), 0.001)

    def _keep(self, cells: np.ndarray) -> None:
        self.user, self.day_index = self.user[cells], self.day_index[cells]
        self._flat = self._flat[cells]
        self.bands = [band[cells] for band in self.bands]
        self.unique, self.secs = self.unique[cells], self.secs[cells]

    def _draw(
        self, users: Users, rng: np.random.Generator, decay: np.ndarray, per_user: np.ndarray
    ) -> None:
        """Each drawn cell's plays, given its user's engagement multiplier on its day;
        ``per_user`` counts the cells of each user (they come user by user)."""

        def each(trait: np.ndarray) -> np.ndarray:  # the trait of each cell's user
            return np.repeat(trait, per_user)

        n = len(self.user)
        level = each(users.volume) * np.sqrt(decay)
        songs = np.maximum(1, np.round(level * rng.lognormal(0.0, 0.6, n))).astype(np.int64)
        # One contiguous array per band: a (cells, 5) matrix costs strided reads and writes.
        bands, left, mass = [], songs.copy(), np.ones(len(per_user))
        for share in users.band_shares.T[:4]:
            # A band's chance of each song left depends on the user alone: reckoned per user.
            bands.append(rng.binomial(left, each(np.clip(share / np.maximum(mass, 1e-9), 0, 1))))
            left -= bands[-1]
            mass -= share
        all_skipped = rng.random(n) < 0.025  # days of sampling: nothing heard to the end
        np.add(bands[0], left, out=bands[0], where=all_skipped)
        left[all_skipped] = 0
        self.bands = [*bands, left]
        self.unique = np.maximum(1, rng.binomial(songs, each(users.unique_ratio)))
        # Stacked as floats: the product numpy made of the integer matrix after converting it
        # (the BLAS's; a sum of one's own may differ from it in the last bit).
        played = np.stack(self.bands, axis=1, dtype=np.float64) @ _BAND_PLAYED
        secs = played * each(users.song_seconds) * rng.lognormal(0.0, 0.1, n)
        self.secs = np.maximum(np.round(secs, 3), 0.001)

    def active(self, subscribed: np.ndarray) -> np.ndarray:
        """Which drawn cells are real rows, given the (users, days) subscription matrix."""
        if subscribed.shape != (self.n_users, self.end_day - self.first_day):
            raise ValueError(f"a {subscribed.shape} subscription matrix for the window's cells")
        # Flat indices: indexing a matrix by (row, column) pairs costs several times as much.
        return subscribed.reshape(-1)[self._flat]

    def between(self, first_day: int, end_day: int) -> np.ndarray:
        """The cells of the days from ``first_day`` to before ``end_day``, user by user."""
        width = self.end_day - self.first_day
        first, end = np.clip(np.array([first_day, end_day]) - self.first_day, 0, width)
        # Each user's cells are a run of the ascending flat indices: a binary search finds
        # the part of each run inside the days.
        row = np.arange(self.n_users) * width
        start, stop = (
            np.searchsorted(self._flat, row + first),
            np.searchsorted(self._flat, row + end),
        )
        counts = stop - start
        return np.repeat(start - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())

    def rows(self, subscribed: np.ndarray) -> pd.DataFrame:
        """user_logs rows (user index and day number; file formatting happens in the writer),
        user by user, each user's days in order."""
        keep = np.flatnonzero(self.active(subscribed))
        columns = {"user": self.user[keep], "date": self.day_index[keep] + self.first_day}
        columns.update({name: band[keep] for band, name in zip(self.bands, BANDS, strict=True)})
        columns.update(num_unq=self.unique[keep], total_secs=self.secs[keep])
        return pd.DataFrame(columns, copy=False)  # fresh arrays: no copy to make


def seconds_before(
    windows: Sequence[Listening],
    transactions: pd.DataFrame,
    blocked: Sequence[tuple[np.ndarray, ...]],
    n_users: int,
    cutoff: int,
) -> tuple[np.ndarray, int]:
    """Seconds per (user, day) over the ``DRIVER_WINDOW`` days before ``cutoff`` (zero on days
    without a row), and the first of those days: the only listening the oracle's drivers read.
    ``windows`` are the drawn listening, ``transactions`` and ``blocked`` the subscriptions."""
    start = cutoff - DRIVER_WINDOW
    subscribed = subscribed_days(transactions, blocked, n_users, start, cutoff)
    secs = np.zeros(subscribed.shape)
    for window in windows:
        inside = window.between(start, cutoff)
        user, column = window.user[inside], window.day_index[inside] + (window.first_day - start)
        on = subscribed[user, column]
        secs[user[on], column[on]] = window.secs[inside[on]]
    return secs, start


def subscribed_days(
    transactions: pd.DataFrame,
    blocked: Sequence[tuple[np.ndarray, ...]],
    n_users: int,
    first_day: int,
    end_day: int,
) -> np.ndarray:
    """(users, days) matrix: True where a paid period covers the day and no cancel cut it."""
    paid = transactions["cancel"].to_numpy() == 0
    columns = [transactions[name].to_numpy()[paid] for name in ("user", "date", "expire")]
    intervals = [(*columns, np.ones(len(columns[0]), dtype=np.int32))]
    if blocked:
        cut = [np.concatenate(part) for part in zip(*blocked, strict=True)]
        intervals.append((*cut, np.full(len(cut[0]), _CUT, dtype=np.int32)))
    users, start, stop, weight = (np.concatenate(part) for part in zip(*intervals, strict=True))
    counts = _interval_counts(users, start, stop, weight, n_users, first_day, end_day - first_day)
    return (counts > 0) & (counts < _CUT)


def _interval_counts(
    users: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    weight: np.ndarray,
    n_users: int,
    first_day: int,
    width: int,
) -> np.ndarray:
    """Per (user, day): the sum of the ``weight`` of the intervals from ``start`` to before
    ``stop`` that cover the day."""
    marks = np.zeros((n_users, width + 1), dtype=np.int32)
    row = users * (width + 1)
    # int32 weights: np.add.at casting to the marks' type would miss its fast path.
    np.add.at(marks.reshape(-1), row + np.clip(start - first_day, 0, width), weight)
    np.add.at(marks.reshape(-1), row + np.clip(stop - first_day, 0, width), -weight)
    # int32 throughout: numpy would sum into int64, twice the memory to write.
    return np.cumsum(marks, axis=1, dtype=np.int32)[:, :width]
