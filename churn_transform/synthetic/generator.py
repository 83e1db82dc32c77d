"""Writes a synthetic KKBox dataset: the eight raw CSVs, and the oracle's answers beside them.

``generate`` streams chunk after chunk of users into the files, so memory depends on the chunk
size, not on the number of users. It writes into fresh folders and swaps them in at the end:
an interrupted run leaves the previous dataset as it was.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from tqdm import tqdm

from churn_transform.dates import add_months, day, month_bounds, to_days
from churn_transform.labels import churn_labels
from churn_transform.schema import LABEL_FILES, RAW_FILES, SCORING_COHORT
from churn_transform.synthetic.decisions import stream
from churn_transform.synthetic.months import FIRST_MONTH, Months, further_cohorts, further_months
from churn_transform.synthetic.oracle import WEIGHTS
from churn_transform.synthetic.simulate import ChunkConfig, cohort_labels, simulate_chunk
from churn_transform.synthetic.writer import (
    FILES_END,
    file_rows,
    increment_logs,
    increment_transactions,
    transactions_files,
    user_logs_files,
)

log = logging.getLogger(__name__)

ORACLE_FILE = "oracle.csv"
#: Each cohort user's term of each oracle driver: the true reasons behind the probability.
ORACLE_TERMS_FILE = "oracle_terms.csv"
FUTURE_FILE = "transactions_future.csv"
_LATEST_LOG_START = day("2016-12-01")


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate. ``shift`` in [0, 1] shifts behaviour from the month ``shift_start``
    (``YYYY-MM``) on; ``months`` further months after March 2017 are written as increments."""

    users: int
    seed: int = 42
    chunk_users: int = 10_000
    log_start: str = "2015-01-01"
    shift: float = 0.0
    shift_start: str = "2017-03"
    months: int = 0

    def __post_init__(self) -> None:
        if self.users < 1:
            raise ValueError(f"users must be at least 1, got {self.users}")
        if self.chunk_users < 1:
            raise ValueError(f"chunk_users must be at least 1, got {self.chunk_users}")
        if not 0.0 <= self.shift <= 1.0:
            raise ValueError(f"shift must lie in [0, 1], got {self.shift}")
        if self.months < 0:
            raise ValueError(f"months must be 0 or more, got {self.months}")
        try:
            month_bounds(self.shift_start)
        except ValueError as err:
            raise ValueError(
                f"shift_start must be a month like 2017-03, got {self.shift_start!r}"
            ) from err
        if day(self.log_start) > _LATEST_LOG_START:
            raise ValueError(f"log_start must be 2016-12-01 or earlier, got {self.log_start}")


@dataclass
class Summary:
    """Rows and bytes per written file, and what the labels and the oracle look like."""

    rows: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    cohort_users: dict[str, int] = field(default_factory=dict)
    cohort_churn: dict[str, float] = field(default_factory=dict)
    label_mismatches: int = 0


class _CsvSink:
    """Appends frames to one CSV, with the header once and no quoting (as the real files)."""

    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self.path, self.columns, self.rows = path, columns, 0
        self._writer: pacsv.CSVWriter | None = None

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame[list(self.columns)], preserve_index=False)
        if self._writer is None:
            options = pacsv.WriteOptions(quoting_style="none", quoting_header="none")
            self._writer = pacsv.CSVWriter(self.path, table.schema, write_options=options)
        self._writer.write_table(table)
        self.rows += len(frame)

    def close(self) -> None:
        if self._writer is None:  # no rows at all: still a valid file with its header
            self.path.write_text(",".join(self.columns) + "\n")
        else:
            self._writer.close()


def _chunk_sizes(config: GeneratorConfig) -> Iterator[tuple[int, int]]:
    done = 0
    for index in range(0, config.users, config.chunk_users):
        size = min(config.chunk_users, config.users - done)
        done += size
        yield index // config.chunk_users, size


