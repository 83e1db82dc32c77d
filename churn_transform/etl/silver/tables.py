"""The four silver tables: the raw files each is built from, and the keys its rows sort by."""

from __future__ import annotations

from churn_transform.schema import LABEL_FILES

SOURCES: dict[str, tuple[str, ...]] = {
    "members": ("members_v3.csv",),
    "transactions": ("transactions.csv", "transactions_v2.csv"),
    "user_logs": ("user_logs.csv", "user_logs_v2.csv"),
    "labels": tuple(LABEL_FILES),
}
SORT_KEYS: dict[str, list[str]] = {
    "members": ["msno"],
    # every column: repeats of a row must end up next to each other to be found
    "transactions": [
        "msno",
        "transaction_date",
        "is_cancel",
        "membership_expire_date",
        "payment_plan_days",
        "plan_list_price",
        "actual_amount_paid",
        "is_auto_renew",
        "payment_method_id",
    ],
    "user_logs": ["msno", "date"],
    "labels": ["cohort", "msno"],
}
