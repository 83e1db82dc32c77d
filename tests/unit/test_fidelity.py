"""Fidelity statistics of tiny hand-made KKBox files, and the verdict rules, computed by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from churn_transform.fidelity import Reference, compare, load_references, measure
from churn_transform.fidelity.measures import measure_file
from churn_transform.fidelity.statistic import Statistic
from churn_transform.fidelity.verdict import judge, table
from churn_transform.schema import RAW_FILES

TRANSACTIONS = [  # msno, method, plan days, list, paid, auto, date, expire, cancel
    ("u1", 41, 30, 149, 149, 1, 20170301, 20170331, 0),  # 30 days
    ("u1", 41, 30, 180, 0, 1, 20170310, 20180501, 0),  # free, 417 days
    ("u2", 39, 0, 0, 0, 0, 20170305, 20170303, 1),  # a cancel expiring 2 days before
    ("u2", 38, 7, 180, 100, 0, 20170320, 19700101, 0),  # discounted, no expiry
    ("u3", 41, 90, 180, 180, 1, 20170101, 20170601, 0),  # 151 days
]
USER_LOGS = [  # msno, date, num_25, num_50, num_75, num_985, num_100, num_unq, total_secs
    ("a", 20170301, 2, 0, 0, 0, 8, 9, 2000.5),
    ("a", 20170302, 0, 1, 0, 0, 9, 10, 3000.0),
    ("b", 20170303, 1, 0, 1, 1, 7, 10, -5.0),
    ("b", 20170228, 0, 0, 0, 0, 10, 10, 90000.0),
]
MEMBERS = [  # msno, city, bd, gender, registered_via, registration_init_time
    ("m1", 1, 0, "", 7, 20100101),
    ("m2", 1, 25, "male", 9, 20150505),
    ("m3", 5, -3, "female", 7, 20170315),
    ("m4", 13, 2016, "", 3, 20161231),
]


def _write(folder: Path, name: str, rows: list[tuple[object, ...]]) -> Path:
    lines = [",".join(RAW_FILES[name])] + [",".join(map(str, row)) for row in rows]
    (folder / name).write_text("\n".join(lines) + "\n")
    return folder / name


def _values(statistics: list[Statistic]) -> dict[str, float]:
    return {s.name: s.value for s in statistics}


def test_transaction_statistics(tmp_path: Path) -> None:
    stats = _values(measure_file(_write(tmp_path, "transactions_v2.csv", TRANSACTIONS)))
    expected = {
        "rows": 5,
        "transactions_per_user": 5 / 3,
        "plan_days_0": 0.2,
        "plan_days_7": 0.2,
        "plan_days_30": 0.4,
        "plan_days_90": 0.2,
        "plan_days_180": 0.0,
        "plan_days_360_or_more": 0.0,
        "list_price_149": 0.2,
        "list_price_99": 0.0,
        "list_price_rank_180": 1,
        "payment_method_41": 0.6,
        "auto_renew": 0.6,
        "cancel": 0.2,
        "paid_below_list": 0.4,
        "paid_discounted": 0.2,
        "paid_zero": 0.4,
        "expiry_19700101": 0.2,
        "expiry_before_transaction": 0.25,
        "expiry_within_31_days": 0.25,
        "expiry_32_to_400_days": 0.25,
        "expiry_over_400_days": 0.25,
        "cancel_expiry_before_transaction": 1.0,
    }
    assert {k: stats[k] for k in expected} == pytest.approx(expected)
    assert math.isnan(stats["list_price_rank_1788"])  # never occurs


def test_user_log_statistics(tmp_path: Path) -> None:
    stats = _values(measure_file(_write(tmp_path, "user_logs_v2.csv", USER_LOGS)))
    expected = {
        "rows": 4,
        "active_days_last_month": 1.5,  # 3 March rows of 2 users
        "daily_secs_median": 2000,
        "daily_secs_mean": 2500.25,  # rows within a day only
        "daily_plays_median": 10,
        "daily_plays_mean": 10,
        "plays_share_num_25": 3 / 40,
        "plays_share_num_50": 1 / 40,
        "plays_share_num_75": 1 / 40,
        "plays_share_num_985": 1 / 40,
        "plays_share_num_100": 34 / 40,
        "zero_num_25": 0.5,
        "zero_num_50": 0.75,
        "zero_num_75": 0.75,
        "zero_num_985": 0.75,
        "zero_num_100": 0.0,
        "secs_negative": 0.25,
        "secs_over_86400": 0.25,
        "secs_over_1e12": 0.0,
        "num_unq_below_1": 0.0,
    }
    assert stats == pytest.approx(expected)


def test_member_statistics(tmp_path: Path) -> None:
    stats = _values(measure_file(_write(tmp_path, "members_v3.csv", MEMBERS)))
    expected = {
        "rows": 4,
        "bd_0": 0.25,
        "bd_1_to_100": 0.25,
        "bd_negative": 0.25,
        "bd_over_100": 0.25,
        "gender_missing": 0.5,
        "gender_male": 0.5,
        "city_1": 0.5,
        "city_2": 0.0,
        "registered_via_7": 0.5,
        "registered_via_9": 0.25,
        "registered_via_3": 0.25,
        "registered_via_4": 0.0,
        "registered_via_13": 0.0,
        "registered_after_20170228": 0.25,
        "registered_before_2011": 0.25,
        "registered_2011_to_2014": 0.0,
        "registered_2015": 0.25,
        "registered_2016": 0.25,
        "registered_2017": 0.25,
    }
    assert stats == pytest.approx(expected)


def test_cohort_sizes_churn_and_coverage_of_the_march_cohort(tmp_path: Path) -> None:
    _write(tmp_path, "train.csv", [("a", 0), ("b", 1), ("c", 0)])
    _write(tmp_path, "train_v2.csv", [("a", 1), ("b", 1), ("d", 0), ("e", 0)])
    _write(tmp_path, "sample_submission_v2.csv", [("a", 0), ("f", 0)])
    _write(tmp_path, "members_v3.csv", [(u, 1, 0, "", 7, 20150101) for u in "abdz"])
    _write(tmp_path, "transactions_v2.csv", [(u, *TRANSACTIONS[0][1:]) for u in "ae"])
    _write(tmp_path, "user_logs_v2.csv", [("a", *USER_LOGS[0][1:]), ("d", *USER_LOGS[3][1:])])
    stats = {(s.file, s.name): s.value for s in measure(tmp_path)}
    expected = {
        ("train.csv", "rows"): 3,
        ("train.csv", "churn"): 1 / 3,
        ("train_v2.csv", "rows"): 4,
        ("train_v2.csv", "size_vs_train"): 4 / 3,
        ("train_v2.csv", "churn"): 0.5,
        ("sample_submission_v2.csv", "rows"): 2,
        ("sample_submission_v2.csv", "size_vs_train"): 2 / 3,
        ("train_v2.csv", "in_train"): 0.5,  # a and b
        ("train_v2.csv", "label_changed"): 0.5,  # a: 0 in February, 1 in March
        ("train_v2.csv", "with_profile"): 0.75,  # a, b, d
        ("train_v2.csv", "churn_with_profile"): 2 / 3,
        ("train_v2.csv", "churn_without_profile"): 0.0,  # e
        ("train_v2.csv", "with_v2_transaction"): 0.5,  # a and e
        ("train_v2.csv", "with_march_log"): 0.25,  # a (d's row is of February)
    }
    assert {k: stats[k] for k in expected} == pytest.approx(expected)


def _judge(value: float, kind: str, real: float, count: int = 1_000_000, **extra: float) -> str:
    reference = Reference("f.csv", "s", real, kind, "src", **extra)  # type: ignore[arg-type]
    return judge(Statistic("f.csv", "s", value, count), reference).verdict


@pytest.mark.parametrize(
    ("value", "kind", "real", "verdict"),
    [
        (0.59, "share", 0.5, "ok"),  # 20% of 50% = 10 points
        (0.61, "share", 0.5, "off"),
        (0.069, "share", 0.05, "ok"),  # 2 points beat 20% of 5%
        (0.071, "share", 0.05, "off"),
        (2.9e-3, "rare", 1e-3, "ok"),
        (3.1e-3, "rare", 1e-3, "off"),
        (0.3e-3, "rare", 1e-3, "off"),
        (0.0, "absent", 0.0, "ok"),
        (1e-6, "absent", 0.0, "off"),
        (119, "relative", 100, "ok"),
        (121, "relative", 100, "off"),
        (4, "rank", 3, "ok"),
        (5, "rank", 3, "off"),
        (4, "at_most", 4, "ok"),
        (5, "at_most", 4, "off"),
        (123, "info", 456, ""),
        (math.nan, "share", 0.5, "off"),
    ],
)
def test_verdicts(value: float, kind: str, real: float, verdict: str) -> None:
    assert _judge(value, kind, real) == verdict


def test_relative_tolerance_takes_its_within() -> None:
    assert _judge(109, "relative", 100, within=0.1) == "ok"
    assert _judge(111, "relative", 100, within=0.1) == "off"


def test_a_rare_quirk_expected_in_fewer_than_10_rows_is_not_judged() -> None:
    assert _judge(0.0, "rare", 1e-3, count=9_000) == "n/a"
    assert _judge(0.0, "rare", 1e-3, count=10_000) == "off"


def test_unknown_tolerance_is_refused() -> None:
    with pytest.raises(ValueError, match="tolerance 'close' is not one of"):
        Reference("f.csv", "s", 0.5, "close", "src")


def test_a_reference_citing_an_unlisted_source_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ref.yaml"
    path.write_text(
        "sources: {spec: the spec}\n"
        "references:\n"
        "  - {file: f.csv, statistic: s, value: 0.5, tolerance: share, source: nowhere}\n"
    )
    with pytest.raises(ValueError, match="source 'nowhere' is not listed"):
        load_references(path)


def test_compare_reports_unmeasured_references_missing_and_unreferenced_without_verdict() -> None:
    measured = [Statistic("f.csv", "plain", 0.5, 10)]
    findings = compare(measured, [Reference("g.csv", "gone", 0.5, "share", "src")])
    assert [(f.statistic.name, f.verdict) for f in findings] == [("plain", ""), ("gone", "missing")]
    text = table(findings, {"src": "a citation"})
    assert "[src] a citation" in text and "missing" in text
