"""Cohort statistics: label-file sizes and churn rates, and how the March cohort is covered.

The March cohort (train_v2.csv) is set beside the other files the way the data spec describes
it: its overlap with February's, and the share of its users with a profile, a transaction in
transactions_v2.csv and a March log row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from churn_transform.fidelity.statistic import Statistic

_LABEL_TYPES = {"msno": pa.string(), "is_churn": pa.int64()}
_MARCH = 201703


def read_labels(path: Path) -> pa.Table:
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=_LABEL_TYPES))


def label_statistics(raw_dir: Path) -> list[Statistic]:
    """Rows and churn of each label file, and the later cohorts' sizes beside February's."""
    stats, february = [], None
    for name in ("train.csv", "train_v2.csv", "sample_submission_v2.csv"):
        if not (raw_dir / name).exists():
            continue
        labels = read_labels(raw_dir / name)
        rows = labels.num_rows
        stats.append(Statistic(name, "rows", rows, rows, share=False))
        if name == "train.csv":
            february = rows
        else:
            ratio = rows / february if february else float("nan")
            stats.append(Statistic(name, "size_vs_train", ratio, rows, share=False))
        if name != "sample_submission_v2.csv":
            churn = pc.mean(labels.column("is_churn")).as_py() or 0.0
            stats.append(Statistic(name, "churn", churn, rows))
    return stats


def seen_users(
    cohort: pa.Array, blocks: Iterable[pa.RecordBatch], month: int | None = None
) -> np.ndarray:
    """Which users of ``cohort`` have a row in ``blocks`` (in ``month``, YYYYMM, if given)."""
    seen = np.zeros(len(cohort), dtype=bool)
    for block in blocks:
        msno = block.column("msno")
        if month is not None:
            msno = pc.filter(msno, pc.equal(pc.divide(block.column("date"), 100), month))
        found = pc.unique(pc.filter(msno, pc.is_in(msno, value_set=cohort)))
        if len(found):
            seen |= pc.is_in(cohort, value_set=found).to_numpy(zero_copy_only=False)
    return seen


Reader = Callable[[Path, tuple[str, ...]], Iterable[pa.RecordBatch]]


def coverage_statistics(raw_dir: Path, read: Reader) -> list[Statistic]:
    """The March cohort beside February's and the other files; ``read(path, columns)`` streams."""
    name = "train_v2.csv"
    if not (raw_dir / name).exists():
        return []
    march = read_labels(raw_dir / name)
    cohort, churn = march.column("msno").combine_chunks(), march.column("is_churn").to_numpy()
    stats = _february_overlap(raw_dir, march)
    sources = {
        "with_profile": ("members_v3.csv", ("msno",), None),
        "with_v2_transaction": ("transactions_v2.csv", ("msno",), None),
        "with_march_log": ("user_logs_v2.csv", ("msno", "date"), _MARCH),
    }
    for statistic, (file, columns, month) in sources.items():
        if not (raw_dir / file).exists():
            continue
        seen = seen_users(cohort, read(raw_dir / file, columns), month)
        stats.append(Statistic(name, statistic, float(seen.mean()), len(seen)))
        if statistic == "with_profile":
            stats += [
                Statistic(name, "churn_with_profile", float(churn[seen].mean()), int(seen.sum())),
                Statistic(name, "churn_without_profile", _mean(churn[~seen]), int((~seen).sum())),
            ]
    return stats


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else float("nan")


def _february_overlap(raw_dir: Path, march: pa.Table) -> list[Statistic]:
    """Share of the March cohort also in February's, and of those, with another label."""
    if not (raw_dir / "train.csv").exists():
        return []
    february = read_labels(raw_dir / "train.csv")
    both = march.join(february, "msno", join_type="inner", left_suffix="_mar", right_suffix="_feb")
    changed = pc.sum(pc.not_equal(both["is_churn_mar"], both["is_churn_feb"])).as_py() or 0
    rows = march.num_rows
    return [
        Statistic("train_v2.csv", "in_train", both.num_rows / max(rows, 1), rows),
        Statistic("train_v2.csv", "label_changed", changed / max(both.num_rows, 1), both.num_rows),
    ]
