"""File formatting: a chunk's frames become rows of the real KKBox CSVs, quirks included."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from churn_transform.dates import add_months, day, month_bounds, to_yyyymmdd
from churn_transform.schema import RAW_FILES

V2_START = day("2017-03-01")
FILES_END = day("2017-04-01")
_EPOCH_QUIRK_BEFORE = day("2016-06-01")
# Arrow formats a batch of rows at a time: in batches of its default 1,024 rows, a chunk's rows
# took about a tenth longer to format.
_CSV_ROWS = pacsv.WriteOptions(include_header=False, quoting_style="none", batch_size=1 << 16)


def csv_rows(frame: pd.DataFrame | pa.Table, columns: tuple[str, ...]) -> pa.Buffer:
    """The frame's ``columns`` as CSV rows without a header and without quoting, as the real
    files: missing values empty, floats in their shortest exact form."""
    if isinstance(frame, pa.Table):
        table = frame.select(list(columns))
    else:
        table = pa.Table.from_pandas(frame, columns=list(columns), preserve_index=False)
    rows = pa.BufferOutputStream()
    pacsv.write_csv(table, rows, write_options=_CSV_ROWS)
    return rows.getvalue()


class CsvFile:
    """One CSV open for appending: the header first, then rows already formatted (no quoting,
    as the real files)."""

    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self.path, self.rows = path, 0
        self._file: BinaryIO = path.open("wb")
        self._file.write((",".join(columns) + "\n").encode())
        # Forked workers get a copy of this file object: leave them no buffered bytes to write.
        self._file.flush()

    def append(self, parts: list[pa.Buffer], count: int) -> None:
        for rows in parts:
            self._file.write(rows)
        self.rows += count

    def append_from(self, source: BinaryIO, size: int, count: int) -> None:
        """Append the next ``size`` bytes of ``source`` (rows already formatted)."""
        self._file.flush()
        _copy(source, self._file, size)
        self.rows += count

    def close(self) -> None:
        self._file.close()


def spill(parts: dict[str, list[pa.Buffer]], path: Path) -> dict[str, int]:
    """Write every file's formatted rows into ``path``, one file's after the other, and answer
    how many bytes each has there (in that order): a worker process hands back a path, not
    megabytes through a pipe, and the main process copies them on (``CsvFile.append_from``)."""
    sizes = {}
    with path.open("wb") as spilled:
        for name, buffers in parts.items():
            for rows in buffers:
                spilled.write(rows)
            sizes[name] = sum(rows.size for rows in buffers)
    return sizes


def _copy(source: BinaryIO, target: BinaryIO, size: int) -> None:
    """Copy ``size`` bytes from where ``source`` stands to where ``target`` does: inside the
    kernel where it can (Linux's copy_file_range), through memory elsewhere."""
    try:
        while size:
            copied = os.copy_file_range(source.fileno(), target.fileno(), size)
            if not copied:
                raise EOFError(f"{source.name} ends {size} bytes early")
            size -= copied
        return
    except AttributeError:  # not Linux
        pass
    except OSError as error:  # a file system that cannot: copy through memory
        if error.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
            raise
    while size:
        block = source.read(min(size, 1 << 24))
        if not block:
            raise EOFError(f"{source.name} ends {size} bytes early")
        target.write(block)
        size -= len(block)


def transactions_files(
    rng: np.random.Generator, transactions: pd.DataFrame, msno: np.ndarray
) -> dict[str, pd.DataFrame]:
    """transactions.csv and transactions_v2.csv rows, and the hidden rows after March 2017.

    v2 holds March 2017, 3% of February's rows again (exact duplicates) and 0.2% of January and
    February rows that arrived late (absent from v1). A few old v1 rows expire on 19700101.
    """
    rows = file_rows(transactions, msno)
    date = transactions["date"].to_numpy()
    expire = transactions["expire"].to_numpy()
    draw = rng.random(len(rows))
    epoch = (date < _EPOCH_QUIRK_BEFORE) & (expire < _EPOCH_QUIRK_BEFORE) & (draw < 0.0003)
    rows.loc[epoch, "membership_expire_date"] = 19700101
    late = (date >= day("2017-01-01")) & (date < V2_START) & (draw > 0.998)
    duplicate = (date >= day("2017-02-01")) & (date < V2_START) & (draw < 0.03)
    v1 = rows[(date < V2_START) & ~late]
    v2 = pd.concat([rows[(date >= V2_START) & (date < FILES_END)], rows[late], rows[duplicate]])
    return {
        "transactions.csv": _shuffled(rng, v1),
        "transactions_v2.csv": _shuffled(rng, v2),
        "future": rows[date >= FILES_END],
    }


def file_rows(transactions: pd.DataFrame, msno: np.ndarray) -> pd.DataFrame:
    """The transactions' rows in the real file's columns and formats."""
    return pd.DataFrame(
        {
            "msno": msno[transactions["user"].to_numpy()],
            "payment_method_id": transactions["method"].to_numpy(),
            "payment_plan_days": transactions["plan"].to_numpy(),
            "plan_list_price": transactions["price"].to_numpy(),
            "actual_amount_paid": transactions["paid"].to_numpy(),
            "is_auto_renew": transactions["auto"].to_numpy(),
            "transaction_date": _yyyymmdd(transactions["date"].to_numpy()),
            "membership_expire_date": _yyyymmdd(transactions["expire"].to_numpy()),
            "is_cancel": transactions["cancel"].to_numpy(),
        }
    )


def user_logs_files(
    rng: np.random.Generator, logs: pd.DataFrame, msno: np.ndarray
) -> dict[str, pa.Table]:
    """user_logs.csv (before March 2017) and user_logs_v2.csv (March), with total_secs outliers.

    v1: 0.016% of rows negative (down to about -9.2e15), a few over 1e12; v2: 0.023% over 86,400.
    """
    columns, date = _log_rows(logs, msno)
    secs = columns["total_secs"]
    draw = rng.random(len(date))
    v1 = date < V2_START
    negative = v1 & (draw < 0.00016)
    secs[negative] = -np.round(10 ** rng.uniform(0, 15.96, int(negative.sum())), 3)
    huge = v1 & (draw > 1 - 2e-7)
    secs[huge] = np.round(10 ** rng.uniform(12, 13, int(huge.sum())), 3)
    long_day = ~v1 & (draw < 0.00023)
    secs[long_day] = np.round(rng.uniform(86_400, 9.2e6, int(long_day.sum())), 3)
    rows, march = pa.table(columns), int(np.searchsorted(date, V2_START))
    return {"user_logs.csv": rows.slice(0, march), "user_logs_v2.csv": rows.slice(march)}


def increment_transactions(
    rng: np.random.Generator, rows: pd.DataFrame, date: np.ndarray, months: list[str]
) -> dict[str, pd.DataFrame]:
    """Each further month's transactions.csv: its rows, as v2 holds March's.

    0.2% of a month's rows arrive late, in the next month's file (not in the last month's:
    no file follows it), and 3% of the previous month's rows come again (exact repeats). Rows
    draw in date order, two numbers each (the second orders the file), so a month's file
    depends on the rows up to its end only: a later change (the shift) leaves it as it was.
    """
    order = np.argsort(date, kind="stable")
    rows, date = rows.iloc[order], date[order]
    draw, key = rng.random((len(rows), 2)).T
    held_back = draw > 0.998
    files = {}
    for position, month in enumerate(months):
        first, end = month_bounds(month)
        before = month_bounds(add_months(month, -1))[0]
        own = (date >= first) & (date < end) & ~(held_back & (position < len(months) - 1))
        previous = (date >= before) & (date < first)
        late = previous & held_back & (before >= FILES_END)
        repeats = previous & (draw < 0.03)
        chosen = [own, late, repeats]
        month_rows = pd.concat([rows[mask] for mask in chosen])
        shuffle = np.argsort(np.concatenate([key[mask] for mask in chosen]), kind="stable")
        files[month] = month_rows.iloc[shuffle]
    return files


def increment_logs(
    rng: np.random.Generator, logs: pd.DataFrame, msno: np.ndarray, months: list[str]
) -> dict[str, pa.Table]:
    """Each further month's user_logs.csv, with the v2 file's share of days over 86,400 s."""
    columns, date = _log_rows(logs, msno)
    secs = columns["total_secs"]
    draw = rng.random(len(date))
    long_day = draw < 0.00023
    secs[long_day] = np.round(rng.uniform(86_400, 9.2e6, int(long_day.sum())), 3)
    rows = pa.table(columns)
    files = {}
    for month in months:
        first, end = np.searchsorted(date, month_bounds(month))
        files[month] = rows.slice(first, end - first)
    return files


def _log_rows(logs: pd.DataFrame, msno: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """user_logs columns in the file's formats, ordered by day then user, and their day numbers.
    ``logs`` come user by user (``Listening.rows``); every column is a fresh array."""
    date = logs["date"].to_numpy()
    # A user has one row a day and the rows come user by user: a stable sort on the day alone
    # orders them by day then user.
    order = np.argsort(_day_offsets(date), kind="stable")
    date = date[order]
    user = pa.array(logs["user"].to_numpy()[order])
    columns = {"msno": pa.array(msno).take(user), "date": _yyyymmdd(date)}
    for column in RAW_FILES["user_logs.csv"][2:]:
        columns[column] = logs[column].to_numpy()[order]
    return columns, date


def _day_offsets(days: np.ndarray) -> np.ndarray:
    """Days counted from the first: 16-bit where they fit, for numpy's radix sort."""
    if not len(days):
        return days
    offsets = days - days.min()
    return offsets.astype(np.uint16) if offsets.max() < 2**16 else offsets


def _yyyymmdd(days: np.ndarray) -> np.ndarray:
    """``to_yyyymmdd`` of many day numbers, converting each day of their span once."""
    if not len(days):
        return to_yyyymmdd(days)
    first = days.min()
    return to_yyyymmdd(np.arange(first, days.max() + 1))[days - first]


def _shuffled(rng: np.random.Generator, rows: pd.DataFrame) -> pd.DataFrame:
    return rows.iloc[rng.permutation(len(rows))]
