"""The uplift model: whose churn a retention offer prevents, learnt from a past campaign; and the
rules that judge a targeting against each user's true effect.

The model is an X-learner (Künzel et al. 2019, "Metalearners for estimating heterogeneous
treatment effects") over LightGBM, on the churn model's shared transformer (``ChurnFeatures``).
A user's uplift is the drop in churn probability an offer brings: P(churn | control) -
P(churn | offered), positive when the offer saves. Two outcome models, one per group, give
``mu0`` and ``mu1``; each user's imputed effect (``mu0(x) - y`` for the offered,
``y - mu1(x)`` for the control) is regressed per group, and the two regressions are averaged,
weighted by the share offered (the campaign drew offers at random, so the propensity is that
constant share). ``learner="t"`` keeps the T-learner, ``mu0 - mu1``. causalml was tried first
(docs/uplift.md says why it is not used).

Judging, when the effect is known (the generator's oracle): users are ranked by a score and the
cumulative true effect of the top ``k`` is the uplift curve; tied scores share their mean effect,
so a constant score is random targeting. The rules say what targeting ``k`` users by a score
saves and earns: each save is worth ``value`` (``save_value``: one month of the user's plan, as
in ``modelling.campaign``) and each offer costs ``offer_cost``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import lightgbm as lgb
import numpy as np
import pandas as pd

from churn_transform.modelling.campaign import monthly_price
from churn_transform.modelling.transformer import ChurnFeatures

TREATED = "treated"


@dataclass(frozen=True)
class UpliftConfig:
    """Hyperparameters of the four LightGBM models (small trees, many users per leaf: the
    effects are a few points of probability under the label's noise)."""

    learner: Literal["x", "t"] = "x"
    learning_rate: float = 0.03
    num_leaves: int = 7
    min_child_samples: int = 200
    n_estimators: int = 300
    colsample_bytree: float = 0.8
    subsample: float = 0.8
    seed: int = 42

    def __post_init__(self) -> None:
        if self.learner not in ("x", "t"):
            raise ValueError(
                f"learner must be 'x' (X-learner) or 't' (T-learner), got {self.learner!r}"
            )


def _lightgbm(
    kind: type[lgb.LGBMClassifier] | type[lgb.LGBMRegressor], config: UpliftConfig
) -> lgb.LGBMModel:
    return kind(
        learning_rate=config.learning_rate,
        num_leaves=config.num_leaves,
        min_child_samples=config.min_child_samples,
        n_estimators=config.n_estimators,
        colsample_bytree=config.colsample_bytree,
        subsample=config.subsample,
        subsample_freq=1,
        random_state=config.seed,
        n_jobs=2,
        verbose=-1,
    )


@dataclass
class UpliftModel:
    """A fitted meta-learner; ``predict`` gives each user's uplift (drop in churn probability)."""

    transformer: ChurnFeatures
    control: lgb.LGBMClassifier
    offered: lgb.LGBMClassifier
    share_offered: float
    effect_control: lgb.LGBMRegressor | None = None
    effect_offered: lgb.LGBMRegressor | None = None

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Each user's uplift: the drop in churn probability an offer brings (X-learner: the
        two effect models weighted by the share offered, the control's by that share)."""
        x = self.transformer.transform(features)
        if self.effect_control is None or self.effect_offered is None:
            return _churn(self.control, x) - _churn(self.offered, x)
        weight = self.share_offered
        return weight * _values(self.effect_control, x) + (1 - weight) * _values(
            self.effect_offered, x
        )


def _churn(model: lgb.LGBMClassifier, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict_proba(x))[:, 1]


def _values(model: lgb.LGBMRegressor, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x), dtype=float)


