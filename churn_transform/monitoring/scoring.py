"""Batch scoring of a cohort's gold table: every user's probability, decision, top reasons, plan
price and segments, one Dask task per part file.

The tasks call this module's functions: a Dask worker imports them from the installed library
(a function of the ``steps`` folder would not import where a worker runs).
"""

from __future__ import annotations

import posixpath

import dask
import pandas as pd
import pyarrow.parquet as pq

from churn_transform.etl.gold import build_gold
from churn_transform.lake import Lake
from churn_transform.modelling.explanation import explain
from churn_transform.modelling.model import ChurnModel
from churn_transform.modelling.segments import segment_labels
from churn_transform.modelling.uplift import UpliftModel
from churn_transform.schema import FEATURES

#: The readable reasons given for each user, largest first.
REASONS = 3


def score_part(
    lake: Lake, path: str, model: ChurnModel, uplift: UpliftModel | None = None
) -> pd.DataFrame:
    """The scores of the users of one part file of a gold table (none for a part without), with
    each user's ``uplift`` when an uplift model is given."""
    gold = pq.read_table(path, filesystem=lake.fs).to_pandas()
    features = gold[list(FEATURES)]
    probability = model.predict_proba(features)[:, 1]
    top = explain(model, features).top(REASONS, features)
    reasons = {f"reason_{i + 1}": [r[i] if i < len(r) else "" for r in top] for i in range(REASONS)}
    scores = pd.DataFrame(
        {
            "msno": gold["msno"].astype(str),
            "churn_probability": probability,
            "churn": probability >= model.threshold_,
            **reasons,
            "last_list_price": gold["last_list_price"],
            "last_plan_days": gold["last_plan_days"],
            "days_to_expiry": gold["days_to_expiry"],
        }
    ).join(segment_labels(gold))
    if uplift is not None:
        scores["uplift"] = uplift.predict(features) if len(features) else []
    return scores


def score(
    lake: Lake, cohort: str, model: ChurnModel, uplift: UpliftModel | None = None
) -> pd.DataFrame:
    """Scores, decisions, top reasons, plan prices and days to expiry of every user of the
    cohort's gold table (built first if missing), by user id; with their ``uplift`` when an
    uplift model is given."""
    url, _, _ = build_gold(lake, cohort)
    parts = sorted(lake.fs.glob(posixpath.join(lake.path_of(url), "part-*.parquet")))
    tasks = [dask.delayed(score_part)(lake, path, model, uplift) for path in parts]
    return pd.concat(dask.compute(*tasks), ignore_index=True).sort_values("msno", ignore_index=True)
