"""Chunks played in several processes: the same bytes as in one, in order, memory bounded."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import churn_transform.synthetic.generator as generator_module
from churn_transform.synthetic import GeneratorConfig, generate
from churn_transform.synthetic.simulate import in_order
from tests.generator.conftest import make

#: Five chunks, two further months: every kind of file, and chunks finishing out of order.
CONFIG = {"users": 2400, "chunk_users": 500, "seed": 13, "log_start": "2016-11-01", "months": 2}


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _square(number: int) -> int:
    return number * number


def test_two_processes_write_the_bytes_of_one(tmp_path: Path) -> None:
    one = make(tmp_path / "one", processes=1, **CONFIG)
    two = make(tmp_path / "two", processes=2, **CONFIG)
    written = _digests(one.root)
    assert "raw/increments/2017-05/labels_2017-04.csv" in written
    assert "oracle/oracle_terms.csv" in written
    assert _digests(two.root) == written
    assert two.summary == one.summary


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The digests of ``CONFIG`` without further months, played in one process."""
    small = {**CONFIG, "months": 0}
    return _digests(make(tmp_path_factory.mktemp("one"), processes=1, **small).root)


@pytest.mark.parametrize("kernel_copy", ["missing", "refused"])
def test_rows_spilled_by_workers_and_copied_through_memory_are_the_same_bytes(
    one_process: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_copy: str
) -> None:
    """Where the kernel cannot copy a worker's spilled rows on (no copy_file_range, or a file
    system that refuses it), the main process copies them through memory."""
    if kernel_copy == "missing":
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    else:

        def refuse(*args: object) -> int:
            raise OSError(errno.EXDEV, "Invalid cross-device link")

        monkeypatch.setattr(os, "copy_file_range", refuse, raising=False)
    two = make(tmp_path, processes=2, **{**CONFIG, "months": 0})
    assert _digests(two.root) == one_process
    assert not list((tmp_path / "raw").glob(".chunk-*"))


def test_results_come_back_in_the_order_of_the_tasks() -> None:
    assert list(in_order(_square, range(20), processes=2)) == [n * n for n in range(20)]
    assert list(in_order(_square, range(5), processes=1)) == [0, 1, 4, 9, 16]


def test_only_a_few_tasks_are_in_flight() -> None:
    drawn = []

    def tasks() -> Iterator[int]:
        for number in range(100):
            drawn.append(number)
            yield number

    results = in_order(_square, tasks(), processes=2)
    assert next(results) == 0
    assert len(drawn) <= 2 * 2 + 1  # two a process, and the one submitted before handing back
    results.close()
    assert len(drawn) <= 2 * 2 + 1


def test_a_failed_write_under_several_processes_leaves_the_previous_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = {**CONFIG, "months": 0}
    make(tmp_path, processes=2, **small)
    before = _digests(tmp_path)
    real = generator_module._append
    calls = {"n": 0}

    def disk_full_on_the_second_chunk(*args: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(generator_module, "_append", disk_full_on_the_second_chunk)
    with pytest.raises(OSError, match="disk full"):
        config = GeneratorConfig(**{**small, "seed": 14, "processes": 2})  # type: ignore[arg-type]
        generate(config, tmp_path / "raw", tmp_path / "oracle")
    assert _digests(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["oracle", "raw"]


@pytest.mark.skipif(sys.platform != "linux", reason="the patch reaches forked workers only")
def test_a_failed_chunk_in_a_worker_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = generator_module.simulate_chunk

    def fails_on_chunk_three(seed: object, config: object) -> object:
        if seed.entropy[1] == 3:  # type: ignore[attr-defined]
            raise OSError("out of memory")
        return real(seed, config)  # type: ignore[arg-type]

    monkeypatch.setattr(generator_module, "simulate_chunk", fails_on_chunk_three)
    with pytest.raises(OSError, match="out of memory"):
        config = GeneratorConfig(**{**CONFIG, "months": 0, "processes": 2})  # type: ignore[arg-type]
        generate(config, tmp_path / "raw", tmp_path / "oracle")
    assert list(tmp_path.iterdir()) == []


def _children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is ``pid``, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(sys.platform != "linux", reason="Linux ends the workers of a killed process")
def test_workers_end_when_the_main_process_is_killed() -> None:
    script = (
        "import time\n"
        "from churn_transform.synthetic.simulate import in_order\n"
        "next(in_order(time.sleep, [600] * 4, processes=2))\n"
    )
    main = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 120
    while len(workers := _children(main.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    main.kill()
    main.wait()
    assert len(workers) == 2
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [pid for pid in workers if _alive(pid)]
    for pid in left:  # not to leave them sleeping when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not left


def test_negative_processes_are_named() -> None:
    with pytest.raises(ValueError, match="processes must be 0"):
        GeneratorConfig(users=10, processes=-1)