def fit_uplift(
    features: pd.DataFrame, treated: np.ndarray, label: np.ndarray, config: UpliftConfig
) -> UpliftModel:
    """Fit on a campaign's users: their features, whether each was offered (1) or held out as
    the control (0), and whether each churned."""
    treated, label = np.asarray(treated).astype(bool), np.asarray(label).astype(int)
    _check_groups(treated, label)
    transformer = ChurnFeatures().fit(features)
    x = transformer.transform(features)
    control = _lightgbm(lgb.LGBMClassifier, config).fit(x[~treated], label[~treated])
    offered = _lightgbm(lgb.LGBMClassifier, config).fit(x[treated], label[treated])
    model = UpliftModel(transformer, control, offered, float(treated.mean()))
    if config.learner == "t":
        return model
    imputed_offered = control.predict_proba(x[treated])[:, 1] - label[treated]
    imputed_control = label[~treated] - offered.predict_proba(x[~treated])[:, 1]
    model.effect_offered = _lightgbm(lgb.LGBMRegressor, config).fit(x[treated], imputed_offered)
    model.effect_control = _lightgbm(lgb.LGBMRegressor, config).fit(x[~treated], imputed_control)
    return model


def _check_groups(treated: np.ndarray, label: np.ndarray) -> None:
    if len(treated) != len(label):
        raise ValueError(f"{len(treated)} treated flags for {len(label)} labels")
    for name, group in (("offered", treated), ("control", ~treated)):
        churned = label[group]
        if len(np.unique(churned)) < 2:
            raise ValueError(
                f"the {name} group ({int(group.sum())} users) needs churners and renewers to fit "
                f"an outcome model; it has {int(churned.sum())} churners"
            )


def campaign_users(gold: pd.DataFrame, log: pd.DataFrame) -> pd.DataFrame:
    """The gold rows of the campaign's users with their ``treated`` flag (0/1) from the campaign
    log (``msno``, ``treated``). Raises naming the rule a log breaks: treated outside 0/1, a user
    logged twice, or no gold user in the log."""
    for column in ("msno", TREATED):
        if column not in log.columns:
            raise ValueError(f"the campaign log has no column {column!r}")
    bad = ~log[TREATED].isin([0, 1])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"campaign log row {row}: treated is {log[TREATED].iloc[row]}, not 0/1")
    twice = log["msno"].duplicated()
    if twice.any():
        raise ValueError(f"campaign log: user {log['msno'][twice].iloc[0]!r} is logged twice")
    joined = gold.merge(log[["msno", TREATED]], on="msno", how="inner", validate="one_to_one")
    if joined.empty:
        raise ValueError("no user of the gold table is in the campaign log")
    joined[TREATED] = joined[TREATED].astype(int)
    return joined


def save_value(gold: pd.DataFrame) -> np.ndarray:
    """What keeping each user is worth: one month of their plan (``campaign.monthly_price``); for
    a user on a free plan, the median month of the paying users of ``gold``, since a saved trial
    user goes on to pay (the offer's best savers are trial users, whom a month of 0 would make
    worthless). 0 for everyone when nobody pays."""
    monthly = monthly_price(gold)
    paying = monthly[monthly > 0]
    return np.where(monthly > 0, monthly, float(np.median(paying)) if len(paying) else 0.0)


def uplift_curve(effect: np.ndarray, score: np.ndarray) -> np.ndarray:
    """The cumulative true effect of the top ``k`` users by ``score`` (highest first), for
    ``k`` = 0..n, divided by n: ``curve[k]`` is the saves per cohort user of targeting ``k``.
    Users with tied scores share their mean effect, so ties favour no order."""
    effect, score = np.asarray(effect, float), np.asarray(score, float)
    if effect.shape != score.shape:
        raise ValueError(f"{len(effect)} effects for {len(score)} scores")
    if np.isnan(score).any() or np.isnan(effect).any():
        raise ValueError(
            f"{int(np.isnan(score).sum())} score(s) and {int(np.isnan(effect).sum())} effect(s) "
            "are NaN: no ranking of them"
        )
    order = np.argsort(-score, kind="stable")
    ranked, ranked_score = effect[order], score[order]
    _, starts, counts = np.unique(-ranked_score, return_index=True, return_counts=True)
    sums = np.add.reduceat(ranked, starts) if len(ranked) else np.array([])
    shared = np.repeat(sums / counts, counts)
    return np.concatenate([[0.0], np.cumsum(shared)]) / max(len(effect), 1)


