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

from churn_transform.dates import day
from churn_transform.schema import LABEL_FILES, RAW_FILES
from churn_transform.synthetic.oracle import WEIGHTS
from churn_transform.synthetic.simulate import ChunkConfig, cohort_labels, simulate_chunk
from churn_transform.synthetic.writer import transactions_files, user_logs_files

log = logging.getLogger(__name__)

ORACLE_FILE = "oracle.csv"
#: Each cohort user's term of each oracle driver: the true reasons behind the probability.
ORACLE_TERMS_FILE = "oracle_terms.csv"
FUTURE_FILE = "transactions_future.csv"
_LATEST_LOG_START = day("2016-12-01")


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate. ``shift`` in [0, 1] shifts behaviour from March 2017 on."""

    users: int
    seed: int = 42
    chunk_users: int = 10_000
    log_start: str = "2015-01-01"
    shift: float = 0.0

    def __post_init__(self) -> None:
        if self.users < 1:
            raise ValueError(f"users must be at least 1, got {self.users}")
        if self.chunk_users < 1:
            raise ValueError(f"chunk_users must be at least 1, got {self.chunk_users}")
        if not 0.0 <= self.shift <= 1.0:
            raise ValueError(f"shift must lie in [0, 1], got {self.shift}")
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
    chunk = simulate_chunk(seed, ChunkConfig(size, day(config.log_start), config.shift))
    rng = np.random.default_rng(seed.spawn(1)[0])
    msno = chunk.users.msno
    sinks["members_v3.csv"].write(chunk.members)
    transactions = transactions_files(rng, chunk.transactions, msno)
    for name, frame in transactions.items():
        sinks[FUTURE_FILE if name == "future" else name].write(frame)
    for name, frame in user_logs_files(rng, chunk.logs, msno).items():
        sinks[name].write(frame)
    everything = pd.concat(transactions.values()).drop_duplicates()
    labels = cohort_labels(everything)
    oracle = chunk.oracle.assign(msno=msno[chunk.oracle["user"].to_numpy()])
    for file_name, cohort in LABEL_FILES.items():
        truth = labels[cohort][["msno", "is_churn"]]
        decided = oracle[oracle["cohort"] == cohort].merge(truth, on="msno", how="outer")
        summary.label_mismatches += int((decided["decided_churn"] != decided["is_churn"]).sum())
        public = truth if file_name != "sample_submission_v2.csv" else truth.assign(is_churn=0)
        sinks[file_name].write(public)
        answered = decided.assign(cohort=cohort).dropna(subset=["is_churn"])
        sinks[ORACLE_FILE].write(answered)
        sinks[ORACLE_TERMS_FILE].write(answered)
        summary.cohort_users[cohort] = summary.cohort_users.get(cohort, 0) + len(truth)
        churners[cohort] = churners.get(cohort, 0) + int(truth["is_churn"].sum())


def _swap_in(staged: Path, final: Path) -> None:
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    staged.rename(final)
    shutil.rmtree(old, ignore_errors=True)
