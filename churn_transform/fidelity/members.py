"""Profile statistics of members_v3.csv: dirty ages, missing genders, cities, channels, years."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc

from churn_transform.fidelity.statistic import Counts, Statistic, shares

_CITIES = (1, 2)
_CHANNELS = (7, 9, 3, 4, 13)
_YEARS = {
    "registered_before_2011": (0, 2010),
    "registered_2011_to_2014": (2011, 2014),
    "registered_2015": (2015, 2015),
    "registered_2016": (2016, 2016),
    "registered_2017": (2017, 9999),
}


def count_members(block: pa.RecordBatch) -> Counts:
    """Counts of one block of members_v3.csv."""
    bd = block.column("bd").to_numpy()
    city, via = block.column("city").to_numpy(), block.column("registered_via").to_numpy()
    registered = block.column("registration_init_time").to_numpy()
    gender = block.column("gender")
    counts: Counts = Counter()
    counts.update(
        rows=len(bd),
        bd_0=int((bd == 0).sum()),
        bd_1_to_100=int(((bd >= 1) & (bd <= 100)).sum()),
        bd_negative=int((bd < 0).sum()),
        bd_over_100=int((bd > 100).sum()),
        gender_missing=gender.null_count,
        gender_male=int(pc.sum(pc.equal(gender, "male")).as_py() or 0),
        registered_after_20170228=int((registered > 20170228).sum()),
    )
    counts.update({f"city_{c}": int((city == c).sum()) for c in _CITIES})
    counts.update({f"registered_via_{v}": int((via == v).sum()) for v in _CHANNELS})
    year = registered // 10_000
    counts.update(
        {name: int(((year >= lo) & (year <= hi)).sum()) for name, (lo, hi) in _YEARS.items()}
    )
    return counts


def member_statistics(file: str, counts: Counts) -> list[Statistic]:
    rows = counts["rows"]
    names = ["bd_0", "bd_1_to_100", "bd_negative", "bd_over_100", "gender_missing"]
    names += [f"city_{c}" for c in _CITIES] + [f"registered_via_{v}" for v in _CHANNELS]
    names += ["registered_after_20170228", *_YEARS]
    known = rows - counts["gender_missing"]
    return [
        Statistic(file, "rows", rows, rows, share=False),
        *shares(file, counts, names, rows),
        *shares(file, counts, ["gender_male"], known),
    ]
