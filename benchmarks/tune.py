"""Prints the evaluation-cohort quality of a few LightGBM settings next to the oracle's.

    python benchmarks/tune.py                      # the settings' lake and oracle (make demo)
    KKBOX_DATA_DIR=/data/100k KKBOX_LAKE_URI=/data/100k/lake python benchmarks/tune.py

Each row trains the project's pipeline (``churn_transform.modelling.training.fit``: the same splits,
early stopping, calibration) on the training cohort's gold table with one configuration and
scores the evaluation cohort. The first row is the project's default ``TrainConfig``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from sklearn.metrics import log_loss, roc_auc_score

from churn_transform.etl.gold import read_gold
from churn_transform.lake import lake_of
from churn_transform.modelling.training import TrainConfig, evaluate, fit
from churn_transform.schema import LABEL
from churn_transform.settings import Settings
from churn_transform.synthetic.report import oracle_answers

CANDIDATES = {
    "default": {},
    "31 leaves, 50 per leaf, lr 0.03 (before)": dict(
        num_leaves=31,
        min_child_samples=50,
        learning_rate=0.03,
        colsample_bytree=1.0,
        subsample=1.0,
    ),
    "15 leaves, 100 per leaf": dict(num_leaves=15, min_child_samples=100),
    "4 leaves": dict(num_leaves=4, min_child_samples=50),
    "7 leaves, all columns and rows": dict(colsample_bytree=1.0, subsample=1.0),
}


def main() -> None:
    settings = Settings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train-cohort", default="2017-02")
    parser.add_argument("--eval-cohort", default="2017-03")
    args = parser.parse_args()
    lake = lake_of(settings)
    train, _ = read_gold(lake, args.train_cohort)
    held_out, _ = read_gold(lake, args.eval_cohort)
    print(
        f"{len(train):,} training users ({int(train[LABEL].sum()):,} churners), "
        f"{len(held_out):,} evaluation users"
    )
    oracle = oracle_answers(settings.oracle_dir, args.eval_cohort, held_out["msno"])
    if oracle is not None:
        truth, p = held_out[LABEL].astype(int), oracle["churn_probability"]
        print(f"{'oracle':<44}{roc_auc_score(truth, p):>9.4f}{log_loss(truth, p):>10.4f}")
    print(f"{'configuration':<44}{'ROC AUC':>9}{'log loss':>10}{'trees':>7}{'fit s':>7}")
    for name, change in CANDIDATES.items():
        began = time.perf_counter()
        fitted = fit(train, replace(TrainConfig(), **change))
        took = time.perf_counter() - began
        scores = evaluate(fitted.model, held_out, fitted.threshold)
        print(
            f"{name:<44}{scores['roc_auc']:>9.4f}{scores['log_loss']:>10.4f}"
            f"{fitted.best_iteration:>7}{took:>7.1f}"
        )


if __name__ == "__main__":
    main()
