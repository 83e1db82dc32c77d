"""Prints where the test suite's time goes: its wall time, and the CPU seconds of each test file.

    python benchmarks/suite.py                 # the whole suite, as `make test` runs it
    python benchmarks/suite.py -- tests/unit   # pytest's arguments after --

Runs pytest in ``--workers`` processes (as ``make test``) with this file as a plugin, which
records for every test the CPU seconds of its worker and of the processes the test started and
waited for (servers started by a fixture count for the test that stopped them). On a machine
whose cores are all busy, more test processes cannot make the suite faster: the total CPU
seconds divided by the cores is the floor.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from churn_transform.synthetic.simulate import usable_cores

ROOT = Path(__file__).resolve().parents[1]
_RECORDS = "KKBOX_SUITE_RECORDS"


def _cpu_seconds(*whose: int) -> float:
    """User and system CPU seconds of ``whose`` (this process and its waited-for children)."""
    used = [
        resource.getrusage(who) for who in whose or (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    ]
    return sum(usage.ru_utime + usage.ru_stime for usage in used)


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist's controller passes the plugin's folder on to its workers; a worker, or a
    # single pytest process, keeps it from the processes its tests start
    controller = bool(getattr(config.option, "numprocesses", None))
    if not controller or hasattr(config, "workerinput"):
        os.environ.pop("PYTHONPATH", None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    """The plugin: one line per test (setup, call and teardown) into the records folder."""
    began, cpu = time.perf_counter(), _cpu_seconds()
    yield
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    record = {
        "test": item.nodeid,
        "worker": worker,
        "seconds": time.perf_counter() - began,
        "cpu_seconds": _cpu_seconds() - cpu,
    }
    with (Path(os.environ[_RECORDS]) / f"{worker}.jsonl").open("a") as out:
        out.write(json.dumps(record) + "\n")


def per_file(records: list[dict[str, Any]]) -> list[tuple[str, float, int]]:
    """CPU seconds and tests of each test file, the costliest first."""
    cpu: collections.Counter[str] = collections.Counter()
    tests: collections.Counter[str] = collections.Counter()
    for record in records:
        name = record["test"].split("::")[0]
        cpu[name] += record["cpu_seconds"]
        tests[name] += 1
    return [(name, seconds, tests[name]) for name, seconds in cpu.most_common()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--top", type=int, default=12, help="test files to list")
    parser.add_argument("--records", type=Path, help="also write every test's record (JSONL)")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kkbox-suite-") as folder:
        # the plugin is importable in pytest's processes only: the tests' own children do not
        # see this folder on their path
        env = {**os.environ, _RECORDS: folder, "PYTHONPATH": str(Path(__file__).parent)}
        command = [sys.executable, "-m", "pytest", "-p", "suite", "-q", "--durations=0"]
        if args.workers > 1:
            command += ["-n", str(args.workers), "--dist", "worksteal"]
        began = time.perf_counter()
        before = _cpu_seconds(resource.RUSAGE_CHILDREN)
        done = subprocess.run([*command, *args.pytest_args], cwd=ROOT, env=env)
        seconds = time.perf_counter() - began
        cpu = _cpu_seconds(resource.RUSAGE_CHILDREN) - before
        records = [
            json.loads(line) for path in Path(folder).glob("*.jsonl") for line in path.open()
        ]
    if args.records:
        args.records.write_text("".join(json.dumps(record) + "\n" for record in records))
    cores = usable_cores()
    files = per_file(records)
    print(f"\npytest exit {done.returncode}, {len(records)} tests in {seconds:.0f} s")
    print(f"CPU seconds: {cpu:.0f} in all, {sum(r['cpu_seconds'] for r in records):.0f} in tests")
    print(f"cores busy: {cpu / (seconds * cores):.0%} of {cores}")
    print("\n| test file | tests | CPU s |\n|---|---|---|")
    for name, seconds_used, tests in files[: args.top]:
        print(f"| {name} | {tests} | {seconds_used:.0f} |")
    rest = files[args.top :]
    if rest:
        print(f"| the other {len(rest)} files | {sum(t for *_, t in rest)} "
              f"| {sum(s for _, s, _ in rest):.0f} |")  # fmt: skip
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()
