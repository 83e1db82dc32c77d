"""Tuning the churn model's hyperparameters: a seeded Optuna study (TPE) over ``SPACE``.

Each trial fits ``train``'s own pipeline (``training.fit``: the same cross-fitting folds of the
training cohort, early stopping, calibration) with its values and is scored by the ROC AUC of the
out-of-fold scores that ``fit`` already judges: every user is scored by a booster that neither
fitted nor stopped early on them, and a sigmoid calibration leaves the ranking alone, so the
score is an honest one for the booster; the evaluation cohort is never looked at.
Trial 0 is the given configuration itself (``train``'s defaults), so the study's best is never
worse than them on that slice. Knows nothing of MLflow: the caller sees each trial through
``on_trial``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any

import optuna
import pandas as pd

from churn_transform.modelling.training import TrainConfig, fit, held_out

#: The searched hyperparameters: name -> (low, high, how). ``log``: sampled on a log scale and
#: rounded to three significant digits; a number: the grid's step. Every range holds the values
#: MLproject gives ``train`` (trial 0 is them).
SPACE: dict[str, tuple[float, float, str | float]] = {
    "learning_rate": (0.005, 0.2, "log"),
    "num_leaves": (2, 63, "log"),
    "min_child_samples": (10, 1000, "log"),
    "colsample_bytree": (0.2, 1.0, 0.05),
    "subsample": (0.4, 1.0, 0.05),
    "reg_lambda": (0.0, 20.0, 0.5),
}

#: What a trial is judged by: a key of ``training.metrics``, on ``Fitted.validation``.
SCORE = "roc_auc"


@dataclass(frozen=True)
class Trial:
    """One fit: the searched values it used, its validation score and what the fit took."""

    number: int
    params: dict[str, float | int]
    score: float
    best_iteration: int
    seconds: float


@dataclass(frozen=True)
class Study:
    """The trials in order (trial 0: the given configuration) and the best of them; ties go to
    the earlier trial, so the given configuration stays unless a trial beats it."""

    trials: list[Trial]

    @property
    def default(self) -> Trial:
        return self.trials[0]

    @property
    def best(self) -> Trial:
        return max(self.trials, key=lambda trial: (trial.score, -trial.number))

    def flags(self) -> list[str]:
        """The best values as the ``-P name=value`` flags of ``mlflow run . -e train``."""
        return train_flags(self.best.params)


def train_flags(params: dict[str, float | int]) -> list[str]:
    """``-P name=value`` pairs, in ``SPACE``'s order; integers without a decimal point."""
    return [part for name in SPACE if name in params for part in ("-P", f"{name}={params[name]}")]


def searched(config: TrainConfig) -> dict[str, float | int]:
    """The searched hyperparameters' values in ``config``, checked to lie in ``SPACE``."""
    values = asdict(config)
    outside = [
        f"{name}={values[name]} (searched from {low} to {high})"
        for name, (low, high, _) in SPACE.items()
        if not low <= values[name] <= high
    ]
    if outside:
        raise ValueError(f"outside the searched space: {', '.join(outside)}")
    return {name: values[name] for name in SPACE}


def training_rows(train: pd.DataFrame, holdout: float) -> pd.DataFrame:
    """The rows ``train`` fits on: every user, or with ``holdout`` above 0 those not held out
    (``training.held_out``, the rule ``split_held_out`` applies)."""
    if holdout == 0:
        return train
    return train[~held_out(train["msno"], holdout)].reset_index(drop=True)


def tune(
    train: pd.DataFrame,
    config: TrainConfig,
    budget: float,
    max_trials: int,
    seed: int,
    on_trial: Callable[[Trial], None] = lambda trial: None,
) -> Study:
    """Up to ``max_trials`` fits of ``config`` with searched values: trial 0, ``config``'s own,
    always; none starts after ``budget`` seconds (a trial under way finishes). The sampler is
    seeded with ``seed``, so a study cut by ``max_trials`` alone is the same at every run."""
    if budget <= 0 or max_trials < 1:
        raise ValueError(f"need a budget above 0 s and a trial at least: {budget} s, {max_trials}")
    trials: list[Trial] = []

    def objective(trial: optuna.Trial) -> float:
        params: dict[str, Any] = {name: _suggest(trial, name, *b) for name, b in SPACE.items()}
        began = time.perf_counter()
        fitted = fit(train, replace(config, **params))
        done = Trial(
            number=trial.number,
            params=params,
            score=float(fitted.validation[SCORE]),
            best_iteration=fitted.best_iteration,
            seconds=time.perf_counter() - began,
        )
        trials.append(done)
        on_trial(done)
        return done.score

    with _quiet_optuna():
        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed)
        )
        study.enqueue_trial(searched(config))
        began = time.monotonic()
        study.optimize(objective, n_trials=1)
        left = budget - (time.monotonic() - began)
        if max_trials > 1 and left > 0:
            study.optimize(objective, n_trials=max_trials - 1, timeout=left)
    return Study(trials)


def _suggest(trial: optuna.Trial, name: str, low: float, high: float, how: Any) -> float | int:
    if isinstance(low, int) and isinstance(high, int):
        return trial.suggest_int(name, low, high, log=how == "log")
    if how == "log":
        # three significant digits: the printed flag is the value the trial fitted with
        return float(f"{trial.suggest_float(name, low, high, log=True):.3g}")
    return round(trial.suggest_float(name, low, high, step=how), 6)


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's own line per trial names every value again: the caller reports trials."""
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)
