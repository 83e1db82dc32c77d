"""Time moves on: the further months after March 2017, written as increments of the base files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churn_transform.dates import add_months
from churn_transform.labels import churn_labels
from churn_transform.schema import RAW_DTYPES, RAW_FILES
from tests.generator.conftest import Dataset, make

CONFIG = {"users": 3000, "seed": 11, "log_start": "2016-11-01", "chunk_users": 1600}
MONTHS = ["2017-04", "2017-05", "2017-06"]
LATER_COHORTS = ["2017-05", "2017-06", "2017-07"]
HEADERS = {
    "transactions.csv": RAW_FILES["transactions.csv"],
    "user_logs.csv": RAW_FILES["user_logs.csv"],
    "members.csv": RAW_FILES["members_v3.csv"],
}


def _read(path: Path) -> pd.DataFrame:
    header = path.open().readline().strip().split(",")
    return pd.read_csv(path, dtype={c: RAW_DTYPES[c] for c in header})


def _increment(data: Dataset, month: str, name: str) -> pd.DataFrame:
    return _read(data.root / "raw" / "increments" / month / name)


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.csv"))
    }


@pytest.fixture(scope="module")
def further(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return make(tmp_path_factory.mktemp("further"), months=len(MONTHS), **CONFIG)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return make(tmp_path_factory.mktemp("base"), **CONFIG)


@pytest.fixture(scope="module")
def history(further: Dataset) -> pd.DataFrame:
    """Every transaction there is: the base files, every increment and the hidden future."""
    parts = [further.read("transactions.csv"), further.read("transactions_v2.csv")]
    parts += [_increment(further, month, "transactions.csv") for month in MONTHS]
    parts.append(further.future())
    return pd.concat(parts).drop_duplicates()


def test_further_months_leave_the_eight_files_as_they_are(base: Dataset, further: Dataset) -> None:
    eight = _digests(further.root / "raw")
    increments = {name for name in eight if name.startswith("increments/")}
    assert {k: v for k, v in eight.items() if k not in increments} == _digests(base.root / "raw")
    earlier = further.oracle()
    earlier = earlier[earlier["cohort"] <= "2017-04"].reset_index(drop=True)
    pd.testing.assert_frame_equal(earlier, base.oracle())


def test_one_increment_per_month_with_the_documented_files(further: Dataset) -> None:
    root = further.root / "raw" / "increments"
    assert sorted(p.name for p in root.iterdir()) == MONTHS
    for month in MONTHS:
        expected = {*HEADERS, f"cohort_{add_months(month, 1)}.csv"}
        if month > "2017-04":
            expected.add(f"labels_{add_months(month, -1)}.csv")
        assert {p.name for p in (root / month).iterdir()} == expected
        for name in expected:
            header = (root / month / name).open().readline().strip()
            assert header == ",".join(HEADERS.get(name, ("msno", "is_churn"))), name


@pytest.mark.parametrize("month", MONTHS)
def test_transactions_are_dated_in_their_month_but_late_rows_and_repeats(
    further: Dataset, month: str
) -> None:
    rows = _increment(further, month, "transactions.csv")
    dated = rows["transaction_date"] // 100
    this, previous = int(month.replace("-", "")), int(add_months(month, -1).replace("-", ""))
    assert dated.isin([this, previous]).all()
    assert dated.eq(this).mean() > 0.9
    assert rows["msno"].str.len().eq(44).all()


@pytest.mark.parametrize("month", MONTHS)
def test_user_logs_are_dated_in_their_month_one_row_per_user_and_day(
    further: Dataset, month: str
) -> None:
    logs = _increment(further, month, "user_logs.csv")
    assert len(logs) > 0
    assert (logs["date"] // 100).eq(int(month.replace("-", ""))).all()
    assert not logs.duplicated(["msno", "date"]).any()
    assert logs["total_secs"].gt(0).all()


def test_listening_goes_on_at_the_march_level(further: Dataset) -> None:
    march = further.read("user_logs_v2.csv")
    for month in MONTHS:
        logs = _increment(further, month, "user_logs.csv")
        assert len(logs) == pytest.approx(len(march), rel=0.2), month


def test_members_of_an_increment_registered_in_its_month_and_are_new(further: Dataset) -> None:
    known = set(further.read("members_v3.csv")["msno"])
    joined = 0
    for month in MONTHS:
        members = _increment(further, month, "members.csv")
        registered = members["registration_init_time"] // 100
        assert registered.eq(int(month.replace("-", ""))).all()
        assert members["msno"].is_unique
        assert not known & set(members["msno"])
        known |= set(members["msno"])
        joined += len(members)
    assert joined > 0.005 * CONFIG["users"]  # newcomers keep arriving, about 0.6% a month


def test_newcomers_subscribe_and_reach_the_later_cohorts(further: Dataset) -> None:
    newcomers = pd.concat(_increment(further, m, "members.csv") for m in MONTHS[:-1])["msno"]
    later = further.oracle()[lambda o: o["cohort"] >= "2017-06"]["msno"]
    assert newcomers.isin(later).sum() > 0


@pytest.mark.parametrize("month", MONTHS)
def test_the_cohort_to_score_is_the_users_expiring_next_month(
    further: Dataset, history: pd.DataFrame, month: str
) -> None:
    cohort = add_months(month, 1)
    listed = _increment(further, month, f"cohort_{cohort}.csv")
    assert listed["is_churn"].eq(0).all()
    expected = set(churn_labels(history, cohort)["msno"])
    oracle = further.oracle()
    assert set(listed["msno"]) == expected == set(oracle[oracle["cohort"] == cohort]["msno"])


@pytest.mark.parametrize("cohort", ["2017-04", "2017-05"])
def test_labels_come_once_known_and_agree_with_the_rule_and_the_oracle(
    further: Dataset, history: pd.DataFrame, cohort: str
) -> None:
    where = sorted(further.root.glob(f"raw/**/labels_{cohort}.csv"))
    assert [p.parent.name for p in where] == [add_months(cohort, 1)]
    labels = _read(where[0]).set_index("msno")["is_churn"].to_dict()
    assert labels == churn_labels(history, cohort).set_index("msno")["is_churn"].to_dict()
    oracle = further.oracle()
    assert labels == oracle[oracle["cohort"] == cohort].set_index("msno")["is_churn"].to_dict()
    assert 0 < sum(labels.values()) < 0.2 * len(labels)


def test_every_decision_shows_in_the_labels_of_every_cohort(further: Dataset) -> None:
    assert further.summary.label_mismatches == 0
    assert set(further.summary.cohort_users) == {"2017-02", "2017-03", "2017-04", *LATER_COHORTS}


def test_the_last_cohort_s_answers_follow_the_rule_on_the_hidden_future(
    further: Dataset, history: pd.DataFrame
) -> None:
    last = LATER_COHORTS[-1]
    oracle = further.oracle()
    answers = oracle[oracle["cohort"] == last].set_index("msno")["is_churn"].to_dict()
    assert answers == churn_labels(history, last).set_index("msno")["is_churn"].to_dict()
    assert further.future()["transaction_date"].min() >= int(last.replace("-", "")) * 100 + 1


@pytest.mark.parametrize("cohort", LATER_COHORTS)
def test_the_oracle_covers_every_later_cohort_and_is_informative(
    further: Dataset, cohort: str
) -> None:
    oracle = further.oracle()
    answers = oracle[oracle["cohort"] == cohort]
    assert len(answers) > 0.08 * CONFIG["users"]
    assert roc_auc_score(answers["is_churn"], answers["churn_probability"]) > 0.8
    terms = pd.read_csv(further.root / "oracle" / "oracle_terms.csv")
    assert set(terms[terms["cohort"] == cohort]["msno"]) == set(answers["msno"])


def test_same_seed_same_increments(tmp_path: Path) -> None:
    small = {**CONFIG, "users": 1200, "chunk_users": 700, "months": 2}
    first, again = make(tmp_path / "a", **small), make(tmp_path / "b", **small)
    assert _digests(first.root) == _digests(again.root)
    other = make(tmp_path / "c", **{**small, "seed": 12})
    increment = "raw/increments/2017-05/transactions.csv"
    assert _digests(first.root)[increment] != _digests(other.root)[increment]


@pytest.fixture(scope="module")
def june_shift(tmp_path_factory: pytest.TempPathFactory) -> tuple[Dataset, Dataset]:
    root = tmp_path_factory.mktemp("june")
    config = {**CONFIG, "users": 2000, "months": 4, "shift_start": "2017-06"}
    return make(root / "calm", **config), make(root / "shifted", shift=1.0, **config)


def test_a_shift_from_june_leaves_every_earlier_month_as_it_was(
    june_shift: tuple[Dataset, Dataset],
) -> None:
    calm, shifted = (_digests(data.root / "raw") for data in june_shift)
    before = [name for name in calm if "increments/2017-06" not in name and "2017-07" not in name]
    assert any(name.startswith("increments/2017-05/") for name in before)
    assert {name: calm[name] for name in before} == {name: shifted[name] for name in before}
    oracles = [data.oracle() for data in june_shift]
    # June's own decisions are June's behaviour: the shift turns their truth (docs/generator.md)
    earlier = [o[o["cohort"] < "2017-06"].reset_index(drop=True) for o in oracles]
    pd.testing.assert_frame_equal(*earlier)


def test_a_shift_from_june_changes_june_on(june_shift: tuple[Dataset, Dataset]) -> None:
    calm, shifted = june_shift
    for month in ("2017-06", "2017-07"):
        calm_tx = _increment(calm, month, "transactions.csv")
        shifted_tx = _increment(shifted, month, "transactions.csv")
        own = shifted_tx[shifted_tx["transaction_date"] // 100 == int(month.replace("-", ""))]
        assert calm_tx["payment_method_id"].eq(42).sum() == 0
        assert own["payment_method_id"].eq(42).mean() > 0.25
        calm_logs = _increment(calm, month, "user_logs.csv")
        assert len(_increment(shifted, month, "user_logs.csv")) < 0.75 * len(calm_logs)
    assert not np.isin(42, _increment(shifted, "2017-05", "transactions.csv")["payment_method_id"])
