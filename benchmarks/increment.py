"""Times ingesting one month's increment against ingesting everything at once.

    python benchmarks/increment.py --raw /tmp/kkbox-1m/raw     # existing files
    python benchmarks/increment.py --users 1000000             # generate first (about 6 min)

March 2017 (``transactions_v2.csv`` and ``user_logs_v2.csv``, as the real v2 files are) is cut
out of the raw folder as an increment: the base folder has the eight files with both v2 files
header-only, and ``increments/2017-03/`` holds March's rows (hard links: nothing is copied).
Three ingests, each in a lake of its own: the whole folder at once (timed), the base alone
(not timed), then the same base lake again with March landed (timed). The increment's ingest
writes one layer of March's rows on the base; the target of issue 15 is at most 15% of the whole
ingest's time. Wall and CPU seconds of this process (the Dask threads) are printed: on a shared
machine the CPU figure is the steadier one.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dask

from churn_transform.etl.ingest import ingest
from churn_transform.lake import Lake
from churn_transform.schema import RAW_FILES

MONTH = "2017-03"
CUT = {"transactions_v2.csv": "transactions.csv", "user_logs_v2.csv": "user_logs.csv"}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(lake: Lake, raw: Path) -> tuple[float, float, str]:
    wall, cpu = time.perf_counter(), _cpu()
    with dask.config.set(scheduler="threads"):
        version = ingest(lake, str(raw), {}).version
    return time.perf_counter() - wall, _cpu() - cpu, version


def _base(whole: Path, base: Path) -> Path:
    """``base``: the eight files with March cut out (v2 files header-only); March's folder."""
    base.mkdir(parents=True)
    for name in RAW_FILES:
        if name in CUT:
            with open(whole / name, "rb") as source:
                (base / name).write_bytes(source.readline())
        else:
            os.link(whole / name, base / name)
    month = base.parent / "march"
    month.mkdir()
    for name, target in CUT.items():
        os.link(whole / name, month / target)
    return month


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--raw", type=Path, help="a folder with the eight KKBox files")
    source.add_argument("--users", type=int, help="generate this many users first")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: tmp)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-increment-", dir=args.work))
    try:
        whole = args.raw
        if whole is None:
            whole = work / "generated" / "raw"
            generate = [sys.executable, "benchmarks/generate.py", "--users", str(args.users)]
            subprocess.run([*generate, "--out", str(work / "generated")], check=True)
        base = work / "base" / "raw"
        month = _base(whole, base)
        full_wall, full_cpu, _ = _timed(Lake(str(work / "whole-lake")), whole)
        lake = Lake(str(work / "lake"))
        _timed(lake, base)
        (base / "increments").mkdir()
        shutil.move(str(month), base / "increments" / MONTH)
        inc_wall, inc_cpu, version = _timed(lake, base)
        size = sum(f.stat().st_size for f in (base / "increments" / MONTH).iterdir())
        total = sum((whole / name).stat().st_size for name in RAW_FILES)
        print(
            f"raw folder {whole}: {total / 2**20:,.0f} MB; March's increment {size / 2**20:,.0f} MB"
        )
        print("| ingest | wall s | CPU s | wall share of whole |")
        print("|---|---|---|---|")
        print(f"| whole folder at once | {full_wall:.1f} | {full_cpu:.1f} | 100% |")
        share = inc_wall / full_wall
        print(f"| March on the base ({version}) | {inc_wall:.1f} | {inc_cpu:.1f} | {share:.1%} |")
        print(f"target (issue 15): at most 15% -> {'met' if share <= 0.15 else 'NOT met'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
