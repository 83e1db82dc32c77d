import numpy as np
import pytest

from churn_transform.dates import add_months, day, month_bounds, to_days, to_yyyymmdd


def test_round_trip_including_quirky_dates() -> None:
    dates = np.array([20170301, 19700101, 20361015, 20160229, 20041231])
    np.testing.assert_array_equal(to_yyyymmdd(to_days(dates)), dates)
    assert to_days([20170301])[0] == day("2017-03-01")


@pytest.mark.parametrize("bad", [20170230, 20171301, 20170100, 2017031])
def test_impossible_dates_are_named(bad: int) -> None:
    with pytest.raises(ValueError, match=str(bad)):
        to_days([20170301, bad])


def test_month_bounds() -> None:
    assert month_bounds("2017-02") == (day("2017-02-01"), day("2017-03-01"))
    assert month_bounds("2016-12") == (day("2016-12-01"), day("2017-01-01"))
    with pytest.raises(ValueError, match="2017-13"):
        month_bounds("2017-13")


@pytest.mark.parametrize(
    ("month", "count", "expected"),
    [
        ("2017-04", 1, "2017-05"),
        ("2017-12", 1, "2018-01"),
        ("2017-04", 9, "2018-01"),
        ("2017-01", -1, "2016-12"),
        ("2017-03", 0, "2017-03"),
        ("2017-05", -14, "2016-03"),
    ],
)
def test_add_months_crosses_years_both_ways(month: str, count: int, expected: str) -> None:
    assert add_months(month, count) == expected
