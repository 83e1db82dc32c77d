"""Entry point ``score``: batch churn probabilities for a cohort with no labels, with Dask.

Reads: the champion (``models:/<name>@<alias>``) and the gold table of ``--cohort`` (built first
if missing, from the current silver). Produces: ``predictions/<cohort>/<run id>/submission.csv``
in the lake, in the competition's format (``msno,is_churn`` with is_churn a probability); on
synthetic data, the AUC and log loss of those scores against the cohort's hidden labels.
"""

from __future__ import annotations

import argparse
import posixpath

import dask
import mlflow
import pandas as pd
import pyarrow.parquet as pq
from sklearn.metrics import log_loss, roc_auc_score

from churn_transform.gold import build_gold
from churn_transform.lake import Lake
from churn_transform.schema import FEATURES
from churn_transform.settings import Settings
from churn_transform.synthetic.report import oracle_answers
from steps._cli import (
    cohort,
    dask_cluster,
    lake_of,
    load_registered,
    refusals,
    start,
    tracked_run,
)


def _score_part(lake: Lake, path: str, model: object) -> pd.DataFrame:
    gold = pq.read_table(path, filesystem=lake.fs).to_pandas()
    probability = model.predict_proba(gold[list(FEATURES)])[:, 1]  # type: ignore[attr-defined]
    return pd.DataFrame({"msno": gold["msno"].astype(str), "is_churn": probability})


def score(lake: Lake, cohort: str, model: object) -> pd.DataFrame:
    """Scores of every user of the cohort's gold table, one Dask task per part file."""
    url, _, _ = build_gold(lake, cohort)
    parts = sorted(lake.fs.glob(posixpath.join(lake.path_of(url), "part-*.parquet")))
    tasks = [dask.delayed(_score_part)(lake, path, model) for path in parts]
    return pd.concat(dask.compute(*tasks), ignore_index=True).sort_values("msno", ignore_index=True)


def hidden_label_quality(settings: Settings, cohort: str, scores: pd.DataFrame) -> dict[str, float]:
    """AUC and log loss against the generator's hidden labels of the cohort, when there are."""
    hidden = oracle_answers(settings.oracle_dir, cohort, scores["msno"])
    if hidden is None or hidden["is_churn"].nunique() < 2:
        return {}
    labels = hidden["is_churn"]
    return {
        "hidden_label_roc_auc": roc_auc_score(labels, scores["is_churn"]),
        "hidden_label_log_loss": log_loss(labels, scores["is_churn"]),
    }


def main(argv: list[str] | None = None) -> None:
    settings = start("score")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cohort", type=cohort, required=True)
    args = parser.parse_args(argv)
    lake = lake_of(settings)
    with tracked_run(settings, f"score-{args.cohort}") as run, dask_cluster(settings):
        uri = f"models:/{settings.model_name}@{settings.champion_alias}"
        model = load_registered(uri)
        with refusals("score"):
            scores = score(lake, args.cohort, model)
        target = lake.write_bytes(
            scores.to_csv(index=False).encode(),
            "predictions",
            args.cohort,
            run.info.run_id,
            "submission.csv",
        )
        mlflow.log_params({"cohort": args.cohort, "model_uri": uri, "submission": target})
        mlflow.log_metrics({"rows": len(scores), "mean_probability": scores["is_churn"].mean()})
        quality = hidden_label_quality(settings, args.cohort, scores)
        if quality:
            mlflow.log_metrics(quality)
            print(quality)
    print(f"scored {len(scores):,} users of {args.cohort} with {uri}: {target}")


if __name__ == "__main__":
    main()
