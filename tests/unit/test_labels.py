"""The official churn rule on hand-built transaction histories (cohort 2017-03)."""

import pandas as pd
import pytest

from churn_transform.labels import churn_labels


def _history(*rows: tuple[int, int, int]) -> pd.DataFrame:
    """Rows of (transaction_date, membership_expire_date, is_cancel) of user "u"."""
    return pd.DataFrame(
        [("u", date, expire, cancel) for date, expire, cancel in rows],
        columns=["msno", "transaction_date", "membership_expire_date", "is_cancel"],
    )


def _label(*rows: tuple[int, int, int]) -> int | None:
    labels = churn_labels(_history(*rows), "2017-03")
    return None if labels.empty else int(labels["is_churn"].iloc[0])


@pytest.mark.parametrize(
    ("renewal_date", "churned"),
    [
        (20170310, 0),  # early renewal: negative gap
        (20170315, 0),  # on the day
        (20170413, 0),  # 29 days after expiry
        (20170414, 1),  # 30 days after expiry
        (20170520, 1),  # much later
    ],
)
def test_gap_of_30_days_is_churn(renewal_date: int, churned: int) -> None:
    assert _label((20170213, 20170315, 0), (renewal_date, 20170701, 0)) == churned


def test_no_renewal_at_all_is_churn() -> None:
    assert _label((20170213, 20170315, 0)) == 1


def test_a_cancel_that_moves_expiry_earlier_lengthens_the_gap() -> None:
    # Expiry 2017-03-15 moved to 2017-03-02 by a cancel; a renewal on 2017-04-05 is then
    # 34 days late, although only 21 days after the original expiry.
    assert _label((20170213, 20170315, 0), (20170304, 20170302, 1), (20170405, 20170505, 0)) == 1
    assert _label((20170213, 20170315, 0), (20170405, 20170505, 0)) == 0


def test_a_cancel_never_moves_expiry_later() -> None:
    assert _label((20170213, 20170315, 0), (20170301, 20170501, 1), (20170420, 20170520, 0)) == 1


def test_only_cancels_after_the_cutoff_is_churn() -> None:
    assert _label((20170213, 20170315, 0), (20170310, 20170308, 1)) == 1


def test_same_day_subscription_sorts_before_cancel() -> None:
    # Both rows dated 2017-02-20: the cancel is the last row, so its expiry defines the cohort.
    assert _label((20170220, 20170320, 1), (20170220, 20170420, 0)) == 1
    swapped = _history((20170220, 20170420, 1), (20170220, 20170320, 0))
    assert churn_labels(swapped, "2017-03").empty
    assert len(churn_labels(swapped, "2017-04")) == 1


@pytest.mark.parametrize("expire", [20170228, 20170401, 19700101])
def test_expiry_outside_the_month_is_not_in_the_cohort(expire: int) -> None:
    assert _label((20170120, expire, 0)) is None


def test_rows_dated_after_the_cutoff_do_not_define_the_cohort() -> None:
    assert _label((20170115, 20170214, 0), (20170305, 20170320, 0)) is None


def test_missing_column_is_named() -> None:
    with pytest.raises(KeyError, match="is_cancel"):
        churn_labels(_history((20170213, 20170315, 0)).drop(columns="is_cancel"), "2017-03")


def test_input_is_not_modified() -> None:
    history = _history((20170213, 20170315, 0), (20170320, 20170420, 0))
    before = history.copy()
    churn_labels(history, "2017-03")
    pd.testing.assert_frame_equal(history, before)
