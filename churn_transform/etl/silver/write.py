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
    table and then deletes the table's block files: the tables' tasks fill the cores together,
    instead of each table waiting for the one before. Put the biggest table first in ``outs``:
    the tasks are named so that the scatter ends on its blocks (all of one size, parsed on every
    core: no long task runs alone at the end) and its block files, the most to delete, go while
    the second table's buckets are compacted (``_compact_tasks``).
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
    for table, out in reversed(outs.items()):  # the smallest first: see build_silver_tables
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
    """One ``compact_bucket`` task per bucket of every table, with the table it is of, and the
    tasks that delete the tables' block files once their buckets are written.

    Dask runs such a graph one deletion at a time (the buckets it waits for, then itself),
    taking the deletions by key, the greatest first, and the buckets by key. There are two: the
    first waits for every table of ``outs`` but the second, their buckets interleaved (bucket 0
    of each, then bucket 1...: the biggest table's compactions, mostly outside the GIL, run
    beside the small tables' pandas and Pandera work, which would otherwise come last and on
    every core at once); the second table is compacted last, while the first group's block files
    (the most) are deleted. ``tests/unit/test_silver_order.py`` asks ``dask.order``.
    """
    tables = list(outs)
    groups = [[t for i, t in enumerate(tables) if i != 1], tables[1:2]]
    compacted: list[tuple[str, Delayed]] = []
    removed = []
    for g, group in enumerate(group for group in groups if group):
        tasks = []
        for b in range(buckets):
            for table in group:
                key = f"compact-{token}-{10**6 - len(compacted):07d}"
                parts = [(path, *at[b]) for path, at in segments[table] if at[b][1]]
                task = dask.delayed(compact_bucket)(
                    table, b, parts, outs[table], options, check, dask_key_name=key
                )
                compacted.append((table, task))
                tasks.append(task)
        key = f"remove-{token}-{10**6 - g:07d}"
        folders = [outs[table] for table in group]
        removed.append(dask.delayed(_remove_scatter)(folders, options, tasks, dask_key_name=key))
    return compacted, removed


def _remove_scatter(outs: list[str], options: dict[str, object], _after: list[object]) -> None:
    """Delete the block files of the tables written to ``outs`` (``_after``: their compactions,
    done)."""
    for out in outs:
        fs, root = url_to_fs(out, **options)
        fs.rm(posixpath.join(root, SCATTER_FOLDER), recursive=True)
