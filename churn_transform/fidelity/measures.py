"""The statistics of each KKBox file, measured by streaming it in blocks so memory stays bounded.

Each file kind has a pure ``count_*`` function turning one block into counts; the counts of all
blocks add up and ``*_statistics`` turns them into shares and figures. Distinct users are kept as
64-bit hashes (about 8 bytes a user), the only state that grows with the data.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from tqdm import tqdm

from churn_transform.dates import to_days
from churn_transform.fidelity.cohorts import coverage_statistics, label_statistics
from churn_transform.fidelity.members import count_members, member_statistics
from churn_transform.fidelity.statistic import Counts, Statistic, bins, shares
from churn_transform.fidelity.user_logs import LAST_MONTH, count_user_logs, user_log_statistics
from churn_transform.schema import RAW_FILES

log = logging.getLogger(__name__)

BLOCK_SIZE = 32 << 20
_ARROW_TYPES = {"msno": pa.string(), "gender": pa.string(), "total_secs": pa.float64()}
_NO_EXPIRY = 19700101
#: The files measured row by row, in the order the report shows them (label files come last).
FILES = (
    "members_v3.csv",
    "transactions.csv",
    "transactions_v2.csv",
    "user_logs.csv",
    "user_logs_v2.csv",
)
_PLAN_DAYS = (0, 7, 30, 90, 180)
_PRICES = (99, 149)
_RANKED_PRICES = (180, 1788)


def read_blocks(
    path: Path, block_size: int = BLOCK_SIZE, columns: tuple[str, ...] | None = None
) -> Iterator[pa.RecordBatch]:
    """The file's record batches with the real dtypes; empty strings (no gender) read as null."""
    columns = columns or RAW_FILES[path.name]
    types = {c: _ARROW_TYPES.get(c, pa.int64()) for c in columns}
    options = pacsv.ConvertOptions(
        include_columns=list(columns), column_types=types, strings_can_be_null=True
    )
    yield from pacsv.open_csv(
        path, read_options=pacsv.ReadOptions(block_size=block_size), convert_options=options
    )


class Users:
    """Distinct user ids, kept as 64-bit hashes so millions of them take a few dozen MB."""

    def __init__(self) -> None:
        self._parts: list[np.ndarray] = [np.empty(0, dtype=np.uint64)]
        self._pending = 0

    def add(self, msno: pa.Array | pa.ChunkedArray) -> None:
        unique = pc.unique(msno).to_numpy(zero_copy_only=False).astype(object)
        self._parts.append(pd.util.hash_array(unique))
        self._pending += len(unique)
        if self._pending > 4_000_000:
            self._compact()

    def _compact(self) -> None:
        self._parts, self._pending = [np.unique(np.concatenate(self._parts))], 0

    def __len__(self) -> int:
        self._compact()
        return len(self._parts[0])


def _column(block: pa.RecordBatch, name: str) -> np.ndarray:
    return block.column(name).to_numpy(zero_copy_only=False)


def _values(column: np.ndarray, key: str) -> Counts:
    values, counts = np.unique(column, return_counts=True)
    return Counter({(key, int(v)): int(n) for v, n in zip(values, counts, strict=True)})


def count_transactions(block: pa.RecordBatch) -> Counts:
    """Counts of one block of transactions: plans, prices, methods, flags, payments, expiries."""
    days, price = _column(block, "payment_plan_days"), _column(block, "plan_list_price")
    paid, cancel = _column(block, "actual_amount_paid"), _column(block, "is_cancel") == 1
    expiry, made = _column(block, "membership_expire_date"), _column(block, "transaction_date")
    dated = expiry != _NO_EXPIRY
    length = to_days(expiry[dated]) - to_days(made[dated])
    counts = _values(days, "plan_days") + _values(price, "price")
    counts += _values(_column(block, "payment_method_id"), "method")
    counts.update(
        rows=len(days),
        auto_renew=int(_column(block, "is_auto_renew").sum()),
        cancel=int(cancel.sum()),
        paid_below_list=int((paid < price).sum()),
        paid_discounted=int(((paid > 0) & (paid < price)).sum()),
        paid_zero=int((paid == 0).sum()),
        expiry_19700101=int((~dated).sum()),
        expiry_before_transaction=int((length < 0).sum()),
        expiry_within_31_days=int(((length >= 0) & (length <= 31)).sum()),
        expiry_32_to_400_days=int(((length > 31) & (length <= 400)).sum()),
        expiry_over_400_days=int((length > 400).sum()),
        cancel_expiry_before_transaction=int((length < 0)[cancel[dated]].sum()),
    )
    return counts


