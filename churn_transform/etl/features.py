"""Per-user features of one cohort, from the silver rows of a bucket of users: pure functions.

Everything is computed from rows dated strictly before ``cutoff`` (the first day of the cohort
month): each function first drops later rows (``log_features`` cuts them off each user's run),
so no later row can leak in.
Gold holds counts, sums, windows and "last" values; row-level transformations that serving
must repeat (imputation, ratios, encodings) belong to the shared transformer, not here.

"Last" transaction values come from the last row by (date, subscriptions before cancels),
ignoring 0-day rows, which share their day with a real payment and have no order against it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churn_transform.dates import month_bounds
from churn_transform.schema import FEATURES, LABEL, LOG_FEATURES, WINDOWS


def cutoff_of(cohort: str) -> pd.Timestamp:
    """The first day of the cohort month: features use rows strictly before it."""
    first, _ = month_bounds(cohort)
    return pd.Timestamp(np.datetime64(first, "D"))


def _days_before(cutoff: pd.Timestamp, dates: pd.Series) -> pd.Series:
    return (cutoff - dates).dt.days


def transaction_features(transactions: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """TRANSACTION_FEATURES per user, from rows dated before ``cutoff`` only."""
    past = transactions[transactions["transaction_date"] < cutoff]
    past = past.sort_values(["msno", "transaction_date", "is_cancel"], kind="stable")
    ago = _days_before(cutoff, past["transaction_date"])
    cancel = past["is_cancel"] == 1
    paying = ~cancel & (past["payment_plan_days"] > 0)
    sums = pd.DataFrame(
        {
            "msno": past["msno"],
            "tx_count": 1,
            "tx_count_90": ago <= 90,
            "cancel_count": cancel,
            "cancel_count_365": cancel & (ago <= 365),
            "total_paid": past["actual_amount_paid"].where(~cancel, 0),
            "total_plan_days": past["payment_plan_days"].where(~cancel, 0),
            "discount_count": paying & (past["actual_amount_paid"] < past["plan_list_price"]),
            "free_count": paying & (past["actual_amount_paid"] == 0),
            "auto_renew_share": past["is_auto_renew"],
        }
    ).groupby("msno", sort=False)
    features = sums.sum().astype("float64")
    features["auto_renew_share"] = sums["auto_renew_share"].mean()
    features["days_since_last_transaction"] = ago.groupby(past["msno"], sort=False).min()
    features["tenure_days"] = ago.groupby(past["msno"], sort=False).max()
    features["days_since_last_cancel"] = ago[cancel].groupby(past["msno"][cancel]).min()
    real = past[(past["payment_plan_days"] > 0) | cancel]
    last = real.drop_duplicates("msno", keep="last").set_index("msno")
    features["last_is_auto_renew"] = last["is_auto_renew"]
    features["last_is_cancel"] = last["is_cancel"]
    features["last_payment_method_id"] = last["payment_method_id"]
    paid = real[real["is_cancel"] == 0].drop_duplicates("msno", keep="last").set_index("msno")
    features["last_plan_days"] = paid["payment_plan_days"]
    features["last_list_price"] = paid["plan_list_price"]
    features["last_amount_paid"] = paid["actual_amount_paid"]
    # The cohort is defined by the expiry of the last row of all (0-day rows included).
    final = past.drop_duplicates("msno", keep="last").set_index("msno")
    features["days_to_expiry"] = (final["membership_expire_date"] - cutoff).dt.days
    return features.astype("float64")


def user_codes(msno: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Each row's user as an integer code into the returned array of distinct ids (-1: none).

    Silver is read with ``msno`` dictionary-encoded, so this costs nothing there; plain strings
    are hashed once.
    """
    column = msno.combine_chunks() if isinstance(msno, pa.ChunkedArray) else msno
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    indices = column.indices if column.null_count == 0 else pc.fill_null(column.indices, -1)
    return indices.to_numpy(zero_copy_only=False), column.dictionary


def _numbers(column: pa.ChunkedArray) -> np.ndarray:
    """A numeric column as numpy (nulls as 0), then one 0 for ``_run_sums``' sake."""
    values = (column if column.null_count == 0 else pc.fill_null(column, 0)).to_numpy()
    return np.append(values, np.zeros(1, values.dtype))