def generate(config: GeneratorConfig, raw_dir: Path, oracle_dir: Path) -> Summary:
    """Write the dataset; ``raw_dir`` gets the KKBox files, ``oracle_dir`` the answers."""
    staging = {
        raw_dir: raw_dir.with_name(f".{raw_dir.name}.partial"),
        oracle_dir: oracle_dir.with_name(f".{oracle_dir.name}.partial"),
    }
    for folder in staging.values():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    raw, answers = staging[raw_dir], staging[oracle_dir]
    sinks = {name: _CsvSink(raw / name, columns) for name, columns in RAW_FILES.items()}
    sinks[ORACLE_FILE] = _CsvSink(
        answers / ORACLE_FILE, ("cohort", "msno", "churn_probability", "is_churn")
    )
    sinks[ORACLE_TERMS_FILE] = _CsvSink(answers / ORACLE_TERMS_FILE, ("cohort", "msno", *WEIGHTS))
    sinks[FUTURE_FILE] = _CsvSink(answers / FUTURE_FILE, RAW_FILES["transactions.csv"])
    for month in further_months(config.months):
        (raw / increment_folder(month)).mkdir(parents=True)
        for name, columns in increment_files(month).items():
            sinks[name] = _CsvSink(raw / name, columns)
    summary = Summary()
    churners: dict[str, int] = {}
    chunks = list(_chunk_sizes(config))
    root = np.random.SeedSequence(config.seed)
    try:
        for index, size in tqdm(chunks, desc="generate", unit="chunk", disable=len(chunks) < 4):
            seed = np.random.SeedSequence([config.seed, index], pool_size=root.pool_size)
            _write_chunk(seed, size, config, sinks, summary, churners)
        for sink in sinks.values():
            sink.close()
    except BaseException:
        for folder in staging.values():
            shutil.rmtree(folder, ignore_errors=True)
        raise
    for name, sink in sinks.items():
        summary.rows[name] = sink.rows
        summary.bytes[name] = sink.path.stat().st_size
    summary.cohort_churn = {c: churners[c] / max(n, 1) for c, n in summary.cohort_users.items()}
    for final, folder in staging.items():
        _swap_in(folder, final)
    return summary


def _write_chunk(
    seed: np.random.SeedSequence,
    size: int,
    config: GeneratorConfig,
    sinks: dict[str, _CsvSink],
    summary: Summary,
    churners: dict[str, int],
) -> None:
    shift_start = month_bounds(config.shift_start)[0]
    chunk = simulate_chunk(
        seed,
        ChunkConfig(size, day(config.log_start), config.shift, shift_start, config.months),
    )
    rng = np.random.default_rng(seed.spawn(1)[0])
    msno = chunk.users.msno
    sinks["members_v3.csv"].write(chunk.members)
    transactions = transactions_files(rng, chunk.transactions, msno)
    for name, frame in transactions.items():
        if name != "future" or chunk.months is None:  # else the future starts later
            sinks[FUTURE_FILE if name == "future" else name].write(frame)
    for name, frame in user_logs_files(rng, chunk.logs, msno).items():
        sinks[name].write(frame)
    everything = pd.concat(transactions.values()).drop_duplicates()
    labels = cohort_labels(everything)
    oracle = chunk.oracle.assign(msno=msno[chunk.oracle["user"].to_numpy()])
    for file_name, cohort in LABEL_FILES.items():
        truth = labels[cohort][["msno", "is_churn"]]
        public = truth if file_name != "sample_submission_v2.csv" else truth.assign(is_churn=0)
        sinks[file_name].write(public)
        _answer(cohort, oracle, truth, sinks, summary, churners)
    if chunk.months is not None:
        published = [transactions["transactions.csv"], transactions["transactions_v2.csv"]]
        april = oracle[oracle["cohort"] == SCORING_COHORT]
        further = (chunk.months, config.months)
        _write_months(seed, further, published, april, sinks, summary, churners)


def increment_folder(month: str) -> str:
    """The folder, under the raw folder, of the further month ``month`` (``YYYY-MM``)."""
    return f"increments/{month}"


