"""Determinism, the shift knob, configuration errors and the keep-the-previous-output guarantee."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

import churn_transform.synthetic.generator as generator_module
from churn_transform.synthetic import GeneratorConfig, generate
from tests.generator.conftest import Dataset, make

SMALL = {"users": 1500, "log_start": "2016-11-01", "chunk_users": 600}


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    first = make(tmp_path / "a", seed=3, **SMALL)
    again = make(tmp_path / "b", seed=3, **SMALL)
    other = make(tmp_path / "c", seed=4, **SMALL)
    assert _digests(first.root / "raw") == _digests(again.root / "raw")
    assert _digests(first.root / "oracle") == _digests(again.root / "oracle")
    assert (
        _digests(first.root / "raw")["user_logs.csv"]
        != _digests(other.root / "raw")["user_logs.csv"]
    )


def test_chunks_stream_the_same_users_count(tmp_path: Path) -> None:
    data = make(tmp_path, seed=5, **SMALL)
    members = data.read("members_v3.csv")
    assert members["msno"].is_unique
    assert 0.85 * SMALL["users"] < len(members) <= SMALL["users"]  # no-profile users are left out


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("users", 0, "users must be at least 1"),
        ("shift", 1.5, "shift must lie in"),
        ("log_start", "2017-01-15", "log_start must be 2016-12-01 or earlier"),
        ("chunk_users", 0, "chunk_users"),
    ],
)
def test_bad_configuration_is_named(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GeneratorConfig(**{"users": 10, field: value})  # type: ignore[arg-type]


def test_a_failed_run_leaves_the_previous_dataset_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make(tmp_path, seed=1, **SMALL)
    before = _digests(tmp_path / "raw")
    real = generator_module.simulate_chunk
    calls = {"n": 0}

    def fails_on_the_second_chunk(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(generator_module, "simulate_chunk", fails_on_the_second_chunk)
    with pytest.raises(OSError, match="disk full"):
        generate(GeneratorConfig(seed=2, **SMALL), tmp_path / "raw", tmp_path / "oracle")
    assert _digests(tmp_path / "raw") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["oracle", "raw"]


@pytest.fixture(scope="module")
def shift_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Dataset, Dataset]:
    root = tmp_path_factory.mktemp("shift")
    config = {"users": 4000, "seed": 11, "log_start": "2016-11-01"}
    return make(root / "calm", shift=0.0, **config), make(root / "shifted", shift=1.0, **config)


def test_shift_changes_march_behaviour(shift_pair: tuple[Dataset, Dataset]) -> None:
    calm, shifted = shift_pair
    calm_logs, shifted_logs = calm.read("user_logs_v2.csv"), shifted.read("user_logs_v2.csv")
    assert len(shifted_logs) < 0.75 * len(calm_logs)  # fewer listening days
    assert shifted_logs["total_secs"].median() < 0.8 * calm_logs["total_secs"].median()
    calm_tx, shifted_tx = calm.read("transactions_v2.csv"), shifted.read("transactions_v2.csv")
    march = shifted_tx[shifted_tx["transaction_date"] >= 20170301]
    assert calm_tx["payment_method_id"].eq(42).sum() == 0
    assert march["payment_method_id"].eq(42).mean() > 0.25  # a new payment method
    assert march["is_auto_renew"].mean() < calm_tx["is_auto_renew"].mean() - 0.1
    discount = (march["actual_amount_paid"] < march["plan_list_price"]).mean()
    assert discount > (calm_tx["actual_amount_paid"] < calm_tx["plan_list_price"]).mean() + 0.05


def test_shift_leaves_the_past_alone(shift_pair: tuple[Dataset, Dataset]) -> None:
    calm, shifted = shift_pair
    for name in ("train.csv", "train_v2.csv", "transactions.csv"):
        pd.testing.assert_frame_equal(
            calm.read(name).sort_values(list(calm.read(name).columns), ignore_index=True),
            shifted.read(name).sort_values(list(shifted.read(name).columns), ignore_index=True),
        )
    columns = ["msno", "date", "num_25", "num_100", "num_unq"]
    calm_logs = calm.read("user_logs.csv")[columns].sort_values(["msno", "date"], ignore_index=True)
    shifted_logs = shifted.read("user_logs.csv")[columns].sort_values(
        ["msno", "date"], ignore_index=True
    )
    pd.testing.assert_frame_equal(calm_logs, shifted_logs)
