"""Column names, types and rules: the one place they are written down.

The raw KKBox files as published (the generator writes exactly these headers; ingest reads with
exactly these dtypes), the gold features and label, the categorical sets each consumer treats
as categories, the scoring cohort, the Pandera schema of gold (whose rules the serving record
model inherits) and one example record. Nothing heavier than pandera is imported here: the
prediction service imports this module, and it must not carry the batch pipeline.
"""

from __future__ import annotations

import re
from typing import Any, Final

import pandera.pandas as pa
from pandera import Check, Column

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

#: A past retention campaign's log in the raw folder, when there was one (the real KKBox files
#: have none): a row per user of the campaign, offered (``treated`` 1) or held out as the
#: control (0) on ``offered_date`` (YYYYMMDD).
CAMPAIGN_FILE: Final = "campaigns.csv"
CAMPAIGN_COLUMNS: Final = ("msno", "campaign_id", "offered_date", "treated")

#: The files of one month's increment, landed in ``<raw>/increments/<YYYY-MM>/``, each with the
#: columns of the original file it continues (all optional; see docs/data-pipeline.md).
INCREMENT_FILES: Final[dict[str, str]] = {
    "members.csv": "members_v3.csv",
    "transactions.csv": "transactions.csv",
    "user_logs.csv": "user_logs.csv",
}
#: The label files an increment may carry: ``labels_<YYYY-MM>.csv``, a cohort's labels once they
#: are known; ``cohort_<YYYY-MM>.csv``, a cohort to score (``sample_submission``'s form).
INCREMENT_LABEL_FILE: Final = re.compile(r"(labels|cohort)_(\d{4}-(?:0[1-9]|1[0-2]))\.csv")
#: Beside an increment's data, optionally: the log of a campaign played in its month
#: (``CAMPAIGN_COLUMNS``), handed over with the month's data. No silver table reads it.
INCREMENT_CAMPAIGN_FILE: Final = CAMPAIGN_FILE


def raw_columns(name: str) -> tuple[str, ...]:
    """The columns of a raw file: one of the eight, or a file of a monthly increment."""
    if name in RAW_FILES:
        return RAW_FILES[name]
    if name == INCREMENT_CAMPAIGN_FILE:
        return CAMPAIGN_COLUMNS
    if name in INCREMENT_FILES:
        return RAW_FILES[INCREMENT_FILES[name]]
    if INCREMENT_LABEL_FILE.fullmatch(name):
        return RAW_FILES["train.csv"]
    raise KeyError(f"{name} is neither a KKBox file nor a file of a monthly increment")


def label_file(name: str) -> tuple[str, bool]:
    """The cohort a label file is of, and whether it holds labels (not a list to score)."""
    if name in LABEL_FILES:
        return LABEL_FILES[name], name != "sample_submission_v2.csv"
    found = INCREMENT_LABEL_FILE.fullmatch(name)
    if found is None:
        raise KeyError(f"{name} is not a label file")
    return found[2], found[1] == "labels"


#: Length of a KKBox user id: 32 random bytes in base64, ending in "=".
MSNO_LENGTH: Final[int] = 44

#: The cohort whose label is unknown: the month the challenge asks to predict.
SCORING_COHORT: Final[str] = LABEL_FILES["sample_submission_v2.csv"]
#: The cohorts the challenge gives labels for: always labelled.
TRAINING_COHORTS: Final[tuple[str, ...]] = tuple(
    cohort for cohort in LABEL_FILES.values() if cohort != SCORING_COHORT
)

#: Values of ``gender`` when known (empty in the raw file when unknown).
GENDERS: Final[tuple[str, ...]] = ("male", "female")

# -- gold: one row per user of a cohort ------------------------------------------------------

#: Listening windows, in days before the cutoff (cumulative: 14 includes 7).
WINDOWS: Final[tuple[int, ...]] = (7, 14, 30, 44, 60)
TRANSACTION_FEATURES: Final[tuple[str, ...]] = (
    "tx_count",
    "tx_count_90",
    "cancel_count",
    "cancel_count_365",
    "days_since_last_cancel",
    "last_is_auto_renew",
    "last_is_cancel",
    "last_payment_method_id",
    "last_plan_days",
    "last_list_price",
    "last_amount_paid",
    "days_to_expiry",
    "days_since_last_transaction",
    "tenure_days",
    "total_paid",
    "total_plan_days",
    "discount_count",
    "free_count",
    "auto_renew_share",
)
LOG_FEATURES: Final[tuple[str, ...]] = (
    *(f"secs_{w}" for w in WINDOWS),
    *(f"active_days_{w}" for w in WINDOWS),
    "songs_30",
    "num_25_30",
    "num_100_30",
    "unq_30",
    "days_since_last_log",
    "log_days_total",
    "secs_total",
)
MEMBER_FEATURES: Final[tuple[str, ...]] = (
    "city",
    "bd",
    "gender",
    "registered_via",
    "registration_age_days",
)
#: The model's input columns, in order: what gold holds besides ``msno`` and the label.
FEATURES: Final[tuple[str, ...]] = TRANSACTION_FEATURES + LOG_FEATURES + MEMBER_FEATURES
#: 1 when the user did not renew within 30 days of expiry; null in the scoring cohort.
LABEL: Final[str] = "is_churn"

