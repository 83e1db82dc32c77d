"""Determinism, the shift knob, configuration errors and the keep-the-previous-output guarantee."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import churn_transform.synthetic.generator as generator_module
from churn_transform.synthetic import GeneratorConfig, generate
from tests.generator.conftest import Dataset, make

SMALL = {"users": 1500, "log_start": "2016-11-01", "chunk_users": 600}


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def seed_3(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """``make(seed=3, **SMALL)``, generated once for the tests that only read it."""
    return make(tmp_path_factory.mktemp("seed-3"), seed=3, **SMALL)


def test_same_seed_same_bytes_other_seed_other_bytes(seed_3: Dataset, tmp_path: Path) -> None:
    first = seed_3
    again = make(tmp_path / "b", seed=3, **SMALL)
    other = make(tmp_path / "c", seed=4, **SMALL)
    assert _digests(first.root / "raw") == _digests(again.root / "raw")
    assert _digests(first.root / "oracle") == _digests(again.root / "oracle")
    assert (
        _digests(first.root / "raw")["user_logs.csv"]
        != _digests(other.root / "raw")["user_logs.csv"]
    )


#: SHA-256 of the files of ``make(seed=3, **SMALL)`` as written by 920c7bb, before the further
#: months and ``shift_start`` came in: the base must not move, so the real files still drop in.
BASE_RAW = {
    "members_v3.csv": "5158fc3e37c8371e0b8aa75b8ea45d7d69401d4f84fc02020256114cf67478fc",
    "sample_submission_v2.csv": "f2be713f1beec934abf4140b40114ade865743dbc0b8a05939f210afe6e368f6",
    "train.csv": "f175fcab1b52632da85a47a02b99266c863ec44b684c5a84564fc37ddce54991",
    "train_v2.csv": "26de36c639628f572c63e141bd898f6e1b4d4bed6cab61d11e366de70a601af5",
    "transactions.csv": "26f5d71992073617dd3a9b3c1aa595666494427b84f0630e5f03fbd63e796117",
    "transactions_v2.csv": "06492da3e0af5332ef2ed893bf51850cb303fc90c1c39df1d89d7af44607f3e1",
    "user_logs.csv": "c3cfa9878b1e2644ba572639d16b3c2d3579a911cb1bc3674b6693ea29911d05",
    "user_logs_v2.csv": "653ad2497c1fd85e3a33f90cd45260b922dc7083669dad954ac4607f7f990c77",
}
BASE_ORACLE = {
    "oracle.csv": "916cd9d8ca2ad9b6ac0f1f34eac2c6fbbe972e6c1e47a940ded102262368a1b0",
    "oracle_terms.csv": "a24922bf23f6cb814ac91f0fbd13d215c7f493e92175cb2c3b7a42185b863ce2",
    "transactions_future.csv": "46dc91810b649c73090a583326785427744c32fca1b773036632c9d38068fe6e",
}


def test_the_base_is_byte_for_byte_what_it_was_before_the_further_months(seed_3: Dataset) -> None:
    data = seed_3
    assert _digests(data.root / "raw") == BASE_RAW
    assert _digests(data.root / "oracle") == BASE_ORACLE


def test_chunks_stream_the_same_users_count(seed_3: Dataset) -> None:
    members = seed_3.read("members_v3.csv")
    assert members["msno"].is_unique
    assert 0.85 * SMALL["users"] < len(members) <= SMALL["users"]  # no-profile users are left out


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("users", 0, "users must be at least 1"),
        ("shift", 1.5, "shift must lie in"),
        ("log_start", "2017-01-15", "log_start must be 2016-12-01 or earlier"),
        ("chunk_users", 0, "chunk_users"),
        ("months", -1, "months must be 0 or more"),
        ("shift_start", "2017-13", "shift_start must be a month like 2017-03"),
        ("shift_start", "March", "shift_start must be a month like 2017-03"),
    ],
)
def test_bad_configuration_is_named(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GeneratorConfig(**{"users": 10, field: value})  # type: ignore[arg-type]


def test_a_failed_run_leaves_the_previous_dataset_intact(
    seed_3: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for folder in ("raw", "oracle"):  # a previous dataset, of its own
        shutil.copytree(seed_3.root / folder, tmp_path / folder)
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
        # One process counts the calls: with three or more, each chunk would be a first call.
        config = GeneratorConfig(seed=2, processes=1, **SMALL)
        generate(config, tmp_path / "raw", tmp_path / "oracle")
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
    for name in ("train.csv", "transactions.csv"):
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


def test_shift_turns_the_truth_among_auto_renew_off_subscribers_only(
    shift_pair: tuple[Dataset, Dataset],
) -> None:
    """March's decisions (at the shift's first cutoff) read the same past in both datasets:
    the probabilities and listening terms differ exactly where the truth turned, for
    auto-renew-off subscribers."""

    def march(d: Dataset) -> pd.DataFrame:
        terms = pd.read_csv(d.root / "oracle" / "oracle_terms.csv")
        oracle = d.oracle()[["cohort", "msno", "churn_probability"]]
        both = terms.merge(oracle, on=["cohort", "msno"])
        return both[both["cohort"] == "2017-03"].set_index("msno").sort_index()

    calm, shifted = march(shift_pair[0]), march(shift_pair[1])
    assert calm.index.equals(shifted.index)
    off = calm["no_auto_renew"] > 0
    assert off.sum() > 50
    changed = ~np.isclose(calm["churn_probability"], shifted["churn_probability"])
    assert not changed[~off].any()
    assert changed[off].mean() > 0.9
    listening = ["trend", "silent_days", "active_30"]
    pd.testing.assert_frame_equal(calm.loc[~off, listening], shifted.loc[~off, listening])
    assert not np.isclose(calm.loc[off, listening], shifted.loc[off, listening]).all()
