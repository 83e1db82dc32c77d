"""The order Dask runs silver's tasks in: the scatter ends on the biggest table's blocks, the
compaction interleaves the biggest table's buckets with the small tables' and deletes their
block files while the second table is compacted (``write._compact_tasks``). Asked of
``dask.order``, which the in-process scheduler follows, so that a Dask release ordering
otherwise is noticed."""

from __future__ import annotations

from pathlib import Path

from dask.base import collections_to_expr
from dask.delayed import Delayed
from dask.order import order

from churn_transform.etl.silver.write import _compact_tasks, _scatter_tasks

OUTS = {"user_logs": "u", "transactions": "t", "members": "m", "labels": "l"}
FILES = {table: (f"{table}.csv",) for table in OUTS}
BUCKETS = 4


def _ranks(tasks: list[Delayed]) -> list[int]:
    """Each task's place in the order Dask runs the graph of ``tasks`` in."""
    graph = dict(collections_to_expr(tasks).__dask_graph__())
    priority = order(graph)
    ranked = sorted(graph, key=lambda key: priority[key])
    return [ranked.index(task.key) for task in tasks]


def test_the_scatter_ends_on_the_biggest_tables_blocks(tmp_path: Path) -> None:
    source = {}
    for (name,) in FILES.values():
        (tmp_path / name).write_text("a,b\n" + "1,2\n" * 50)
        source[name] = str(tmp_path / name)
    scattered = _scatter_tasks(OUTS, FILES, source, {}, "64B", BUCKETS, {}, "t")
    tasks = [task for _, task in scattered]
    ranks = dict(zip(map(id, tasks), _ranks(tasks), strict=True))
    last = {table: max(ranks[id(t)] for name, t in scattered if name == table) for table in OUTS}
    assert sorted(OUTS, key=last.get) == list(reversed(OUTS))  # the biggest last
    blocks = [ranks[id(t)] for name, t in scattered if name == "user_logs"]
    assert len(blocks) > 1 and blocks == sorted(blocks)  # in the file's order


def test_the_compaction_interleaves_the_tables_and_ends_with_the_second() -> None:
    segments = {table: [(f"{table}/_scatter/part-0.arrows", [(0, 1)] * BUCKETS)] for table in OUTS}
    compacted, removed = _compact_tasks(OUTS, segments, BUCKETS, {}, "t", None)
    assert len(removed) == 2
    ranks = _ranks([task for _, task in compacted] + removed)
    steps = [(rank, table) for rank, (table, _) in zip(ranks, compacted, strict=False)]
    steps += [(rank, "remove") for rank in ranks[len(compacted) :]]
    first = ["user_logs", "members", "labels"]  # bucket by bucket, then their block files go
    expected = first * BUCKETS + ["remove"] + ["transactions"] * BUCKETS + ["remove"]
    assert [step for _, step in sorted(steps)] == expected
    buckets = [rank for rank, table in steps if table == "labels"]
    assert buckets == sorted(buckets)  # bucket by bucket


def test_a_single_table_is_compacted_then_its_block_files_go() -> None:
    segments = {"members": [("m/_scatter/part-0.arrows", [(0, 1)] * BUCKETS)]}
    compacted, removed = _compact_tasks({"members": "m"}, segments, BUCKETS, {}, "t", None)
    assert len(compacted) == BUCKETS and len(removed) == 1
    ranks = _ranks([task for _, task in compacted] + removed)
    assert ranks == sorted(ranks)
