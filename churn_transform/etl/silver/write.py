"""Writing silver: one Dask computation scatters the blocks of every table's CSVs
(``scatter``), one compacts every bucket of every table (``compaction``).
"""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic

import dask
from dask.base import tokenize
from dask.bytes import read_bytes
from dask.delayed import Delayed
from fsspec.core import url_to_fs

from churn_transform.etl.silver.compaction import Checked, Compacted, PartCheck, compact_bucket
from churn_transform.etl.silver.scatter import SCATTER_FOLDER, Segments, scatter_block
from churn_transform.etl.silver.tables import SOURCES


@dataclass(frozen=True)
class WrittenTables(Generic[Checked]):
    """What ``build_silver_tables`` wrote: each table's counts (``rows_in``, ``rows_out``, the
    cleaning's), and what the part check said of each part file it wrote."""

    counts: dict[str, dict[str, int]]
    checked: dict[str, list[Checked]]


def build_silver_tables(
    outs: dict[str, str],
    source: str | Mapping[str, str],
    source_options: dict[str, object],
    buckets: int,
    options: dict[str, object],
    blocksize: str = "32MB",
    files: Mapping[str, tuple[str, ...]] = SOURCES,
    check: PartCheck[Checked] | None = None,
) -> WrittenTables[Checked]:
    """Both passes for the tables of ``outs`` (table -> version folder), from CSVs under
    ``source`` (a folder, or raw file name -> URL, as a deduplicated bronze copy has them);
    ``files``: the raw file names of each table (a monthly increment has its own); ``check``:
    asked of every part file as it is written (``compaction.compact_bucket``).

    One Dask computation scatters the blocks of every table, one compacts every bucket of every
    table and then deletes the table's block files: the small tables' tasks fill the cores the
    big one leaves idle at its end, instead of each table waiting for the one before. Tasks are
    named so that the in-process scheduler, which runs equal-priority tasks last key first,
    starts with the table first in ``outs`` (put the biggest first).
    """
    if isinstance(source, str):
        source = {name: f"{source}/{name}" for table in outs for name in files[table]}
    token = tokenize(outs, dict(source), buckets)
    scattered = _scatter_tasks(
        outs, files, source, source_options, blocksize, buckets, options, token
    )
    counts: dict[str, Counter[str]] = {table: Counter() for table in outs}
    segments: dict[str, list[Segments]] = {table: [] for table in outs}
    for (table, _), (rows_in, found) in zip(
        scattered, dask.compute(*[t for _, t in scattered]), strict=True
    ):
        counts[table]["rows_in"] += rows_in
        segments[table].append(found)
    compacted, removed = _compact_tasks(outs, segments, buckets, options, token, check)
    done: tuple[Compacted[Checked], ...] = dask.compute(*[t for _, t in compacted], *removed)
    checked: dict[str, list[Checked]] = {table: [] for table in outs}
    for (table, _), bucket in zip(compacted, done, strict=False):
        counts[table].update(bucket.counts)
        if bucket.checked is not None:
            checked[table].append(bucket.checked)
    return WrittenTables({table: dict(found) for table, found in counts.items()}, checked)


def _scatter_tasks(
    outs: dict[str, str],
    files: Mapping[str, tuple[str, ...]],
    source: Mapping[str, str],
    source_options: dict[str, object],
    blocksize: str,
    buckets: int,
    options: dict[str, object],
    token: str,
) -> list[tuple[str, Delayed]]:
    """One ``scatter_block`` task per block of every table's CSVs, with the table it is of."""
    scattered: list[tuple[str, Delayed]] = []
    for table, out in outs.items():
        blocks = [
            (name, i == 0, block)
            for name in files[table]
            for i, block in enumerate(_blocks(source[name], blocksize, source_options))
        ]
        for index, (name, first, block) in enumerate(blocks):
            key = f"scatter-{token}-{10**6 - len(scattered):07d}"
            task = dask.delayed(scatter_block)(
                block, name, first, table, index, out, buckets, options, dask_key_name=key
            )
            scattered.append((table, task))
    return scattered


def _blocks(url: str, blocksize: str, options: dict[str, object]) -> list[Delayed]:
    """The blocks of one CSV, cut at line ends, as delayed reads."""
    return read_bytes(url, delimiter=b"\n", blocksize=blocksize, sample=False, **options)[1][0]


def _compact_tasks(
    outs: dict[str, str],
    segments: dict[str, list[Segments]],
    buckets: int,
    options: dict[str, object],
    token: str,
    check: PartCheck[Checked] | None,
) -> tuple[list[tuple[str, Delayed]], list[Delayed]]:
    """One ``compact_bucket`` task per bucket of every table, with the table it is of, and one
    task per table that deletes its block files once its buckets are written."""
    compacted, removed = [], []
    for n, (table, out) in enumerate(outs.items()):
        tasks = []
        for b in range(buckets):
            key = f"compact-{token}-{10**6 - n * buckets - b:07d}"
            parts = [(path, *at[b]) for path, at in segments[table] if at[b][1]]
            tasks.append(
                dask.delayed(compact_bucket)(
                    table, b, parts, out, options, check, dask_key_name=key
                )
            )
        compacted += [(table, task) for task in tasks]
        # a table's block files go as soon as its last bucket is written, while the cores
        # still compact the next table (deleting gigabytes is not free)
        removed.append(dask.delayed(_remove_scatter)(out, options, tasks))
    return compacted, removed


def _remove_scatter(out: str, options: dict[str, object], _after: list[object]) -> None:
    """Delete a table's block files (``_after``: its compactions, done)."""
    fs, root = url_to_fs(out, **options)
    fs.rm(posixpath.join(root, SCATTER_FOLDER), recursive=True)