def _rank(counts: Counts, key: str, value: int) -> float:
    """1 for the most common value of ``key``, 2 for the next...; NaN when it never occurs."""
    ordered = sorted(bins(counts, key), key=lambda bin: -bin[1])
    ranks = {v: i + 1 for i, (v, _) in enumerate(ordered)}
    return float(ranks.get(value, np.nan))


def _named(counts: Counts) -> Counts:
    """The histogram bins the report shows, as named counters."""
    named: Counts = Counter({f"plan_days_{d}": counts["plan_days", d] for d in _PLAN_DAYS})
    named["plan_days_360_or_more"] = sum(n for d, n in bins(counts, "plan_days") if d >= 360)
    named.update({f"list_price_{p}": counts["price", p] for p in _PRICES})
    named["payment_method_41"] = counts["method", 41]
    return named


def transaction_statistics(file: str, counts: Counts, users: int) -> list[Statistic]:
    rows, named = counts["rows"], _named(counts)
    stats = [
        Statistic(file, "rows", rows, rows, share=False),
        Statistic(file, "transactions_per_user", rows / max(users, 1), users, share=False),
        *shares(file, named, [str(name) for name in named], rows),
        *(
            Statistic(file, f"list_price_rank_{p}", _rank(counts, "price", p), rows, share=False)
            for p in _RANKED_PRICES
        ),
    ]
    names = ["auto_renew", "cancel", "paid_below_list", "paid_discounted", "paid_zero"]
    stats += shares(file, counts, [*names, "expiry_19700101"], rows)
    lengths = ["expiry_before_transaction", "expiry_within_31_days"]
    lengths += ["expiry_32_to_400_days", "expiry_over_400_days"]
    stats += shares(file, counts, lengths, rows - counts["expiry_19700101"])
    return stats + shares(file, counts, ["cancel_expiry_before_transaction"], counts["cancel"])


def measure_file(path: Path, block_size: int = BLOCK_SIZE) -> list[Statistic]:
    """The statistics of one members, transactions or user-logs file, read block by block."""
    name, users, counts = path.name, Users(), Counts()
    blocks = tqdm(read_blocks(path, block_size), desc=name, unit=" blocks", disable=None)
    for block in blocks:
        if name.startswith("transactions"):
            counts += count_transactions(block)
            users.add(block.column("msno"))
        elif name.startswith("user_logs"):
            counts += count_user_logs(block, LAST_MONTH[name])
            month = pc.equal(pc.divide(block.column("date"), 100), LAST_MONTH[name])
            users.add(pc.filter(block.column("msno"), month))
        elif name == "members_v3.csv":
            counts += count_members(block)
        else:
            raise ValueError(f"not a members, transactions or user-logs file: {name}")
    if name.startswith("transactions"):
        return transaction_statistics(name, counts, len(users))
    if name.startswith("user_logs"):
        return user_log_statistics(name, counts, len(users))
    return member_statistics(name, counts)


def measure(raw_dir: Path, block_size: int = BLOCK_SIZE) -> list[Statistic]:
    """Every statistic of the KKBox files under ``raw_dir``; a missing file is left out (logged)."""
    stats = []
    for name in FILES:
        if not (raw_dir / name).exists():
            log.warning("%s is missing: its statistics are left out", raw_dir / name)
            continue
        stats += measure_file(raw_dir / name, block_size)

    def read(path: Path, columns: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
        return read_blocks(path, block_size, columns)

    return stats + label_statistics(raw_dir) + coverage_statistics(raw_dir, read)
