"""Pandera schemas of every silver table, and a lazy check of silver and gold that reports every
failure (gold's schema lives in ``schema``, beside the column names it checks).

Silver holds the raw tables after the documented cleaning (``cleaning``): known quirks are gone,
so what these schemas reject is a truly broken input. Tables are checked bucket by bucket; since
a user's rows all live in one bucket, per-bucket uniqueness is global uniqueness. Ingest and
``gold.build_gold`` audit a new version with ``validate_silver`` and ``validate_gold`` before it is
published; ``gold.validate_lake`` reports on what is current with ``silver_checks``,
``gold_checks`` and ``run_checks``. A silver bucket whose Parquet statistics clear it
(``silver.statistics``) is not read; every other is checked row by row.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import dask
import pandas as pd
import pandera.pandas as pa
import pyarrow as arrow
import pyarrow.parquet as pq
from dask.delayed import Delayed
from fsspec import AbstractFileSystem
from pandera import Check, Column
from pandera.errors import SchemaErrors

from churn_transform.etl.silver import read_bucket, silver_snapshot
from churn_transform.etl.silver.read import as_pandas, part_paths
from churn_transform.etl.silver.statistics import clears, clears_written
from churn_transform.lake import Lake
from churn_transform.schema import (
    GENDERS,
    LABEL,
    TRAINING_COHORTS,
    gold_schema,
    msno_column,
)

#: Transactions and listening start with the challenge's files; monthly increments continue
#: them (docs/monthly.md), so the only upper bound is the day the check runs.
FIRST_DAY, LAST_DAY = pd.Timestamp("2015-01-01"), pd.Timestamp.now().normalize()
MAX_EXPIRY = pd.Timestamp("2040-12-31")
_MSNO = msno_column()


def _flag() -> Column:
    return Column("Int64", Check.isin([0, 1]))


def _label_present(frame: pd.DataFrame) -> pd.Series:
    """Every user of a labelled cohort has a label: February and March always (the training
    files), and a later cohort once any of its labels arrived (``labels_<month>.csv``); a cohort
    only listed to score has none."""
    known = frame[LABEL].notna()
    labelled = known.groupby(frame["cohort"]).transform("any")
    always = frame["cohort"].isin(TRAINING_COHORTS)
    return known | ~(labelled | always)


SILVER: dict[str, pa.DataFrameSchema] = {
    "members": pa.DataFrameSchema(
        {
            "msno": _MSNO,
            "city": Column("Int64", Check.in_range(1, 22)),
            "bd": Column("Int64", Check.in_range(1, 100), nullable=True),
            "gender": Column("string", Check.isin(list(GENDERS)), nullable=True),
            "registered_via": Column("Int64", Check.ge(1), nullable=True),
            "registration_init_time": Column(
                "datetime64[ns]",
                Check.in_range(pd.Timestamp("2004-01-01"), LAST_DAY),
            ),
        },
        unique=["msno"],
        name="silver members",
    ),
    "transactions": pa.DataFrameSchema(
        {
            "msno": _MSNO,
            "payment_method_id": Column("Int64", Check.ge(1)),
            "payment_plan_days": Column("Int64", Check.in_range(0, 450)),
            "plan_list_price": Column("Int64", Check.in_range(0, 2000)),
            "actual_amount_paid": Column("Int64", Check.in_range(0, 2000)),
            "is_auto_renew": _flag(),
            "transaction_date": Column("datetime64[ns]", Check.in_range(FIRST_DAY, LAST_DAY)),
            "membership_expire_date": Column(
                "datetime64[ns]",
                Check.in_range(pd.Timestamp("2014-01-01"), MAX_EXPIRY),
                nullable=True,
            ),
            "is_cancel": _flag(),
        },
        name="silver transactions",
    ),
    "user_logs": pa.DataFrameSchema(
        {
            "msno": _MSNO,
            "date": Column("datetime64[ns]", Check.in_range(FIRST_DAY, LAST_DAY)),
            **{
                band: Column("Int64", Check.ge(0))
                for band in ("num_25", "num_50", "num_75", "num_985", "num_100")
            },
            "num_unq": Column("Int64", Check.ge(1)),
            "total_secs": Column("float64", Check.in_range(0, 86_400), nullable=True),
        },
        unique=["msno", "date"],
        name="silver user_logs",
    ),
    "labels": pa.DataFrameSchema(
        {
            "msno": _MSNO,
            "cohort": Column("string", Check.str_matches(r"^\d{4}-(0[1-9]|1[0-2])$")),
            LABEL: Column("Int8", Check.isin([0, 1]), nullable=True),
        },
        unique=["cohort", "msno"],  # as the rows are sorted: the key check of ``statistics``
        name="silver labels",
        checks=Check(
            _label_present, element_wise=False, name="label present for a labelled cohort"
        ),
    ),
}


#: Pandera's name for the rule that the key columns (``unique``) never repeat together.
_UNIQUE = "multiple_fields_uniqueness"
#: The column of a failure that concerns a table as a whole, not some of its rows.
WHOLE_TABLE = "(table)"
#: The rule that a cohort's gold table holds at least one user.
NOT_EMPTY = "cohort_not_empty"


@dataclass
class Failure:
    table: str
    column: str
    check: str
    count: int = 0
    examples: list[str] = field(default_factory=list)


@dataclass
class ValidationReport:
    failures: list[Failure] = field(default_factory=list)
    rows_checked: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures

    def text(self) -> str:
        if self.ok:
            return "validation passed: " + ", ".join(
                f"{t} {n:,} rows" for t, n in self.rows_checked.items()
            )
        lines = [f"validation FAILED: {len(self.failures)} rule(s) broken"]
        for f in self.failures:
            if f.column == WHOLE_TABLE:
                lines.append(f"  {f.table}: {f.check} failed: {'; '.join(f.examples)}")
                continue
            lines.append(
                f"  {f.table}.{f.column}: {f.check} failed for {f.count:,} row(s); "
                f"e.g. {'; '.join(f.examples)}"
            )
        return "\n".join(lines)

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "rows_checked": self.rows_checked,
            "failures": [vars(f) for f in self.failures],
        }


def check_frame(schema: pa.DataFrameSchema, table: str, frame: pd.DataFrame) -> list[Failure]:
    """Every broken rule of ``frame``, each with a count and up to five example rows.

    The schema's key (``unique``) is checked by pandas' ``duplicated``, as Pandera checks it, and
    every other rule by Pandera: Pandera reshapes the repeated rows into failure cases in time
    that grows faster than their number (8.6 s for 20,000 repeated user-days, minutes for a part
    of them), so a file with repeated keys would take hours to be refused.
    """
    repeated = _repeated_keys(schema, table, frame)
    if schema.unique:
        schema = copy.copy(schema)
        schema.unique = None
    try:
        schema.validate(frame, lazy=True)
        return repeated
    except SchemaErrors as err:
        cases = err.failure_cases
    grouped: dict[tuple[str, str], Failure] = {(f.column, f.check): f for f in repeated}
    for case in cases.itertuples():
        column = str(case.column) if case.column is not None else WHOLE_TABLE
        key = (column, str(case.check))
        failure = grouped.setdefault(key, Failure(table, column, str(case.check)))
        failure.count += 1
        if len(failure.examples) < 5:
            failure.examples.append(_example(frame, case.index, case.failure_case))
    return list(grouped.values())


def _repeated_keys(schema: pa.DataFrameSchema, table: str, frame: pd.DataFrame) -> list[Failure]:
    """The rows whose key (``schema.unique``) another row repeats, every one of them (Pandera's
    ``report_duplicates="all"``), as Pandera names the rule."""
    keys = list(schema.unique or [])
    if not keys or not all(key in frame.columns for key in keys):
        return []  # a missing key column: Pandera names it
    repeated = frame.duplicated(keys, keep=False)
    if not repeated.any():
        return []
    examples = [
        _example(frame, index, tuple(frame.loc[index, keys]))
        for index in frame.index[repeated.to_numpy()][:5]
    ]
    return [Failure(table, ", ".join(keys), _UNIQUE, int(repeated.sum()), examples)]


def _example(frame: pd.DataFrame, index: Any, value: object) -> str:
    if index is not None and not pd.isna(index) and index in frame.index:
        return f"row msno={frame.at[index, 'msno']!s} value={value!r}"
    return f"value={value!r}"


def merge(reports: list[list[Failure]], rows: dict[str, int]) -> ValidationReport:
    """Combine per-bucket failures into one report (counts add up, examples are kept)."""
    merged: dict[tuple[str, str, str], Failure] = {}
    totals: defaultdict[tuple[str, str, str], int] = defaultdict(int)
    for failures in reports:
        for f in failures:
            key = (f.table, f.column, f.check)
            kept = merged.setdefault(key, Failure(f.table, f.column, f.check))
            totals[key] += f.count
            kept.examples.extend(f.examples[: 5 - len(kept.examples)])
    for key, failure in merged.items():
        failure.count = totals[key]
    return ValidationReport(sorted(merged.values(), key=lambda f: (f.table, f.column)), rows)


def _check_bucket(
    lake: Lake, table: str, bucket: int, version: str, newest_layer_only: bool = False
) -> tuple[list[Failure], int]:
    """The failures of one bucket and its rows. A bucket in one part file that the file's own
    statistics clear (``silver.statistics``) is not read; any other is read whole and checked
    by Pandera, which names the rows that fail."""
    paths = part_paths(lake, table, bucket, version, newest_layer_only)
    if not paths:
        return [], 0
    if len(paths) == 1 and clears(SILVER[table], paths[0], lake.fs):
        return [], pq.ParquetFile(paths[0], filesystem=lake.fs).metadata.num_rows
    frame = read_bucket(lake, table, bucket, version=version, newest_layer_only=newest_layer_only)
    return _by_pandera(table, frame)


def check_written(
    table: str, path: str, fs: AbstractFileSystem, written: pq.FileMetaData, rows: arrow.Table
) -> tuple[list[Failure], int]:
    """The failures of a silver part file as compaction writes it, and its rows: cleared from
    the writer's footer ``written`` and the ``rows`` it wrote, still in memory
    (``statistics.clears_written``), or else read back and checked by Pandera, as
    ``_check_bucket`` checks a part already in the lake."""
    if clears_written(SILVER[table], written, rows):
        return [], written.num_rows
    return _by_pandera(table, as_pandas(pq.read_table(path, filesystem=fs, use_threads=False)))


def _by_pandera(table: str, frame: pd.DataFrame) -> tuple[list[Failure], int]:
    """The failures of silver rows of ``table`` that statistics could not clear, and the rows."""
    return check_frame(SILVER[table], f"silver.{table}", frame), len(frame)


def written_report(checked: dict[str, list[tuple[list[Failure], int]]]) -> ValidationReport:
    """The audit of a silver version from ``check_written``'s verdicts on the part files just
    written (table -> one per part): what ``validate_silver`` reports when it reads them back."""
    rows = {f"silver.{table}": sum(n for _, n in checked.get(table, [])) for table in SILVER}
    return merge([failures for parts in checked.values() for failures, _ in parts], rows)


def _check_gold(lake: Lake, cohort: str, paths: list[str]) -> tuple[list[Failure], int]:
    frame = pq.ParquetDataset(paths, filesystem=lake.fs).read().to_pandas()
    # a cohort is scored before its labels arrive (the challenge's April, any later month)
    unlabelled = cohort not in TRAINING_COHORTS and bool(frame[LABEL].isna().all())
    return check_frame(gold_schema(unlabelled), f"gold.{cohort}", frame), len(frame)


def silver_checks(
    lake: Lake, version: str, newest_layer_only: bool = False
) -> list[tuple[str, Delayed]]:
    buckets = silver_snapshot(lake, version).buckets
    check = dask.delayed(_check_bucket)
    return [
        (f"silver.{table}", check(lake, table, bucket, version, newest_layer_only))
        for table in SILVER
        for bucket in range(buckets)
    ]


def gold_checks(lake: Lake, cohort: str, url: str) -> list[tuple[str, Delayed]]:
    """One check of the whole gold table: a row per user is small, and Pandera's cost per call
    (tens of milliseconds) was most of the audit's time when it ran once per part."""
    paths = sorted(lake.fs.glob(f"{lake.path_of(url)}/part-*.parquet"))
    return [(f"gold.{cohort}", dask.delayed(_check_gold)(lake, cohort, paths))] if paths else []