#: Features the transformer encodes as integer codes of the categories seen in ``fit``.
CODED_CATEGORICALS: Final[tuple[str, ...]] = (
    "city",
    "gender",
    "registered_via",
    "last_payment_method_id",
)
#: 0/1 features.
FLAGS: Final[tuple[str, ...]] = ("last_is_auto_renew", "last_is_cancel")
#: Features the drift report compares as categories (codes and flags); the rest are numbers.
DRIFT_CATEGORICALS: Final[tuple[str, ...]] = CODED_CATEGORICALS + FLAGS

#: The farthest any gold day count may lie from its cutoff: a century. KKBox began in 2004 and
#: silver's dates lie within 2004..2040, so a real row is thousands of days inside it; beyond it
#: lies a unit error (seconds, or a YYYYMMDD date, sent as days), not a member.
MAX_DAYS: Final[int] = 36_525
#: Seconds in a day: cleaning clips a day's ``total_secs`` to it, so a window of ``w`` days
#: holds at most ``w`` of them (one log row per user and day).
SECONDS_PER_DAY: Final[int] = 86_400

# Features that may be negative or are checked with their own range in ``gold_schema``.
_SIGNED_OR_RANGED = (
    "gender",
    "days_to_expiry",
    "city",
    "bd",
    "registered_via",
    "registration_age_days",
)
# Features that look back from the cutoff: a value below 1 would mean a row on or after it.
_LOOK_BACK = (
    "days_since_last_cancel",
    "days_since_last_transaction",
    "tenure_days",
    "days_since_last_log",
)


def msno_column() -> Column:
    """A KKBox user id: never null, exactly ``MSNO_LENGTH`` characters."""
    return Column("string", Check.str_length(MSNO_LENGTH, MSNO_LENGTH), nullable=False)


def _bounded(low: float, high: float, nullable: bool = True) -> Column:
    return Column("float64", Check.in_range(low, high), nullable=nullable)


def gold_schema(scoring: bool) -> pa.DataFrameSchema:
    """Gold of a labelled cohort, or of a scoring cohort (no label).

    Counts and money have no upper bound (a heavy listener is not an error); day counts, seconds
    of listening and shares have physical ones, which every row the pipeline builds keeps
    (``features`` computes them from cleaned silver).
    """
    columns = {
        name: Column("float64", Check.ge(0), nullable=True)
        for name in FEATURES
        if name not in _SIGNED_OR_RANGED
    }
    columns.update({name: _bounded(1, MAX_DAYS) for name in _LOOK_BACK})
    columns.update({f"active_days_{w}": _bounded(0, w, nullable=False) for w in WINDOWS})
    columns.update({f"secs_{w}": _bounded(0, w * SECONDS_PER_DAY) for w in WINDOWS})
    columns.update({name: Column("float64", Check.isin([0, 1]), nullable=True) for name in FLAGS})
    columns.update(
        msno=msno_column(),
        auto_renew_share=_bounded(0, 1),
        last_plan_days=_bounded(0, MAX_DAYS),
        log_days_total=_bounded(0, MAX_DAYS),
        secs_total=_bounded(0, MAX_DAYS * SECONDS_PER_DAY),
        days_to_expiry=_bounded(-MAX_DAYS, MAX_DAYS),
        city=_bounded(1, 22),
        bd=_bounded(1, 100),
        gender=Column("string", Check.isin(list(GENDERS)), nullable=True),
        registered_via=Column("float64", nullable=True),
        registration_age_days=_bounded(-MAX_DAYS, MAX_DAYS),
    )
    columns[LABEL] = Column("Int8", Check.isin([0, 1]), nullable=scoring)
    return pa.DataFrameSchema(columns, unique=["msno"], strict=True, name="gold features")


#: A real (synthetic) gold row, as the service takes it: an auto-renewing member whose
#: listening has faded.
EXAMPLE_RECORD: Final[dict[str, Any]] = {
    "msno": "+UVtmiuUMYmk9KkMT9kRfzbRGfSs7PDIIkYydmyawzo=",
    "tx_count": 29.0,
    "tx_count_90": 3.0,
    "cancel_count": 0.0,
    "cancel_count_365": 0.0,
    "days_since_last_cancel": None,
    "last_is_auto_renew": 1.0,
    "last_is_cancel": 0.0,
    "last_payment_method_id": 41.0,
    "last_plan_days": 30.0,
    "last_list_price": 119.0,
    "last_amount_paid": 119.0,
    "days_to_expiry": 3.0,
    "days_since_last_transaction": 27.0,
    "tenure_days": 777.0,
    "total_paid": 3569.0,
    "total_plan_days": 780.0,
    "discount_count": 2.0,
    "free_count": 0.0,
    "auto_renew_share": 1.0,
    "secs_7": 0.0,
    "secs_14": 0.0,
    "secs_30": 1884.728,
    "secs_44": 4546.02,
    "secs_60": 8046.956,
    "active_days_7": 0.0,
    "active_days_14": 0.0,
    "active_days_30": 1.0,
    "active_days_44": 3.0,
    "active_days_60": 4.0,
    "songs_30": 10.0,
    "num_25_30": 1.0,
    "num_100_30": 7.0,
    "unq_30": 6.0,
    "days_since_last_log": 24.0,
    "log_days_total": 174.0,
    "secs_total": 576641.332,
    "city": 1.0,
    "bd": 19.0,
    "gender": "female",
    "registered_via": 9.0,
    "registration_age_days": 3329.0,
}
