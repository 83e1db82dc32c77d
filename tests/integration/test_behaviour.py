"""Behavioural tests of the trained champion (in the manner of Made-With-ML's): directional,
invariance and minimum functionality, on real gold rows and hand-made clear cases.

A tree ensemble is monotone in a feature only where it was constrained to be; these tests hold
the direction for every row within a small tolerance, and almost every row exactly.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest

from churn_transform.modelling.artifact import load_model
from churn_transform.modelling.model import ChurnModel
from churn_transform.schema import EXAMPLE_RECORD, FEATURES, WINDOWS
from churn_transform.serving.runtime import Champion as Served
from churn_transform.serving.runtime import RequestRecord
from tests.conftest import Champion

TOLERANCE = 0.02  # the largest fall of a probability a directional change may cause
FEW = 0.02  # the largest share of rows it may lower at all


@pytest.fixture(scope="module")
def model(champion: Champion) -> ChurnModel:
    mlflow.set_tracking_uri(champion.env["MLFLOW_TRACKING_URI"])
    folder = mlflow.artifacts.download_artifacts("models:/kkbox-churn@champion")
    return load_model(folder)


@pytest.fixture(scope="module")
def rows(champion: Champion) -> pd.DataFrame:
    return champion.gold("2017-03")[list(FEATURES)].reset_index(drop=True)


def _risk(model: ChurnModel, rows: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(rows)[:, 1]


def _no_lower(model: ChurnModel, before: pd.DataFrame, after: pd.DataFrame) -> None:
    change = _risk(model, after) - _risk(model, before)
    assert change.min() > -TOLERANCE, f"a row's risk fell by {-change.min():.3f}"
    assert np.mean(change < -1e-9) < FEW
    assert np.median(change) >= 0 and change.mean() > 0


def test_turning_auto_renew_off_does_not_lower_the_risk(
    model: ChurnModel, rows: pd.DataFrame
) -> None:
    renewing = rows[rows["last_is_auto_renew"] == 1]
    _no_lower(model, renewing, renewing.assign(last_is_auto_renew=0.0))


def test_a_new_cancel_does_not_lower_the_risk(model: ChurnModel, rows: pd.DataFrame) -> None:
    cancelled = rows.assign(
        cancel_count=rows["cancel_count"] + 1,
        cancel_count_365=rows["cancel_count_365"] + 1,
        days_since_last_cancel=1.0,
    )
    _no_lower(model, rows, cancelled)


def _silent_for_two_weeks(rows: pd.DataFrame) -> pd.DataFrame:
    """The same users, had they played nothing in the last 14 days before the cutoff."""
    quiet = rows.copy()
    secs, days = rows["secs_14"], rows["active_days_14"]
    kept = ((rows["secs_30"] - secs) / rows["secs_30"]).clip(0, 1).fillna(0)
    for window in WINDOWS[2:]:
        quiet[f"secs_{window}"] -= secs
        quiet[f"active_days_{window}"] -= days
    quiet[["secs_7", "secs_14", "active_days_7", "active_days_14"]] = 0.0
    for column in ("songs_30", "num_25_30", "num_100_30", "unq_30"):
        quiet[column] = (rows[column] * kept).round()
    quiet["secs_total"] -= secs
    quiet["log_days_total"] -= days
    quiet["days_since_last_log"] = np.fmax(rows["days_since_last_log"], 15)
    return quiet


def test_cutting_listening_does_not_lower_the_risk(model: ChurnModel, rows: pd.DataFrame) -> None:
    listening = rows[rows["secs_14"] > 0]
    _no_lower(model, listening, _silent_for_two_weeks(listening))


def test_the_user_id_does_not_change_the_answer(model: ChurnModel) -> None:
    served = Served(model, "test", {"registry_version": "1"}, {"metrics": {"threshold": 0.5}})
    ids = ["+UVtmiuUMYmk9KkMT9kRfzbRGfSs7PDIIkYydmyawzo=", "a" * 43 + "=", "Z" * 43 + "="]
    answers = served.predict(
        [RequestRecord.model_validate({**EXAMPLE_RECORD, "msno": i}) for i in ids]
    )
    assert len({a.churn_probability for a in answers}) == 1
    assert [a.msno for a in answers] == ids


LOYAL: dict[str, Any] = {
    **EXAMPLE_RECORD,
    "last_is_auto_renew": 1.0,
    "auto_renew_share": 1.0,
    "tenure_days": 900.0,
    "secs_7": 7 * 5000.0,
    "secs_14": 14 * 5000.0,
    "secs_30": 30 * 5000.0,
    "secs_44": 44 * 5000.0,
    "secs_60": 60 * 5000.0,
    "active_days_7": 7.0,
    "active_days_14": 14.0,
    "active_days_30": 30.0,
    "active_days_44": 44.0,
    "active_days_60": 60.0,
    "songs_30": 900.0,
    "num_100_30": 700.0,
    "unq_30": 500.0,
    "days_since_last_log": 1.0,
}
LEAVING: dict[str, Any] = {
    **EXAMPLE_RECORD,
    "last_is_auto_renew": 0.0,
    "auto_renew_share": 0.2,
    "last_is_cancel": 1.0,
    "cancel_count": 3.0,
    "cancel_count_365": 3.0,
    "days_since_last_cancel": 3.0,
    "last_amount_paid": 0.0,
    "free_count": 1.0,
    "tenure_days": 40.0,
    "tx_count": 2.0,
    **{f"secs_{w}": 0.0 for w in WINDOWS},
    **{f"active_days_{w}": 0.0 for w in WINDOWS},
    "songs_30": 0.0,
    "num_25_30": 0.0,
    "num_100_30": 0.0,
    "unq_30": 0.0,
    "days_since_last_log": None,
}


@pytest.mark.parametrize(
    ("case", "low", "high"), [(LOYAL, 0.0, 0.1), (LEAVING, 0.5, 1.0)], ids=["loyal", "leaving"]
)
def test_clear_cases_get_clear_answers(
    model: ChurnModel, case: dict[str, Any], low: float, high: float
) -> None:
    risk = _risk(model, pd.DataFrame([case])[list(FEATURES)])[0]
    assert low <= risk <= high, f"risk {risk:.3f}"
