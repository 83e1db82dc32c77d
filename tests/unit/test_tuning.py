"""The tuning study: trial 0 is the given configuration, the sampler is seeded, every value lies in
the searched space, and the best values come back as ``train``'s flags."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from churn_transform.modelling.training import TrainConfig, fit, split_held_out
from churn_transform.modelling.tuning import (
    SPACE,
    Study,
    Trial,
    searched,
    train_flags,
    training_rows,
    tune,
)
from churn_transform.schema import FEATURES, LABEL

#: Fits in a fraction of a second on the rows below, as ``train`` fits the real model.
SMALL = TrainConfig(n_estimators=40, early_stopping_rounds=10, min_child_samples=20)


def _gold(rows: int, seed: int) -> pd.DataFrame:
    """Gold-like rows: any plausible numbers, and churn driven by the cancels."""
    rng = np.random.default_rng(seed)
    gold = pd.DataFrame({name: rng.gamma(2.0, 10.0, rows) for name in FEATURES})
    gold["msno"] = [f"user{i}" for i in range(rows)]
    gold["gender"] = pd.array(rng.choice(["male", "female", None], rows), dtype="string")
    gold["city"] = rng.choice([1.0, 5.0, 13.0, np.nan], rows)
    gold[LABEL] = (rng.random(rows) < 1 / (1 + np.exp(3 - gold["cancel_count"] / 10))).astype(int)
    return gold


@pytest.fixture(scope="module")
def gold() -> pd.DataFrame:
    return _gold(600, seed=3)


def _outcomes(study: Study) -> list[tuple[dict[str, float | int], float]]:
    return [(trial.params, trial.score) for trial in study.trials]


def _trial(number: int, score: float, **params: float | int) -> Trial:
    return Trial(number, params, score, best_iteration=10, seconds=0.1)


def test_trial_0_is_the_given_configuration_scored_as_fit_scores_it(gold: pd.DataFrame) -> None:
    study = tune(gold, SMALL, budget=60, max_trials=1, seed=0)
    (trial,) = study.trials
    assert trial.number == 0 and trial.params == searched(SMALL)
    assert trial.score == pytest.approx(fit(gold, SMALL).validation["roc_auc"])
    assert study.best == study.default == trial


def test_the_same_seed_gives_the_same_study(gold: pd.DataFrame) -> None:
    first = tune(gold, SMALL, budget=60, max_trials=4, seed=7)
    again = tune(gold, SMALL, budget=60, max_trials=4, seed=7)
    assert _outcomes(first) == _outcomes(again)
    assert len({tuple(t.params.items()) for t in first.trials}) == 4


def test_every_trial_is_reported_and_uses_values_inside_the_space(gold: pd.DataFrame) -> None:
    seen: list[Trial] = []
    study = tune(gold, SMALL, budget=60, max_trials=5, seed=1, on_trial=seen.append)
    assert seen == study.trials and [t.number for t in seen] == [0, 1, 2, 3, 4]
    for trial in seen:
        assert set(trial.params) == set(SPACE)
        for name, (low, high, _) in SPACE.items():
            assert low <= trial.params[name] <= high, (name, trial.params[name])
            assert isinstance(trial.params[name], type(low) if isinstance(high, int) else float)


def test_the_budget_stops_the_study_after_the_trial_under_way(gold: pd.DataFrame) -> None:
    study = tune(gold, SMALL, budget=1e-6, max_trials=50, seed=0)
    assert [t.number for t in study.trials] == [0]


@pytest.mark.parametrize(("budget", "max_trials"), [(0, 5), (-1, 5), (10, 0)])
def test_a_study_needs_time_and_a_trial(gold: pd.DataFrame, budget: float, max_trials: int) -> None:
    with pytest.raises(ValueError, match="need a budget above 0 s and a trial at least"):
        tune(gold, SMALL, budget=budget, max_trials=max_trials, seed=0)


def test_a_default_outside_the_space_is_refused_naming_it(gold: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"num_leaves=255 \(searched from 2 to 63\)"):
        tune(gold, replace(SMALL, num_leaves=255), budget=10, max_trials=1, seed=0)


def test_the_best_is_the_highest_score_and_a_tie_keeps_the_earlier_trial() -> None:
    study = Study([_trial(0, 0.80), _trial(1, 0.85), _trial(2, 0.85), _trial(3, 0.70)])
    assert study.default.number == 0 and study.best.number == 1
    assert Study([_trial(0, 0.9), _trial(1, 0.9)]).best.number == 0


def test_flags_follow_the_space_s_order_with_whole_numbers_as_such() -> None:
    params = {"subsample": 0.85, "num_leaves": 12, "learning_rate": 0.0312, "reg_lambda": 0.0}
    assert train_flags(params) == [
        "-P",
        "learning_rate=0.0312",
        "-P",
        "num_leaves=12",
        "-P",
        "subsample=0.85",
        "-P",
        "reg_lambda=0.0",
    ]
    assert Study([_trial(0, 0.5, num_leaves=7)]).flags() == ["-P", "num_leaves=7"]


def test_train_s_defaults_lie_in_the_space() -> None:
    from steps.tune import train_defaults

    assert searched(TrainConfig()) == {name: getattr(TrainConfig(), name) for name in SPACE}
    mlproject = train_defaults()  # what tune's trial 0 fits: MLproject's, typed as train types
    assert searched(mlproject) == {name: getattr(mlproject, name) for name in SPACE}
    assert isinstance(mlproject.num_leaves, int) and isinstance(mlproject.reg_lambda, float)


def test_the_training_rows_leave_out_the_users_train_holds_out() -> None:
    gold = _gold(200, seed=2)
    assert training_rows(gold, 0.0) is gold
    expected, _ = split_held_out(gold, gold, 0.3)
    pd.testing.assert_frame_equal(training_rows(gold, 0.3), expected)