def _run_sums(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``values[low[r]:high[r]].sum()`` for every run ``r``, in one sequential pass.

    ``values`` ends with an extra 0 (see ``_numbers``), so that ``high`` may be its last index.
    """
    bounds = np.empty(2 * len(low), dtype=np.int64)
    bounds[0::2], bounds[1::2] = low, high
    sums = np.add.reduceat(values, bounds)[0::2] if len(low) else values[:0]
    return np.where(high > low, sums, 0)  # reduceat gives values[low] for an empty run


def log_features(logs: pd.DataFrame | pa.Table, cutoff: pd.Timestamp) -> pd.DataFrame:
    """LOG_FEATURES per user, from days before ``cutoff`` only.

    Silver holds each user's days together and in date order, so a user's rows are one run and
    a window's days are the run's tail: each feature is one ``searchsorted`` for where the tail
    starts and one sequential sum, no hashing and no grouping. Days on or after the cutoff end
    each run and are cut off the same way, without copying the table. Rows in any other order
    are sorted first. Accepts a pandas frame or an Arrow table with the silver columns (``msno``
    plain or dictionary-encoded).
    """
    table = logs if isinstance(logs, pa.Table) else pa.Table.from_pandas(logs, preserve_index=False)
    if table["date"].null_count:  # a row without a day is in no window
        table = table.filter(pc.is_valid(table["date"]))
    codes, ids = user_codes(table["msno"])
    days = pc.cast(pc.cast(table["date"], pa.date32()), pa.int32()).to_numpy()
    cutoff_day = (cutoff.to_datetime64() - np.datetime64(0, "D")) // np.timedelta64(1, "D")
    ago = cutoff_day - days.astype(np.int64)  # 1 or more before the cutoff, else on or after it
    if (codes < 0).any():  # rows without an id belong to no user
        known = codes >= 0
        table, codes, ago = table.filter(pa.array(known)), codes[known], ago[known]
    user = codes.astype(np.int64)
    key = user * 2**32 - ago  # by user, then by date (|ago| < 2**31)
    if len(key) > 1 and (key[1:] < key[:-1]).any():
        order = np.argsort(key, kind="stable")
        table, ago, key, user = table.take(order), ago[order], key[order], user[order]
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]]) if len(user) else user
    users = user[starts]
    # Each run's rows dated on or after the cutoff are its last ones: they are cut off here
    # (no copy of the table), and users with no earlier day are dropped.
    ends = np.searchsorted(key, users * 2**32 - 1, side="right")
    before = ends > starts
    starts, ends, users = starts[before], ends[before], users[before]

    def tail(window: int) -> np.ndarray:  # each run's first row within ``window`` days
        return np.minimum(np.searchsorted(key, users * 2**32 - window, side="left"), ends)

    secs = _numbers(table["total_secs"])
    columns = {"log_days_total": ends - starts, "secs_total": _run_sums(secs, starts, ends)}
    tails = {window: tail(window) for window in WINDOWS}
    for window, first in tails.items():
        columns[f"secs_{window}"] = _run_sums(secs, first, ends)
        columns[f"active_days_{window}"] = ends - first
    first = tails[30]
    bands = ("num_25", "num_50", "num_75", "num_985", "num_100")
    columns["songs_30"] = _run_sums(np.add.reduce([_numbers(table[b]) for b in bands]), first, ends)
    for name, column in (("num_25_30", "num_25"), ("num_100_30", "num_100"), ("unq_30", "num_unq")):
        columns[name] = _run_sums(_numbers(table[column]), first, ends)
    columns["days_since_last_log"] = ago[ends - 1] if len(users) else ago[:0]
    return pd.DataFrame(
        {name: columns[name] for name in LOG_FEATURES},
        index=pd.Index(ids.take(pa.array(users)).to_pylist(), dtype=object),
    ).astype("float64")


def member_features(members: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    profile = members.drop_duplicates("msno", keep="last").set_index("msno")
    return pd.DataFrame(
        {
            "city": profile["city"].astype("float64"),
            "bd": profile["bd"].astype("float64"),
            "gender": profile["gender"].astype("string"),
            "registered_via": profile["registered_via"].astype("float64"),
            "registration_age_days": _days_before(cutoff, profile["registration_init_time"]),
        }
    )


def _coded(rows: pd.DataFrame, ids: pd.Index) -> pd.DataFrame:
    codes = ids.get_indexer(pd.Index(rows["msno"]))
    inside = codes >= 0
    return rows[inside].assign(msno=codes[inside])


def _cohort_rows(logs: pd.DataFrame | pa.Table, ids: pd.Index) -> pa.Table:
    """The rows of the users in ``ids``: membership is decided once per distinct id."""
    table = logs if isinstance(logs, pa.Table) else pa.Table.from_pandas(logs, preserve_index=False)
    codes, distinct = user_codes(table["msno"])
    wanted = pa.array(ids.astype(str).to_numpy(), pa.string())
    member = pc.is_in(pc.cast(distinct, pa.string()), value_set=wanted).to_numpy(
        zero_copy_only=False
    )
    keep = np.append(member, False)[codes]  # code -1 (no id) indexes the appended False
    return table.filter(pa.array(keep))


def cohort_features(
    labels: pd.DataFrame,
    transactions: pd.DataFrame,
    logs: pd.DataFrame | pa.Table,
    members: pd.DataFrame,
    cohort: str,
    cutoff: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The gold rows of one bucket: one row per labelled user of ``cohort``, FEATURES + label.

    ``cutoff`` overrides the first day of the cohort month only to demonstrate leakage (a later
    cutoff lets the month's own renewals in); the pipeline never passes it.
    """
    cutoff = cutoff_of(cohort) if cutoff is None else cutoff
    users = labels[labels["cohort"] == cohort].drop_duplicates("msno").set_index("msno")
    ids = pd.Index(users.index)
    # Only the cohort's rows, with ids as integer codes: grouping by ints, not by 44-byte
    # strings, is what makes the per-user aggregations cheap.
    listening = log_features(_cohort_rows(logs, ids), cutoff)
    listening.index = ids.get_indexer(listening.index)
    parts = [
        transaction_features(_coded(transactions, ids), cutoff),
        listening,
        member_features(_coded(members, ids), cutoff),
    ]
    gold = users[[LABEL]].reset_index(drop=True)
    for part in parts:
        gold = gold.join(part)
    gold.index = ids
    no_logs = gold["log_days_total"].isna()
    counts = [c for c in LOG_FEATURES if c != "days_since_last_log"]
    gold.loc[no_logs, counts] = 0.0  # no log row at all means nothing was played
    gold = gold.rename_axis("msno").reset_index()[["msno", *FEATURES, LABEL]]
    return gold.astype({c: "float64" for c in FEATURES if c != "gender"}).sort_values("msno")
