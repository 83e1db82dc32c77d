"""The written files look like the real KKBox files: names, headers, types, quirks, increments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_transform.schema import RAW_FILES
from tests.generator.conftest import Dataset

ALL_FILES = sorted(RAW_FILES)


def test_exactly_the_eight_real_files_with_real_headers(dataset: Dataset) -> None:
    written = sorted(path.name for path in (dataset.root / "raw").iterdir())
    assert written == ALL_FILES
    for name in ALL_FILES:
        header = (dataset.root / "raw" / name).open().readline().strip()
        assert header == ",".join(RAW_FILES[name])


@pytest.mark.parametrize("name", ALL_FILES)
def test_every_file_parses_with_the_real_types(dataset: Dataset, name: str) -> None:
    frame = dataset.read(name)
    assert len(frame) > 0
    assert frame["msno"].str.len().eq(44).all()
    assert frame["msno"].str.endswith("=").all()
    assert not (dataset.root / "raw" / name).read_text()[:2000].count('"')  # no quoting


def test_members_values_and_dirt(dataset: Dataset) -> None:
    members = dataset.read("members_v3.csv")
    assert members["msno"].is_unique
    assert set(members["city"]) <= {1, *range(3, 23)}
    assert members["city"].eq(1).mean() == pytest.approx(0.71, abs=0.05)
    assert members["bd"].eq(0).mean() == pytest.approx(0.67, abs=0.05)
    assert members["bd"].between(1, 100).mean() == pytest.approx(0.33, abs=0.05)
    assert members["bd"].gt(100).sum() > 0
    assert members["gender"].isna().mean() == pytest.approx(0.65, abs=0.05)
    known = members["gender"].dropna()
    assert set(known) == {"male", "female"}
    assert known.eq("male").mean() == pytest.approx(0.5, abs=0.06)
    via = members["registered_via"].value_counts(normalize=True)
    assert via[7] == pytest.approx(0.54, abs=0.04)
    assert via[9] == pytest.approx(0.27, abs=0.04)
    dates = members["registration_init_time"]
    assert dates.between(20040326, 20170429).all()
    assert dates.gt(20170228).mean() == pytest.approx(0.023, abs=0.025)


def test_transaction_values_and_quirks(dataset: Dataset) -> None:
    v1 = dataset.read("transactions.csv")
    assert v1["transaction_date"].between(20150101, 20170228).all()
    assert v1["payment_method_id"].eq(41).mean() == pytest.approx(0.5, abs=0.1)
    assert v1["payment_method_id"].between(1, 41).all()
    assert v1["payment_plan_days"].eq(30).mean() > 0.8
    assert v1["payment_plan_days"].eq(0).mean() == pytest.approx(0.04, abs=0.015)
    assert v1["payment_plan_days"].between(0, 450).all()
    assert set(v1["payment_plan_days"]) >= {0, 7, 30, 90, 180, 410}
    assert v1["is_auto_renew"].mean() == pytest.approx(0.785, abs=0.05)
    assert v1["is_cancel"].mean() == pytest.approx(0.04, abs=0.015)
    assert v1["actual_amount_paid"].eq(0).any()
    assert (v1["actual_amount_paid"] < v1["plan_list_price"]).any()
    assert v1["plan_list_price"].between(0, 2000).all()
    cancels = v1[v1["is_cancel"] == 1]
    early = cancels["membership_expire_date"] < cancels["transaction_date"]
    assert 0.2 < early.mean() < 0.7  # a cancel often ends the membership before its own date
    assert v1["membership_expire_date"].eq(19700101).any() or len(v1) < 200_000
    everything = pd.concat([v1, dataset.read("transactions_v2.csv"), dataset.future()])
    assert everything["membership_expire_date"].max() > 20200101  # stacked renewals
    assert everything["membership_expire_date"].max() <= 20361015


def test_v2_files_are_increments_of_v1(dataset: Dataset) -> None:
    v1, v2 = dataset.read("transactions.csv"), dataset.read("transactions_v2.csv")
    assert v2["transaction_date"].between(20170301, 20170331).mean() > 0.9
    earlier = v2[v2["transaction_date"] < 20170301]
    assert len(earlier) > 0
    duplicates = earlier.merge(v1, how="inner")
    assert 0 < len(duplicates) < len(earlier) + 1
    assert v2["is_cancel"].mean() < 0.1
    logs, logs_v2 = dataset.read("user_logs.csv"), dataset.read("user_logs_v2.csv")
    assert logs["date"].max() <= 20170228
    assert logs_v2["date"].between(20170301, 20170331).all()


@pytest.mark.parametrize("name", ["user_logs.csv", "user_logs_v2.csv"])
def test_user_logs_one_row_per_user_and_day(dataset: Dataset, name: str) -> None:
    logs = dataset.read(name)
    assert not logs.duplicated(["msno", "date"]).any()
    assert logs["num_unq"].ge(1).all()
    bands = logs[["num_25", "num_50", "num_75", "num_985", "num_100"]]
    assert bands.ge(0).all().all()
    zero = bands.eq(0).mean()
    for band, expected in zip(bands.columns, [0.27, 0.50, 0.56, 0.54, 0.03], strict=True):
        assert zero[band] == pytest.approx(expected, abs=0.08), band
    songs = bands.sum(axis=1)
    assert songs.median() == pytest.approx(20, rel=0.25)
    assert songs.mean() == pytest.approx(28, rel=0.25)
    assert logs["num_100"].sum() / songs.sum() == pytest.approx(0.675, abs=0.05)
    assert logs["num_25"].sum() / songs.sum() == pytest.approx(0.18, abs=0.04)
    plausible = logs["total_secs"].between(0, 86_400)
    assert logs.loc[plausible, "total_secs"].median() == pytest.approx(4000, rel=0.3)


def test_total_secs_outliers(dataset: Dataset) -> None:
    v1, v2 = dataset.read("user_logs.csv"), dataset.read("user_logs_v2.csv")
    assert v1["total_secs"].lt(0).mean() == pytest.approx(0.00016, abs=0.0002)
    assert v1["total_secs"].lt(0).any()
    assert v1["total_secs"].min() < -1e6
    assert v2["total_secs"].gt(0).all()
    assert v2["total_secs"].gt(86_400).mean() < 0.002


def test_march_cohort_coverage_like_the_real_data(dataset: Dataset) -> None:
    cohort = dataset.read("train_v2.csv")
    members = dataset.read("members_v3.csv")
    with_profile = cohort["msno"].isin(members["msno"])
    assert with_profile.mean() == pytest.approx(0.887, abs=0.03)
    assert cohort["msno"].isin(dataset.read("transactions_v2.csv")["msno"]).mean() > 0.9
    march = dataset.read("user_logs_v2.csv")
    assert cohort["msno"].isin(march["msno"]).mean() == pytest.approx(0.777, abs=0.06)
    active_days = march.groupby("msno").size()
    assert active_days.mean() == pytest.approx(16.7, abs=2.5)
    # Users without a profile churn less (5.4% vs 9.5% in the real data).
    churn = cohort["is_churn"]
    assert churn[~with_profile].mean() < churn[with_profile].mean()


def test_cohorts_overlap_like_monthly_subscriptions(dataset: Dataset) -> None:
    feb, mar = dataset.read("train.csv"), dataset.read("train_v2.csv")
    both = feb.merge(mar, on="msno")
    assert len(both) / len(feb) > 0.7
    assert 0 < (both["is_churn_x"] != both["is_churn_y"]).mean() < 0.2
    assert dataset.read("sample_submission_v2.csv")["is_churn"].eq(0).all()
    assert np.isclose(feb["is_churn"].mean(), dataset.summary.cohort_churn["2017-02"])
