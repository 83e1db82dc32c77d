"""Prints the synthetic generator's throughput and peak memory at a size given on the command line.

    python benchmarks/generate.py --users 1000000 --out /tmp/kkbox-1m

Peak memory is the maximum resident set size of this process (the generator runs in it).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from churn_transform.synthetic import GeneratorConfig, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--chunk-users", type=int, default=GeneratorConfig.chunk_users)
    parser.add_argument("--log-start", default=GeneratorConfig.log_start)
    parser.add_argument("--months", type=int, default=GeneratorConfig.months)
    parser.add_argument("--out", type=Path, help="folder to write into (default: a temp folder)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="kkbox-bench-"))
    config = GeneratorConfig(
        users=args.users,
        seed=args.seed,
        chunk_users=args.chunk_users,
        log_start=args.log_start,
        months=args.months,
    )
    began = time.perf_counter()
    summary = generate(config, out / "raw", out / "oracle")
    seconds = time.perf_counter() - began
    rows, size = sum(summary.rows.values()), sum(summary.bytes.values())
    logs = summary.bytes["user_logs.csv"] + summary.bytes["user_logs_v2.csv"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"users            {args.users:>14,}")
    print(f"chunk users      {args.chunk_users:>14,}")
    print(f"further months   {args.months:>14,}")
    print(f"seconds          {seconds:>14.1f}")
    print(f"rows written     {rows:>14,}")
    print(f"bytes written    {size / 1e9:>13.2f}G")
    print(f"user_logs bytes  {logs / 1e9:>13.2f}G")
    print(f"rows/s           {rows / seconds:>14,.0f}")
    print(f"MB/s             {size / 1e6 / seconds:>14.1f}")
    print(f"peak RSS         {peak:>13.0f}M")
    print(f"label mismatches {summary.label_mismatches:>14,}")
    print(f"output           {out}")


if __name__ == "__main__":
    main()