def uplift_auc(effect: np.ndarray, score: np.ndarray) -> float:
    """The area under ``uplift_curve`` over the share targeted (0..1), by trapezoids; random
    targeting's is half the cohort's mean effect."""
    curve = uplift_curve(effect, score)
    if len(curve) < 2:
        return 0.0
    return float(np.trapezoid(curve, dx=1.0 / (len(curve) - 1)))


def qini(effect: np.ndarray, score: np.ndarray) -> float:
    """The Qini coefficient against the true effect: the area between the score's uplift curve
    and random targeting's diagonal, over the same area of the best ranking (by the true
    effect). 1: the best order; 0: no better than random; negative: worse."""
    random = float(np.mean(effect)) / 2 if len(effect) else 0.0
    best = uplift_auc(effect, effect) - random
    if best <= 0:
        raise ValueError("the true effects are all equal: no ranking is better than another")
    return (uplift_auc(effect, score) - random) / best


@dataclass(frozen=True)
class Targeted:
    """What targeting ``size`` users by one rule saves (sum of their true effects, in expected
    users kept) and earns (saves times each user's value, minus the offers' cost)."""

    rule: str
    size: int
    saves: float
    net_value: float


def target(
    rule: str,
    effect: np.ndarray,
    score: np.ndarray | None,
    value: np.ndarray,
    offer_cost: float,
    size: int,
) -> Targeted:
    """The top ``size`` users by ``score``; ``score`` None is random targeting, in expectation
    (``size`` times the cohort's mean). Tied scores share their mean, as in ``uplift_curve``."""
    effect, value = np.asarray(effect, float), np.asarray(value, float)
    if not 0 <= size <= len(effect):
        raise ValueError(f"campaign size {size} outside 0..{len(effect)} users")
    if score is None:
        saves, earned = size * effect.mean(), size * (effect * value).mean()
    else:
        saves = uplift_curve(effect, score)[size] * len(effect)
        earned = uplift_curve(effect * value, score)[size] * len(effect)
    return Targeted(rule, size, float(saves), float(earned - offer_cost * size))


def compare(
    effect: np.ndarray,
    scores: dict[str, np.ndarray],
    value: np.ndarray,
    offer_cost: float,
    size: int,
) -> list[Targeted]:
    """Each rule of ``scores`` (name -> score), random targeting and the oracle's best (the top
    ``size`` by true effect), all at the same ``size``."""
    rows = [target(rule, effect, score, value, offer_cost, size) for rule, score in scores.items()]
    rows.append(target("random", effect, None, value, offer_cost, size))
    rows.append(target("oracle best", effect, effect, value, offer_cost, size))
    return rows


def as_metrics(rows: list[Targeted], scores: dict[str, dict[str, float]]) -> dict[str, float]:
    """Flat metric names for a tracker: ``<rule>_k<size>_saves`` and ``_net_value`` per row,
    ``<ranking>_qini`` and ``_uplift_auc`` per score (rule names in snake case)."""

    def name(rule: str) -> str:
        return (
            "".join(c if c.isalnum() else "_" for c in rule.lower()).strip("_").replace("__", "_")
        )

    metrics = {}
    for row in rows:
        metrics[f"{name(row.rule)}_k{row.size}_saves"] = row.saves
        metrics[f"{name(row.rule)}_k{row.size}_net_value"] = row.net_value
    for ranking, values in scores.items():
        metrics.update({f"{name(ranking)}_{key}": value for key, value in values.items()})
    return metrics