def run_checks(tasks: list[tuple[str, Delayed]], cohorts: list[str]) -> ValidationReport:
    results = dask.compute(*[task for _, task in tasks])
    rows: defaultdict[str, int] = defaultdict(int)
    for (name, _), (_, count) in zip(tasks, results, strict=True):
        rows[name] += count
    empty = [_empty(cohort) for cohort in cohorts if not rows[f"gold.{cohort}"]]
    return merge([failures for failures, _ in results] + [empty], dict(rows))


def _empty(cohort: str) -> Failure:
    """A cohort without users: its gold table would score, serve and train on nothing."""
    return Failure(
        f"gold.{cohort}",
        WHOLE_TABLE,
        NOT_EMPTY,
        1,
        [
            f"cohort {cohort} has no user: no membership known to expire in {cohort} (a month's "
            f"increment lists the next month's cohort in cohort_{cohort}.csv)"
        ],
    )


def validate_silver(lake: Lake, version: str, newest_layer_only: bool = False) -> ValidationReport:
    """Check every bucket of every table of silver ``version``, published or not;
    ``newest_layer_only``: only the rows its newest layer (a monthly increment) added."""
    return run_checks(silver_checks(lake, version, newest_layer_only), [])


def validate_gold(lake: Lake, cohort: str, url: str) -> ValidationReport:
    """Check every part of the gold table of ``cohort`` at ``url``, published or not, and that
    the cohort has users."""
    return run_checks(gold_checks(lake, cohort, url), [cohort])
