"""One measured figure of a KKBox file, the unit every fidelity module hands on."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

#: Counts of one file: named counters and (name, value) histogram bins, summed over blocks.
Counts = Counter[object]


@dataclass(frozen=True)
class Statistic:
    """A share (0..1) or a number, measured over ``count`` rows or users of ``file``."""

    file: str
    name: str
    value: float
    count: int
    share: bool = True


def shares(file: str, counts: Counts, names: list[str], total: int) -> list[Statistic]:
    """The counters ``names`` as shares of ``total``."""
    return [Statistic(file, name, counts[name] / max(total, 1), total) for name in names]


def bins(counts: Counts, key: str) -> list[tuple[int, int]]:
    """The (value, count) bins of the histogram ``key``, by value."""
    return sorted((k[1], n) for k, n in counts.items() if isinstance(k, tuple) and k[0] == key)
