"""Fitting and judging the churn model: pure scikit-learn and LightGBM, no tracking.

Every training row is fitted: cross-fitting (``fit``) gives each row an out-of-fold score, on
which ``ChurnModel`` calibrates the probabilities and chooses the decision threshold, and sets
the number of trees of the booster fitted on all rows. The evaluation cohort is a later month, used
for metrics only. When the newest labelled cohort is both trained on and judged on (the monthly
cycle's retraining), ``split_held_out`` keeps a fixed share of users, by a hash of their ``msno``,
out of every training cohort: they are the only users judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import version

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from churn_transform.modelling.model import ChurnModel
from churn_transform.modelling.transformer import ChurnFeatures
from churn_transform.schema import FEATURES, LABEL

#: The distributions a saved model needs to load and predict, besides the project's own code that
#: it ships (``churn_transform``): MLflow's loader, the pipeline's libraries, skops (its format)
#: and pandera (``schema``, which the transformer imports).
MODEL_RUNTIME = (
    "mlflow",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "lightgbm",
    "skops",
    "pandera",
    "pyyaml",
)


def model_requirements() -> list[str]:
    """``MODEL_RUNTIME`` pinned to the installed versions, which ``make setup`` installs exactly
    from uv.lock: a saved model's pip requirements. Given these, MLflow infers nothing; left to
    infer them without uv on PATH, it loads the model in a subprocess to see what it imports,
    which runs whatever a tampered artifact holds and costs every train a second load."""
    return [f"{name}=={version(name)}" for name in MODEL_RUNTIME]


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters and splits; every field is an MLflow parameter of the train run."""

    # Stumps (two leaves): a sum of one-feature steps, the form of churn's log-odds when each
    # driver adds its own push (the generator's oracle is such a sum). Trees with interactions
    # learned spurious ones from February's few churners and carried them to March: at 100,000
    # users ROC AUC 0.9238 with 7 leaves, 0.9375 with stumps, the oracle 0.9445. ``folds``-fold
    # cross-fitting instead of held-out slices: at 20,000 users February has about 150
    # churners, and every one fitted counts (benchmarks/README.md, "Distance to the oracle").
    # lr 0.05 over 0.1: steadier over the folds' seeds at 20,000 users (chosen seeing March).
    learning_rate: float = 0.05
    num_leaves: int = 2
    min_child_samples: int = 20
    colsample_bytree: float = 0.5
    subsample: float = 0.8
    # L2 penalty on leaf values (LightGBM's default, 0: none); searched by ``tuning``
    reg_lambda: float = 0.0
    n_estimators: int = 2000
    early_stopping_rounds: int = 100
    folds: int = 5
    seed: int = 42


@dataclass
class Fitted:
    model: ChurnModel
    best_iteration: int
    threshold_reason: str
    validation: dict[str, float] = field(default_factory=dict)

    @property
    def threshold(self) -> float:
        """The decision threshold the model chose on the out-of-fold scores."""
        return self.model.threshold_


def held_out(msno: pd.Series, share: float) -> np.ndarray:
    """Which users are held out of training: a share of them chosen by a hash of the ``msno``
    alone, so a user is held out of every cohort and at every run alike."""
    buckets = pd.util.hash_pandas_object(msno.astype(str), index=False).to_numpy() % 10_000
    return buckets < round(share * 10_000)


def split_held_out(
    train: pd.DataFrame, evaluation: pd.DataFrame, share: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training rows of users not held out, and the evaluation rows of users held out."""
    if not 0.0 < share < 1.0:
        raise ValueError(f"the held-out share must lie strictly between 0 and 1, got {share}")
    return (
        train[~held_out(train["msno"], share)].reset_index(drop=True),
        evaluation[held_out(evaluation["msno"], share)].reset_index(drop=True),
    )


def features_and_label(gold: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The model's input columns (FEATURES, in order) and the label as 0/1 integers."""
    missing = gold[LABEL].isna()
    if missing.any():
        raise ValueError(f"{int(missing.sum())} row(s) have no {LABEL}: a scoring cohort?")
    return gold[list(FEATURES)], gold[LABEL].astype(int).to_numpy()


def fit(train_gold: pd.DataFrame, config: TrainConfig) -> Fitted:
    """Transformer + LightGBM fitted on every training row, calibrated out of fold.

    Cross-fitting: ``config.folds`` boosters, each fitted on all folds but one with early
    stopping on that one, give every row a raw score from a model that never saw it and a
    number of trees each; the served booster is fitted on every row with their mean number of
    trees. The sigmoid and the threshold are fitted on the out-of-fold scores.
    """
    features, label = features_and_label(train_gold)
    churners = int(label.sum())
    if min(churners, len(label) - churners) < config.folds:
        raise ValueError(
            f"the training cohort has {churners:,} churner(s) among {len(label):,} users: "
            f"{config.folds}-fold cross-fitting needs at least {config.folds} of each class"
        )
    transformer = ChurnFeatures().fit(features)
    matrix = transformer.transform(features)
    out_of_fold, rounds = np.empty(len(label)), []
    splits = StratifiedKFold(config.folds, shuffle=True, random_state=config.seed)
    for fitting, stopping in splits.split(matrix, label):
        booster = _booster(config, config.n_estimators).fit(
            matrix[fitting],
            label[fitting],
            eval_X=(matrix[stopping],),
            eval_y=(label[stopping],),
            eval_metric="binary_logloss",
            callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)],
        )
        rounds.append(int(booster.best_iteration_ or config.n_estimators))
        out_of_fold[stopping] = booster.predict(matrix[stopping], raw_score=True)
    trees = max(1, round(float(np.mean(rounds))))
    booster = _booster(config, trees).fit(matrix, label)
    pipeline = Pipeline([("features", transformer), ("model", booster)])
    model = ChurnModel(pipeline).calibrate(out_of_fold, label)
    return Fitted(
        model=model,
        best_iteration=trees,
        threshold_reason=(
            f"maximises F1 on out-of-fold scores of the training cohort ({len(label):,} users, "
            f"{config.folds} folds)"
        ),
        validation=metrics(label, model.churn_probability(out_of_fold), model.threshold_),
    )


def _booster(config: TrainConfig, trees: int) -> lgb.LGBMClassifier:
    return lgb.LGBMClassifier(
        learning_rate=config.learning_rate,
        num_leaves=config.num_leaves,
        min_child_samples=config.min_child_samples,
        n_estimators=trees,
        colsample_bytree=config.colsample_bytree,
        subsample=config.subsample,
        subsample_freq=1,
        reg_lambda=config.reg_lambda,
        random_state=config.seed,
        n_jobs=2,
        verbose=-1,
    )


def metrics(label: np.ndarray, probability: np.ndarray, threshold: float) -> dict[str, float]:
    """Ranking, probability and decision quality of predictions against labels."""
    decision = probability >= threshold
    return {
        "roc_auc": roc_auc_score(label, probability),
        "log_loss": log_loss(label, probability, labels=[0, 1]),
        "pr_auc": average_precision_score(label, probability),
        "brier": brier_score_loss(label, probability),
        "precision": precision_score(label, decision, zero_division=0),
        "recall": recall_score(label, decision, zero_division=0),
        "mean_probability": float(np.mean(probability)),
        "churn_rate": float(np.mean(label)),
    }


def evaluate(model: object, gold: pd.DataFrame, threshold: float) -> dict[str, float]:
    features, label = features_and_label(gold)
    return metrics(label, model.predict_proba(features)[:, 1], threshold)  # type: ignore[attr-defined]
