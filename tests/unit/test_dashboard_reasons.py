"""The dashboard's reasons: values with their units, shares in probability points."""

from __future__ import annotations

import math

import pytest

from churn_transform.schema import FEATURES
from dashboard.reasons import probability_points, reasons_table, shown_value, waterfall_steps


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@pytest.mark.parametrize(
    ("base", "contributions"),
    [
        (-4.88, [0.9, 0.57, 0.52, -0.36, 0.23]),
        (-4.88, [-0.2, -0.1]),
        (0.0, [3.0, -2.0, 1.5]),
        (-2.0, [1.0, -1.0]),  # no move at all: the shares still keep their signs
    ],
)
def test_the_points_add_up_to_the_move_from_the_base_value(
    base: float, contributions: list[float]
) -> None:
    points = probability_points(base, contributions)
    moved = 100 * (_sigmoid(base + sum(contributions)) - _sigmoid(base))
    assert sum(points) == pytest.approx(moved, abs=1e-9)
    assert [p > 0 for p in points] == [c > 0 for c in contributions]
    order = sorted(range(len(points)), key=lambda i: -abs(points[i]))
    assert order == sorted(range(len(contributions)), key=lambda i: -abs(contributions[i]))


def test_a_share_is_worth_more_points_near_one_half_than_in_the_tail() -> None:
    (tail,) = probability_points(-4.88, [0.5])
    (middle,) = probability_points(-0.25, [0.5])
    assert 0 < tail < 1 < middle


@pytest.mark.parametrize(
    ("feature", "value", "shown"),
    [
        ("secs_30", 1884.728, "1,884.7 s (31.4 min)"),
        ("secs_total", 576641.332, "576,641.3 s (6.7 d)"),
        ("secs_7", 0.0, "0 s"),
        ("days_to_expiry", -3.0, "-3 days"),
        ("active_days_30", 11.0, "11 days"),
        ("total_paid", 3569.0, "3,569 NTD"),
        ("bd", 19.0, "19 years"),
        ("auto_renew_share", 0.333333, "33%"),
        ("last_is_auto_renew", 1.0, "yes"),
        ("last_is_cancel", 0.0, "no"),
        ("last_payment_method_id", 41.0, "code 41"),
        ("city", 13.0, "code 13"),
        ("gender", "female", "female"),
        ("tx_count", 29.0, "29"),
        ("days_since_last_cancel", None, "unknown"),
        ("secs_60", float("nan"), "unknown"),
    ],
)
def test_a_value_is_shown_with_its_unit(feature: str, value: object, shown: str) -> None:
    assert shown_value(feature, value) == shown


def test_only_counts_are_shown_without_a_unit() -> None:
    numbers = set(FEATURES) - {"gender"}
    bare = {name for name in numbers if shown_value(name, 2.0) == "2"}
    assert bare == {
        "tx_count",
        "tx_count_90",
        "cancel_count",
        "cancel_count_365",
        "discount_count",
        "free_count",
        "songs_30",
        "num_25_30",
        "num_100_30",
        "unq_30",
    }


def test_the_table_keeps_the_service_s_order_and_log_odds() -> None:
    answer = {
        "base_log_odds": -3.0,
        "churn_probability": _sigmoid(-3.0 + 0.8 - 0.3),
        "reasons": [
            {"feature": "secs_14", "name": "listening", "value": 0.0, "contribution": 0.8},
            {"feature": "city", "name": "city", "value": 5.0, "contribution": -0.3},
        ],
    }
    table = reasons_table(answer)
    assert list(table["feature"]) == ["secs_14", "city"]
    assert list(table["value"]) == ["0 s", "code 5"]
    assert list(table["log-odds"]) == [0.8, -0.3]
    assert table["probability points"].sum() == pytest.approx(
        100 * (answer["churn_probability"] - _sigmoid(-3.0))
    )


def test_the_waterfall_walks_from_the_base_value_to_the_probability() -> None:
    contributions = [0.9, -0.4, 0.3, 0.2, -0.1]
    answer = {
        "base_log_odds": -4.0,
        "churn_probability": _sigmoid(-4.0 + sum(contributions)),
        "reasons": [
            {"feature": f"secs_{w}", "name": f"w{w}", "value": 0.0, "contribution": c}
            for w, c in zip((7, 14, 30, 44, 60), contributions, strict=True)
        ],
    }
    steps = waterfall_steps(answer, shown=3)
    assert list(steps["reason"]) == ["w7: 0 s", "w14: 0 s", "w30: 0 s", "2 other features"]
    assert steps["start"].iloc[0] == pytest.approx(100 * _sigmoid(-4.0))
    assert steps["end"].iloc[-1] == pytest.approx(100 * answer["churn_probability"])
    assert (steps["start"].iloc[1:].to_numpy() == steps["end"].iloc[:-1].to_numpy()).all()
    assert list(steps["effect"]) == ["raises the risk", "lowers the risk"] + ["raises the risk"] * 2


def test_a_refusal_shows_the_service_s_message_not_its_json() -> None:
    """BentoML 1.4 sends a refusal as a one-item list: the Subscriber tab showed it raw."""
    from dashboard.subscriber import _refusal

    message = "unknown subscriber ids in cohort 2017-04: nobody."
    assert _refusal([{"error": message}]) == message
    assert _refusal({"error": message}) == message
    assert _refusal({"detail": [{"loc": ["records", 0, "bd"]}]}) is None
    assert _refusal({"error": "invalid", "detail": [{"loc": ["records", 0, "bd"]}]}) is None
