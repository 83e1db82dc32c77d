"""The bronze copy that bypasses the page cache must still copy every byte."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import churn_transform.etl.bronze as bronze_module
from churn_transform.etl.bronze import copy_uncached

CHUNK = 64 * 2**10


@pytest.mark.parametrize(
    "size", [0, 1, 4095, 4096, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 4096, 3 * CHUNK + 4097]
)
def test_uncached_copy_is_byte_identical_whatever_the_tail(
    size: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bronze_module, "_DIRECT_CHUNK", CHUNK)
    source, target = tmp_path / "raw.csv", tmp_path / "bronze.csv"
    data = os.urandom(size)
    source.write_bytes(data)
    target.write_bytes(b"an older, longer file that must not survive in part" * 5000)
    copy_uncached(str(source), str(target))
    assert target.read_bytes() == data


def test_uncached_copy_falls_back_where_direct_io_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def refuses_direct(path: str, flags: int, *args: object) -> int:
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(22, "Invalid argument")  # what tmpfs answers
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", refuses_direct)
    source, target = tmp_path / "raw.csv", tmp_path / "bronze.csv"
    source.write_bytes(b"msno,date\n" * 1000)
    copy_uncached(str(source), str(target))
    assert target.read_bytes() == source.read_bytes()
