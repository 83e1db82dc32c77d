"""Names and types of the KKBox files as they are published: the one place they are written down.

The generator writes exactly these headers; ingest reads with exactly these dtypes.
"""

from __future__ import annotations

from typing import Final

#: Raw file name -> ordered columns, as in the WSDM 2018 KKBox churn challenge.
RAW_FILES: Final[dict[str, tuple[str, ...]]] = {
    "members_v3.csv": (
        "msno",
        "city",
        "bd",
        "gender",
        "registered_via",
        "registration_init_time",
    ),
    "transactions.csv": (
        "msno",
        "payment_method_id",
        "payment_plan_days",
        "plan_list_price",
        "actual_amount_paid",
        "is_auto_renew",
        "transaction_date",
        "membership_expire_date",
        "is_cancel",
    ),
    "user_logs.csv": (
        "msno",
        "date",
        "num_25",
        "num_50",
        "num_75",
        "num_985",
        "num_100",
        "num_unq",
        "total_secs",
    ),
    "train.csv": ("msno", "is_churn"),
}
RAW_FILES["transactions_v2.csv"] = RAW_FILES["transactions.csv"]
RAW_FILES["user_logs_v2.csv"] = RAW_FILES["user_logs.csv"]
RAW_FILES["train_v2.csv"] = RAW_FILES["train.csv"]
RAW_FILES["sample_submission_v2.csv"] = RAW_FILES["train.csv"]

#: Pandas dtypes of every raw column (dates are integer YYYYMMDD; gender is empty when unknown).
RAW_DTYPES: Final[dict[str, str]] = {
    "msno": "string",
    "city": "int64",
    "bd": "int64",
    "gender": "string",
    "registered_via": "int64",
    "registration_init_time": "int64",
    "payment_method_id": "int64",
    "payment_plan_days": "int64",
    "plan_list_price": "int64",
    "actual_amount_paid": "int64",
    "is_auto_renew": "int64",
    "transaction_date": "int64",
    "membership_expire_date": "int64",
    "is_cancel": "int64",
    "date": "int64",
    "num_25": "int64",
    "num_50": "int64",
    "num_75": "int64",
    "num_985": "int64",
    "num_100": "int64",
    "num_unq": "int64",
    "total_secs": "float64",
    "is_churn": "int64",
}

#: Cohort month of each label file: users whose membership expires in that month.
LABEL_FILES: Final[dict[str, str]] = {
    "train.csv": "2017-02",
    "train_v2.csv": "2017-03",
    "sample_submission_v2.csv": "2017-04",
}

#: Length of a KKBox user id: 32 random bytes in base64, ending in "=".
MSNO_LENGTH: Final[int] = 44
