"""Labels follow the official rule; the oracle is informative; no raw column alone matches it."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churn_transform.dates import to_days
from tests.generator.conftest import Dataset


def _reference_rule(history: pd.DataFrame, cohort: str) -> dict[str, int]:
    """The rule from the data spec, written as a plain loop, independent of churn_transform."""
    first = dt.date.fromisoformat(f"{cohort}-01")
    cutoff = int(first.strftime("%Y%m%d"))
    month_end = int(
        (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1).strftime("%Y%m%d")
    )
    labels: dict[str, int] = {}
    ordered = history.sort_values(["msno", "transaction_date", "is_cancel"], kind="stable")
    for msno, rows in ordered.groupby("msno", sort=False):
        before = rows[rows["transaction_date"] < cutoff]
        if before.empty:
            continue
        expiry = int(before["membership_expire_date"].iloc[-1])
        if not cutoff <= expiry < month_end:
            continue
        churned = 1
        for row in rows[rows["transaction_date"] >= cutoff].itertuples():
            if row.is_cancel:
                expiry = min(expiry, row.membership_expire_date)
                continue
            gap = (to_days([row.transaction_date]) - to_days([expiry]))[0]
            churned = int(gap >= 30)
            break
        labels[msno] = churned
    return labels


@pytest.fixture(scope="module")
def history(dataset: Dataset) -> pd.DataFrame:
    files = [
        dataset.read("transactions.csv"),
        dataset.read("transactions_v2.csv"),
        dataset.future(),
    ]
    return pd.concat(files).drop_duplicates()


@pytest.mark.parametrize(
    ("label_file", "cohort"), [("train.csv", "2017-02"), ("train_v2.csv", "2017-03")]
)
def test_labels_agree_with_the_rule_on_the_generated_transactions(
    dataset: Dataset, history: pd.DataFrame, label_file: str, cohort: str
) -> None:
    expected = _reference_rule(history, cohort)
    written = dataset.read(label_file).set_index("msno")["is_churn"].to_dict()
    assert written == expected


def test_feb_labels_need_only_the_published_files(dataset: Dataset) -> None:
    published = pd.concat([dataset.read("transactions.csv"), dataset.read("transactions_v2.csv")])
    expected = _reference_rule(published.drop_duplicates(), "2017-02")
    assert dataset.read("train.csv").set_index("msno")["is_churn"].to_dict() == expected


def test_hidden_april_labels_follow_the_rule(dataset: Dataset, history: pd.DataFrame) -> None:
    oracle = dataset.oracle()
    april = oracle[oracle["cohort"] == "2017-04"].set_index("msno")["is_churn"].to_dict()
    assert april == _reference_rule(history, "2017-04")
    submission = dataset.read("sample_submission_v2.csv")
    assert set(submission["msno"]) == set(april)


def test_every_decision_shows_in_the_labels(dataset: Dataset) -> None:
    assert dataset.summary.label_mismatches == 0


def test_churn_rates_near_the_real_ones(dataset: Dataset) -> None:
    feb = dataset.read("train.csv")["is_churn"].mean()
    mar = dataset.read("train_v2.csv")["is_churn"].mean()
    assert 0.05 < feb < 0.08
    assert 0.06 < mar < 0.11
    assert mar > feb


@pytest.mark.parametrize("cohort", ["2017-02", "2017-03", "2017-04"])
def test_oracle_is_far_better_than_chance_and_calibrated(dataset: Dataset, cohort: str) -> None:
    oracle = dataset.oracle()
    answers = oracle[oracle["cohort"] == cohort]
    probability = answers["churn_probability"]
    assert roc_auc_score(answers["is_churn"], probability) > 0.85
    # Each label is one Bernoulli draw of its probability: the churn rate departs from the mean
    # probability by sampling noise alone, whose standard error the probabilities give.
    standard_error = np.sqrt((probability * (1 - probability)).sum()) / len(answers)
    assert answers["is_churn"].mean() == pytest.approx(probability.mean(), abs=3 * standard_error)


def _single_column_views(dataset: Dataset, cutoff: int) -> pd.DataFrame:
    """Per-user values of single raw columns as seen before the cutoff."""
    tx = pd.concat([dataset.read("transactions.csv"), dataset.read("transactions_v2.csv")])
    tx = tx[tx["transaction_date"] < cutoff].drop_duplicates()
    tx = tx.sort_values(["msno", "transaction_date", "is_cancel"], kind="stable")
    views = (
        tx.groupby("msno")
        .last()[
            [
                "payment_method_id",
                "payment_plan_days",
                "plan_list_price",
                "actual_amount_paid",
                "is_auto_renew",
                "is_cancel",
                "membership_expire_date",
            ]
        ]
        .add_prefix("last_")
    )
    views["cancels"] = tx.groupby("msno")["is_cancel"].sum()
    logs = dataset.read("user_logs.csv")
    recent = logs[logs["date"] >= cutoff - 100]  # January, as YYYYMMDD arithmetic
    views["secs_january"] = recent.groupby("msno")["total_secs"].sum()
    views["last_log"] = logs.groupby("msno")["date"].max()
    members = dataset.read("members_v3.csv").set_index("msno")
    return views.join(members[["city", "bd", "registered_via", "registration_init_time"]])


def test_no_single_raw_column_reaches_the_oracle(dataset: Dataset) -> None:
    oracle = dataset.oracle()
    march = oracle[oracle["cohort"] == "2017-03"].set_index("msno")
    best = roc_auc_score(march["is_churn"], march["churn_probability"])
    views = _single_column_views(dataset, 20170301).reindex(march.index)
    for column in views.columns:
        values = views[column].fillna(views[column].min() - 1 if views[column].notna().any() else 0)
        auc = roc_auc_score(march["is_churn"], values)
        assert max(auc, 1 - auc) < best - 0.05, column


def test_the_oracle_s_terms_add_up_to_its_probability(dataset: Dataset) -> None:
    import numpy as np

    from churn_transform.synthetic.oracle import INTERCEPT, WEIGHTS

    oracle = dataset.oracle().set_index(["cohort", "msno"])
    terms = pd.read_csv(dataset.root / "oracle" / "oracle_terms.csv").set_index(["cohort", "msno"])
    assert list(terms.columns) == list(WEIGHTS) and terms.index.equals(oracle.index)
    logit = INTERCEPT + terms.sum(axis=1)
    np.testing.assert_allclose(1 / (1 + np.exp(-logit)), oracle["churn_probability"], rtol=1e-9)
    assert (terms["no_auto_renew"].isin([0.0, WEIGHTS["no_auto_renew"]])).all()