def increment_files(month: str) -> dict[str, tuple[str, ...]]:
    """The files of the increment of ``month`` (paths under the raw folder) and their headers:
    its transactions, listening, new members, the next month's cohort to score and, from the
    second increment on, the labels of the previous month's cohort (known only now)."""
    folder, labels = increment_folder(month), RAW_FILES["train.csv"]
    files = {
        f"{folder}/transactions.csv": RAW_FILES["transactions.csv"],
        f"{folder}/user_logs.csv": RAW_FILES["user_logs.csv"],
        f"{folder}/members.csv": RAW_FILES["members_v3.csv"],
        f"{folder}/cohort_{add_months(month, 1)}.csv": labels,
    }
    if month > FIRST_MONTH:
        files[f"{folder}/labels_{add_months(month, -1)}.csv"] = labels
    return files


def _write_months(
    seed: np.random.SeedSequence,
    further: tuple[Months, int],
    published: list[pd.DataFrame],
    april: pd.DataFrame,
    sinks: dict[str, _CsvSink],
    summary: Summary,
    churners: dict[str, int],
) -> None:
    """Answer the further cohorts and write the increments; the hidden future now starts after
    the last of them. ``published`` are the base files' transactions, ``april`` the oracle's
    April decisions (their labels need the further months' rows)."""
    months, count = further
    rows, date = file_rows(months.transactions, months.msno), months.transactions["date"].to_numpy()
    sinks[FUTURE_FILE].write(rows[date >= month_bounds(further_cohorts(count)[-1])[0]])
    history = pd.concat([*published, rows[date >= FILES_END]]).drop_duplicates()
    labels = {c: churn_labels(history, c) for c in [SCORING_COHORT, *further_cohorts(count)]}
    summary.label_mismatches += _mismatches(april, labels[SCORING_COHORT])
    oracle = months.oracle.assign(msno=months.msno[months.oracle["user"].to_numpy()])
    for cohort in further_cohorts(count):
        _answer(cohort, oracle, labels[cohort][["msno", "is_churn"]], sinks, summary, churners)
    tx_files = increment_transactions(stream(seed, 13), rows, date, further_months(count))
    log_files = increment_logs(stream(seed, 14), months.logs, months.msno, further_months(count))
    members_day = to_days(months.members["registration_init_time"])
    for month in further_months(count):
        first, following = month_bounds(month)
        folder = increment_folder(month)
        sinks[f"{folder}/transactions.csv"].write(tx_files[month])
        sinks[f"{folder}/user_logs.csv"].write(log_files[month])
        joined = (members_day >= first) & (members_day < following)
        sinks[f"{folder}/members.csv"].write(months.members[joined])
        scored = labels[add_months(month, 1)]
        sinks[f"{folder}/cohort_{add_months(month, 1)}.csv"].write(scored.assign(is_churn=0))
        if month > FIRST_MONTH:
            known = add_months(month, -1)
            sinks[f"{folder}/labels_{known}.csv"].write(labels[known])


def _answer(
    cohort: str,
    oracle: pd.DataFrame,
    truth: pd.DataFrame,
    sinks: dict[str, _CsvSink],
    summary: Summary,
    churners: dict[str, int],
) -> None:
    """Write the oracle's answers for one cohort, with the labels ``truth`` as ``is_churn``, and
    count the decisions the labels do not show."""
    decided = oracle[oracle["cohort"] == cohort].merge(truth, on="msno", how="outer")
    summary.label_mismatches += int((decided["decided_churn"] != decided["is_churn"]).sum())
    answered = decided.assign(cohort=cohort).dropna(subset=["is_churn"])
    sinks[ORACLE_FILE].write(answered)
    sinks[ORACLE_TERMS_FILE].write(answered)
    summary.cohort_users[cohort] = summary.cohort_users.get(cohort, 0) + len(truth)
    churners[cohort] = churners.get(cohort, 0) + int(truth["is_churn"].sum())


def _mismatches(decided: pd.DataFrame, truth: pd.DataFrame) -> int:
    """Users whose oracle decision the labels do not show (or who are in only one of them)."""
    both = decided[["msno", "decided_churn"]].merge(truth, on="msno", how="outer")
    return int((both["decided_churn"] != both["is_churn"]).sum())


def _swap_in(staged: Path, final: Path) -> None:
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    staged.rename(final)
    shutil.rmtree(old, ignore_errors=True)
