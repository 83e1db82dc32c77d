"""The official KKBox churn rule, applied to a transaction history.

A user belongs to the cohort of month M when the ``membership_expire_date`` of their last
transaction dated before the first day of M (the cutoff) falls inside M. Walking the user's
transactions from the cutoff on, cancel rows may move that expiry earlier; at the first
non-cancel row the gap is its ``transaction_date`` minus the current expiry. The user has
churned when the gap is 30 days or more, or when no non-cancel row follows. A negative gap (an
early renewal) counts as retained. Rows on the same day sort subscriptions before cancels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churn_transform.dates import month_bounds, to_days
from churn_transform.schema import LABEL

#: A renewal this many days or more after the expiry is a churn.
CHURN_GAP_DAYS = 30

_COLUMNS = ["msno", "transaction_date", "membership_expire_date", "is_cancel"]


def churn_labels(transactions: pd.DataFrame, cohort: str) -> pd.DataFrame:
    """``msno, is_churn, expiry`` for every user of the cohort month ``cohort`` (``YYYY-MM``).

    ``transactions`` holds the raw columns (dates as YYYYMMDD integers) and must reach at least
    30 days past the end of the month for the labels to be final. ``expiry`` is the day number
    of the membership expiry that defines the cohort. The input is not modified.
    """
    missing = [column for column in _COLUMNS if column not in transactions.columns]
    if missing:
        raise KeyError(f"transactions lack the column(s) {missing} the churn rule needs")
    cutoff, month_end = month_bounds(cohort)
    history = pd.DataFrame(
        {
            "msno": transactions["msno"].to_numpy(),
            "date": to_days(transactions["transaction_date"]),
            "expire": to_days(transactions["membership_expire_date"]),
            "cancel": transactions["is_cancel"].to_numpy(dtype=np.int64),
        }
    ).sort_values(["msno", "date", "cancel"], kind="stable")

    before = history[history["date"] < cutoff]
    current = before.groupby("msno", sort=False)["expire"].last()
    members = current[(current >= cutoff) & (current < month_end)].rename("expiry")

    after = history[history["date"] >= cutoff].merge(members.reset_index(), on="msno")
    subscriptions_seen = (1 - after["cancel"]).groupby(after["msno"], sort=False).cumsum()
    leading_cancels = after[(subscriptions_seen == 0) & (after["cancel"] == 1)]
    moved = leading_cancels.groupby("msno", sort=False)["expire"].min()
    first_renewal = (
        after[(subscriptions_seen == 1) & (after["cancel"] == 0)]
        .groupby("msno", sort=False)["date"]
        .first()
    )

    labels = members.to_frame()
    labels["expiry"] = np.minimum(labels["expiry"], moved.reindex(labels.index).fillna(np.inf))
    gap = first_renewal.reindex(labels.index) - labels["expiry"]
    labels[LABEL] = (gap.isna() | (gap >= CHURN_GAP_DAYS)).astype(np.int64)
    labels["expiry"] = labels["expiry"].astype(np.int64)
    return labels.reset_index()[["msno", LABEL, "expiry"]]
