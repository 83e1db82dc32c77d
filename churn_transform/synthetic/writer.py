"""File formatting: a chunk's frames become rows of the real KKBox CSVs, quirks included."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churn_transform.dates import day, to_yyyymmdd
from churn_transform.schema import RAW_FILES

V2_START = day("2017-03-01")
FILES_END = day("2017-04-01")
_EPOCH_QUIRK_BEFORE = day("2016-06-01")


def transactions_files(
    rng: np.random.Generator, transactions: pd.DataFrame, msno: np.ndarray
) -> dict[str, pd.DataFrame]:
    """transactions.csv and transactions_v2.csv rows, and the hidden rows after March 2017.

    v2 holds March 2017, 3% of February's rows again (exact duplicates) and 0.2% of January and
    February rows that arrived late (absent from v1). A few old v1 rows expire on 19700101.
    """
    rows = pd.DataFrame(
        {
            "msno": msno[transactions["user"].to_numpy()],
            "payment_method_id": transactions["method"].to_numpy(),
            "payment_plan_days": transactions["plan"].to_numpy(),
            "plan_list_price": transactions["price"].to_numpy(),
            "actual_amount_paid": transactions["paid"].to_numpy(),
            "is_auto_renew": transactions["auto"].to_numpy(),
            "transaction_date": to_yyyymmdd(transactions["date"]),
            "membership_expire_date": to_yyyymmdd(transactions["expire"]),
            "is_cancel": transactions["cancel"].to_numpy(),
        }
    )
    date = transactions["date"].to_numpy()
    expire = transactions["expire"].to_numpy()
    draw = rng.random(len(rows))
    epoch = (date < _EPOCH_QUIRK_BEFORE) & (expire < _EPOCH_QUIRK_BEFORE) & (draw < 0.0003)
    rows.loc[epoch, "membership_expire_date"] = 19700101
    late = (date >= day("2017-01-01")) & (date < V2_START) & (draw > 0.998)
    duplicate = (date >= day("2017-02-01")) & (date < V2_START) & (draw < 0.03)
    v1 = rows[(date < V2_START) & ~late]
    v2 = pd.concat([rows[(date >= V2_START) & (date < FILES_END)], rows[late], rows[duplicate]])
    return {
        "transactions.csv": _shuffled(rng, v1),
        "transactions_v2.csv": _shuffled(rng, v2),
        "future": rows[date >= FILES_END],
    }


def user_logs_files(
    rng: np.random.Generator, logs: pd.DataFrame, msno: np.ndarray
) -> dict[str, pd.DataFrame]:
    """user_logs.csv (before March 2017) and user_logs_v2.csv (March), with total_secs outliers.

    v1: 0.016% of rows negative (down to about -9.2e15), a few over 1e12; v2: 0.023% over 86,400.
    """
    rows = logs.sort_values(["date", "user"], kind="stable")
    date = rows["date"].to_numpy()
    out = pd.DataFrame({"msno": msno[rows["user"].to_numpy()], "date": to_yyyymmdd(date)})
    for column in RAW_FILES["user_logs.csv"][2:]:
        out[column] = rows[column].to_numpy()
    draw = rng.random(len(out))
    v1 = date < V2_START
    negative = v1 & (draw < 0.00016)
    out.loc[negative, "total_secs"] = -np.round(10 ** rng.uniform(0, 15.96, int(negative.sum())), 3)
    huge = v1 & (draw > 1 - 2e-7)
    out.loc[huge, "total_secs"] = np.round(10 ** rng.uniform(12, 13, int(huge.sum())), 3)
    long_day = ~v1 & (draw < 0.00023)
    out.loc[long_day, "total_secs"] = np.round(rng.uniform(86_400, 9.2e6, int(long_day.sum())), 3)
    return {"user_logs.csv": out[v1], "user_logs_v2.csv": out[~v1]}


def _shuffled(rng: np.random.Generator, rows: pd.DataFrame) -> pd.DataFrame:
    return rows.iloc[rng.permutation(len(rows))]
