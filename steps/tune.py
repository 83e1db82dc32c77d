"""Entry point ``tune``: a seeded Optuna study of ``train``'s hyperparameters.

Reads: the current gold tables of ``--train-cohort`` (the users ``train`` fits on: with
``--holdout``, those it does not hold out) and ``train``'s defaults in MLproject, which are trial
0 and keep every value the study does not search. Produces: an MLflow run with a nested run per
trial (its values as parameters; ``validation_roc_auc``, on ``train``'s out-of-fold scores of the
training cohort, and ``best_iteration`` as metrics), the best values as
``best_<name>`` parameters, the best and the defaults' scores as metrics, ``study.json`` (every
trial) and the tag ``train_flags``; it prints the best values as the ``-P`` flags of
``mlflow run . -e train``. The evaluation cohort is not read: judge the flags with ``train``.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import asdict

import mlflow

from churn_transform.modelling.training import TrainConfig
from churn_transform.modelling.tuning import SCORE, Study, Trial, training_rows, tune
from steps._cli import PROJECT, cohorts, lake_of, positive, read_training, share, start, tracked_run
from steps._mlproject import entry_point


def train_defaults() -> TrainConfig:
    """The configuration ``mlflow run . -e train`` fits with no ``-P`` flags: MLproject's
    defaults, typed as ``train``'s command line types them."""
    defaults = {name: p["default"] for name, p in entry_point(PROJECT, "train").parameters.items()}
    fields = asdict(TrainConfig())
    return TrainConfig(**{name: type(fields[name])(defaults[name]) for name in fields})


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train-cohort", type=cohorts, required=True)
    parser.add_argument("--holdout", type=share, required=True)
    parser.add_argument("--budget", type=float, required=True, help="seconds")
    parser.add_argument("--max-trials", type=positive, required=True)
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args(argv)
    if not args.budget > 0:
        parser.error(f"argument --budget: expected seconds above 0, got {args.budget}")
    return args


def _log_trial(trial: Trial) -> None:
    with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
        mlflow.log_params(trial.params)
        mlflow.log_metrics(
            {f"validation_{SCORE}": trial.score, "best_iteration": trial.best_iteration}
        )
        mlflow.log_metric("seconds", trial.seconds)
    print(f"trial {trial.number}: validation {SCORE} {trial.score:.4f} ({trial.seconds:.1f} s)")


def _log_study(study: Study, flags: str) -> None:
    mlflow.log_params({f"best_{name}": value for name, value in study.best.params.items()})
    mlflow.log_metrics(
        {
            f"best_validation_{SCORE}": study.best.score,
            f"default_validation_{SCORE}": study.default.score,
            "best_trial": study.best.number,
            "trials": len(study.trials),
        }
    )
    mlflow.log_dict({"trials": [asdict(trial) for trial in study.trials]}, "study.json")
    mlflow.set_tag("train_flags", flags)


def main(argv: list[str] | None = None) -> None:
    settings = start("tune")
    args = _arguments(argv)
    config = train_defaults()
    with tracked_run(settings, "tune"):
        train, train_hash = read_training(lake_of(settings), args.train_cohort)
        mlflow.set_tags(
            {"gold_hash.train": train_hash, "train_cohort": ",".join(args.train_cohort)}
        )
        rows = training_rows(train, args.holdout)
        study = tune(rows, config, args.budget, args.max_trials, args.seed, on_trial=_log_trial)
        flags = shlex.join(study.flags())
        _log_study(study, flags)
    best, default = study.best, study.default
    print(
        f"{len(study.trials)} trials on {len(rows):,} users of {','.join(args.train_cohort)}: "
        f"validation {SCORE} {best.score:.4f} (trial {best.number}) against "
        f"{default.score:.4f} with train's defaults (trial 0)"
    )
    print(f"mlflow run . -e train {flags}")


if __name__ == "__main__":
    main()
