"""Prints the synthetic generator's throughput and peak memory at a size given on the command line.

    python benchmarks/generate.py --users 1000000 --out /tmp/kkbox-1m
    python benchmarks/generate.py --users 300000 --compare     # one process, then every core

Each run is measured in a fresh process of its own, so one run's peak memory does not hide the
next one's. CPU seconds are those of that process and its workers: on a machine shared with
other jobs, they tell the work done from the time waited for a core. Peak memory is the
maximum resident set size of that process (which plays the chunks itself with one process, and
only appends their rows with several) and of the largest of its worker processes; the whole
run's peak is at most the first plus the second times the number of processes. ``--compare``
runs with one process, then with ``--processes``, and prints the speed-up in rows/s.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from churn_transform.synthetic import GeneratorConfig, generate
from churn_transform.synthetic.simulate import usable_cores


@dataclass(frozen=True)
class Measurement:
    processes: int
    seconds: float
    rows: int
    bytes: int
    log_bytes: int
    cpu_seconds: float
    peak_mib: float
    worker_peak_mib: float
    load: tuple[float, float]
    label_mismatches: int


def _measure(config: GeneratorConfig, out: Path) -> Measurement:
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    summary = generate(config, out / "raw", out / "oracle")
    seconds = time.perf_counter() - began
    logs = summary.bytes["user_logs.csv"] + summary.bytes["user_logs_v2.csv"]
    used = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return Measurement(
        processes=min(config.processes or usable_cores(), -(-config.users // config.chunk_users)),
        seconds=seconds,
        rows=sum(summary.rows.values()),
        bytes=sum(summary.bytes.values()),
        log_bytes=logs,
        cpu_seconds=sum(usage.ru_utime + usage.ru_stime for usage in used),
        peak_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
        worker_peak_mib=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        load=(load_before, os.getloadavg()[0]),
        label_mismatches=summary.label_mismatches,
    )


def _in_a_fresh_process(config: GeneratorConfig, out: Path) -> Measurement:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as runner:
        return runner.submit(_measure, config, out).result()


def _print(runs: list[Measurement], config: GeneratorConfig, out: Path) -> None:
    def line(label: str, cells: list[str]) -> None:
        print(f"{label:<16} " + "".join(f"{cell:>14}" for cell in cells))

    line("processes", [f"{run.processes}" for run in runs])
    line("users", [f"{config.users:,}" for _ in runs])
    line("chunk users", [f"{config.chunk_users:,}" for _ in runs])
    line("further months", [f"{config.months}" for _ in runs])
    line("seconds", [f"{run.seconds:.1f}" for run in runs])
    line("CPU seconds", [f"{run.cpu_seconds:.1f}" for run in runs])
    line("rows written", [f"{run.rows:,}" for run in runs])
    line("bytes written", [f"{run.bytes / 1e9:.2f}G" for run in runs])
    line("user_logs bytes", [f"{run.log_bytes / 1e9:.2f}G" for run in runs])
    line("rows/s", [f"{run.rows / run.seconds:,.0f}" for run in runs])
    # What a run costs whatever else the machine does: the figure to compare between commits.
    line("rows/CPU s", [f"{run.rows / run.cpu_seconds:,.0f}" for run in runs])
    line("MB/s", [f"{run.bytes / 1e6 / run.seconds:.1f}" for run in runs])
    line("peak RSS", [f"{run.peak_mib:.0f}M" for run in runs])
    line("worker peak RSS", [f"{run.worker_peak_mib:.0f}M" for run in runs])
    line("load average", [f"{run.load[0]:.1f}-{run.load[1]:.1f}" for run in runs])
    line("label mismatches", [f"{run.label_mismatches:,}" for run in runs])
    if len(runs) == 2:
        speed_up = (runs[1].rows / runs[1].seconds) / (runs[0].rows / runs[0].seconds)
        print(f"{'speed-up':<16} {speed_up:>27.2f}x")
    print(f"output           {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--chunk-users", type=int, default=GeneratorConfig.chunk_users)
    parser.add_argument("--log-start", default=GeneratorConfig.log_start)
    parser.add_argument("--months", type=int, default=GeneratorConfig.months)
    parser.add_argument(
        "--processes",
        type=int,
        help=f"0: every core; default {GeneratorConfig.processes}, or every core with --compare",
    )
    parser.add_argument("--compare", action="store_true", help="one process first, then these")
    parser.add_argument("--out", type=Path, help="folder to write into (default: a temp folder)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="kkbox-bench-"))
    config = GeneratorConfig(
        users=args.users,
        seed=args.seed,
        chunk_users=args.chunk_users,
        log_start=args.log_start,
        months=args.months,
        processes=(
            args.processes
            if args.processes is not None
            else 0
            if args.compare
            else GeneratorConfig.processes
        ),
    )
    configs = [replace(config, processes=1), config] if args.compare else [config]
    # The same folder each time: the second run swaps its files in over the first's.
    _print([_in_a_fresh_process(each, out) for each in configs], config, out)


if __name__ == "__main__":
    main()
