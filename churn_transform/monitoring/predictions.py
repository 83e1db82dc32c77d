"""The batch predictions in the lake: the one place that knows their layout.

One folder per scoring run, ``predictions/<cohort>/<run id>/``:

- ``submission.csv``: the competition's format, ``msno,is_churn`` with is_churn a probability;
- ``scores.parquet``: every user's ``churn_probability`` and ``churn`` decision with the
  ``model_version`` that made them (what realized quality joins with the labels);
- ``gold.json``: the gold table they were made from, its ``version`` and content ``hash``;
- ``estimate.json``: the performance its probabilities let one expect before the labels
  (``churn_transform.monitoring.estimation.CohortEstimate``), written before the scores, so
  scores never stand without it;
- ``campaign.csv``: the campaign list as an action plan (``churn_transform.modelling.plan``),
  which the dashboard lists by this same layout, with ``campaign.json`` its totals
  (``plan.PlanSummary``).

``newest_plan`` reads the plan to act on: the campaign list and totals of the cohort's newest
scoring run (a cohort scored again makes its newest list the one to act on), as the dashboard
shows it and as the synthetic world plays it (``generate --play-campaign``); ``campaign_plans``
every plan of a cohort, newest first, as the plan played may be an older one (a new champion
scored the cohort again after the campaign was played), which its verdict is judged against.

``read_scored`` joins a run's scores with the plans of the gold version they were made from:
the scored cohort the campaign was built from, which the dashboard's what-if recomputes.
"""

from __future__ import annotations

import io
import json
import posixpath
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow.parquet as pq

from churn_transform.lake import Lake
from churn_transform.schema import LABEL

if TYPE_CHECKING:  # plan brings the modelling libraries, which the dashboard reads without
    from churn_transform.modelling.plan import PlanSummary

PREDICTIONS = "predictions"
SUBMISSION = "submission.csv"
#: Beside the submission: every user's probability, decision and the model version that made them.
SCORES = "scores.parquet"
#: Beside the scores: the gold table they were made from (version and content hash).
GOLD = "gold.json"
CAMPAIGN = "campaign.csv"
#: Beside the campaign list: its totals, rule, currency and control share.
CAMPAIGN_SUMMARY = "campaign.json"
#: Beside the scores: the performance estimated from them before the labels (CBPE).
ESTIMATE = "estimate.json"
#: The ``source`` of batch scores among realized quality's predictions (the service's: traffic).
BATCH = "batch"
#: Columns of the scoring frame the campaign list leaves out (they gave its revenue at risk).
_PLAN = ["last_list_price", "last_plan_days"]


@dataclass(frozen=True)
class GoldRead:
    """The gold table a scoring run read: its version in the lake and its content hash."""

    version: str
    hash: str


def write_predictions(
    lake: Lake, cohort: str, run_id: str, scores: pd.DataFrame, model_version: str, gold: GoldRead
) -> str:
    """One scoring run's ``gold.json``, ``scores.parquet`` and ``submission.csv``; the URL of the
    submission. ``scores`` is ``churn_transform.monitoring.scoring.score``'s frame
    (``churn_probability``, ``churn`` the decision). The gold is written first: scores never stand
    without what they were made from (``scored_by`` would not trust them)."""
    answers = scores[["msno", "churn_probability", "churn"]]
    buffer = io.BytesIO()
    answers.assign(model_version=model_version).to_parquet(buffer, index=False)
    lake.write_bytes(json.dumps(asdict(gold)).encode(), PREDICTIONS, cohort, run_id, GOLD)
    lake.write_bytes(buffer.getvalue(), PREDICTIONS, cohort, run_id, SCORES)
    # the competition's columns: its label's name over the probability
    submission = scores[["msno", "churn_probability"]].rename(columns={"churn_probability": LABEL})
    submission_bytes = submission.to_csv(index=False).encode()
    return lake.write_bytes(submission_bytes, PREDICTIONS, cohort, run_id, SUBMISSION)


def write_campaign(lake: Lake, cohort: str, run_id: str, ranked: pd.DataFrame) -> str:
    """The run's ranked campaign list (``modelling.plan.action_plan``); its URL."""
    shown = ranked.drop(columns=_PLAN).to_csv(index=False).encode()
    return lake.write_bytes(shown, PREDICTIONS, cohort, run_id, CAMPAIGN)


def write_beside(lake: Lake, cohort: str, run_id: str, name: str, data: bytes) -> str:
    """A record ``name`` of one scoring run, beside its scores (``ESTIMATE``); its URL."""
    return lake.write_bytes(data, PREDICTIONS, cohort, run_id, name)


def read_scored(lake: Lake, cohort: str, run_id: str) -> pd.DataFrame:
    """One scoring run's scores (every column of ``scores.parquet``) with each user's plan
    columns (``last_list_price``, ``last_plan_days``) from the gold version its ``gold.json``
    names. Raises ``FileNotFoundError`` naming what is missing: the run's scores or record of
    its gold, or that gold version."""
    # imported here: etl.gold brings Dask, which the dashboard would otherwise load for a name
    from churn_transform.etl.gold import table_name

    folder = lake.path_of(lake.url(PREDICTIONS, cohort, run_id))
    for name in (SCORES, GOLD):
        if not lake.fs.exists(posixpath.join(folder, name)):
            raise FileNotFoundError(f"scoring run {cohort}/{run_id} has no {name}")
    read = json.loads(lake.fs.cat_file(posixpath.join(folder, GOLD)))
    table = table_name(cohort)
    if not lake.has_version("gold", table, read["version"]):
        raise FileNotFoundError(f"gold/{table} version {read['version']} is no longer in the lake")
    plans = pd.read_parquet(
        lake.version_url("gold", table, read["version"]),
        columns=["msno", *_PLAN],
        storage_options=lake.storage_options or None,
    )
    scores = pd.read_parquet(posixpath.join(folder, SCORES), filesystem=lake.fs)
    return scores.merge(plans, on="msno", how="left", validate="one_to_one")


