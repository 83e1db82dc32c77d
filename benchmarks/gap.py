"""Prints the distance to the oracle of the training settings tried to close it (issue #33).

    KKBOX_DATA_DIR=/data/100k python benchmarks/gap.py     # a lake and oracle of `main -P users=N`
    KKBOX_DATA_DIR=/data/100k python benchmarks/gap.py --only default

Each row trains the project's pipeline (``churn_transform.modelling.training.fit``: the same
splits, early stopping and calibration as ``train``) on the training cohort's gold table with one
change to the default ``TrainConfig`` and scores the evaluation cohort: ROC AUC, the oracle's,
the gap, and log loss against the oracle's. The row ``default`` is what ``train`` runs.
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

#: The trees before issue #33, then each lever added in turn; the last is the default. The rows'
#: own splits are the default's (cross-fitting): the held-out slices are gone with it.
LEVERS: dict[str, dict[str, float | int]] = {
    "7 leaves, 200 a leaf, lr 0.02 (the trees before)": dict(
        num_leaves=7, min_child_samples=200, learning_rate=0.02
    ),
    "stumps, 20 a leaf, lr 0.1": dict(learning_rate=0.1),
    "default": {},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train-cohort", default="2017-02")
    parser.add_argument("--eval-cohort", default="2017-03")
    parser.add_argument("--only", help="one row's name")
    args = parser.parse_args()
    settings = Settings()
    lake = lake_of(settings)
    train, _ = read_gold(lake, args.train_cohort)
    judged, _ = read_gold(lake, args.eval_cohort)
    oracle = oracle_answers(settings.oracle_dir, args.eval_cohort, judged["msno"])
    if oracle is None:
        raise SystemExit(f"no oracle under {settings.oracle_dir}: the gap needs synthetic data")
    truth, best = judged[LABEL].astype(int), oracle["churn_probability"]
    oracle_auc, oracle_loss = roc_auc_score(truth, best), log_loss(truth, best)
    print(
        f"{len(train):,} training users ({int(train[LABEL].sum()):,} churners), "
        f"{len(judged):,} judged; oracle ROC AUC {oracle_auc:.4f}, log loss {oracle_loss:.4f}"
    )
    print(f"{'settings':<54}{'ROC AUC':>9}{'gap':>8}{'log loss':>10}{'vs oracle':>11}{'fit s':>7}")
    for name, change in LEVERS.items():
        if args.only and name != args.only:
            continue
        began = time.perf_counter()
        fitted = fit(train, replace(TrainConfig(), **change))
        scores = evaluate(fitted.model, judged, fitted.threshold)
        print(
            f"{name:<54}{scores['roc_auc']:>9.4f}{oracle_auc - scores['roc_auc']:>8.4f}"
            f"{scores['log_loss']:>10.4f}{scores['log_loss'] / oracle_loss - 1:>+11.1%}"
            f"{time.perf_counter() - began:>7.0f}"
        )


if __name__ == "__main__":
    main()