def read_beside(lake: Lake, cohort: str, name: str) -> list[bytes]:
    """The record ``name`` of every scoring run of ``cohort`` that has one, oldest run first."""
    return [lake.fs.cat_file(path) for path in _runs_with(lake, cohort, name)]


def _runs_with(lake: Lake, cohort: str, name: str) -> list[str]:
    """The paths of the file ``name`` of every scoring run of ``cohort`` that has one, oldest
    first (by the time the file was written)."""
    folder = lake.path_of(lake.url(PREDICTIONS, cohort))
    return sorted(lake.fs.glob(posixpath.join(folder, "*", name)), key=lake.fs.modified)


def newest_plan(lake: Lake, cohort: str) -> tuple[pd.DataFrame, PlanSummary] | None:
    """The campaign list (``CAMPAIGN``) of the newest scoring run of ``cohort`` and its totals
    (``CAMPAIGN_SUMMARY``); None when no run of the cohort wrote one. Raises
    ``FileNotFoundError`` naming a newest list without its totals."""
    lists = _runs_with(lake, cohort, CAMPAIGN)
    return _plan_at(lake, lists[-1]) if lists else None


def campaign_plans(lake: Lake, cohort: str) -> list[tuple[pd.DataFrame, PlanSummary]]:
    """Every campaign plan of ``cohort``, newest first, as ``newest_plan`` reads one. A cohort
    scored again by a new champion has a plan per run, and the one played may not be the
    newest (``monitoring.verdict.played_plan``)."""
    return [_plan_at(lake, path) for path in reversed(_runs_with(lake, cohort, CAMPAIGN))]


def _plan_at(lake: Lake, path: str) -> tuple[pd.DataFrame, PlanSummary]:
    """The list at ``path`` and the totals beside it; ``FileNotFoundError`` without them."""
    summary = _summary_beside(lake, posixpath.dirname(path))
    if summary is None:
        raise FileNotFoundError(f"{lake.fs.unstrip_protocol(path)} has no {CAMPAIGN_SUMMARY}")
    return read_campaign_list(lake, path), summary


def read_campaign_list(lake: Lake, path: str) -> pd.DataFrame:
    """A campaign list ``score`` wrote (``CAMPAIGN``): every subscriber of the cohort, ranked,
    an empty cell read as missing (a reason or an uplift that is not there)."""
    with lake.fs.open(path, "rb") as handle:
        return pd.read_csv(handle, dtype={"msno": str}, keep_default_na=False, na_values=[""])


def _summary_beside(lake: Lake, run: str) -> PlanSummary | None:
    """The plan's totals (``CAMPAIGN_SUMMARY``) in the scoring run's folder ``run``, or None."""
    from churn_transform.modelling.plan import PlanSummary

    path = posixpath.join(run, CAMPAIGN_SUMMARY)
    if not lake.fs.exists(path):
        return None
    return PlanSummary.from_json(lake.fs.cat_file(path).decode())


def scored_by(
    lake: Lake,
    cohort: str,
    version: str,
    gold_hash: str,
    planned: Callable[[PlanSummary], bool] | None = None,
) -> bool:
    """Whether a batch score of ``cohort`` by model ``version`` from the gold whose content hash
    is ``gold_hash`` is already in the lake (gold rebuilt from changed data, or a score that
    does not say what it read, is scored again); with ``planned``, only a run whose campaign
    plan (``CAMPAIGN_SUMMARY``) it accepts counts (``modelling.plan.planned_alike``)."""
    folder = lake.path_of(lake.url(PREDICTIONS, cohort))
    for path in lake.fs.glob(posixpath.join(folder, "*", SCORES)):
        run = posixpath.dirname(path)
        read = posixpath.join(run, GOLD)
        if not lake.fs.exists(read) or json.loads(lake.fs.cat_file(read)).get("hash") != gold_hash:
            continue
        if planned is not None:
            summary = _summary_beside(lake, run)
            if summary is None or not planned(summary):
                continue
        made = pq.read_table(path, columns=["model_version"], filesystem=lake.fs)
        if made.num_rows and made["model_version"][0].as_py() == version:
            return True
    return False


def batch_scores(lake: Lake, cohort: str) -> pd.DataFrame:
    """Every batch score of ``cohort`` with the version that made it, oldest run first, as
    ``monitoring.quality.realized_quality`` takes predictions (``source`` ``BATCH``, ``ts``
    the run's order); an empty frame when the cohort was never scored."""
    folder = lake.path_of(lake.url(PREDICTIONS, cohort))
    paths = sorted(lake.fs.glob(posixpath.join(folder, "*", SCORES)), key=lake.fs.modified)
    frames = [pd.read_parquet(path, filesystem=lake.fs) for path in paths]
    if not frames:
        return pd.DataFrame()
    # a later run of the same version replaces an earlier one (the last answer counts)
    return pd.concat(
        [f.assign(source=BATCH, ts=i) for i, f in enumerate(frames)], ignore_index=True
    )
