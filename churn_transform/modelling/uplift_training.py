"""The uplift model trained on a past campaign and judged on its held-out users: the rules of
the ``uplift`` step, without tracking.

The campaign's users (its log joined to the gold table of its cohort: ``uplift.campaign_users``)
are split by a hash of their ``msno`` (``training.held_out``, as ``train --holdout`` splits): the
model learns from the rest and is judged only on the held-out share, against what they did
(``uplift_gate``'s observed Qini and uplift AUC) and, on synthetic data, against the oracle's
true effect (``uplift.qini``, ``uplift.uplift_auc``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from churn_transform.modelling.training import held_out
from churn_transform.modelling.uplift import (
    TREATED,
    UpliftConfig,
    UpliftModel,
    fit_uplift,
    qini,
    uplift_auc,
)
from churn_transform.modelling.uplift_gate import QiniEstimate, estimate, observed_uplift_auc
from churn_transform.schema import FEATURES, LABEL


@dataclass(frozen=True)
class CampaignSplit:
    """The campaign's users learnt from, and those held out and judged."""

    train: pd.DataFrame
    held_out: pd.DataFrame


def split_campaign(users: pd.DataFrame, share: float) -> CampaignSplit:
    """The campaign's users outside and inside the held-out ``share`` (by a hash of ``msno``);
    raises naming the share when either side is empty."""
    if not 0.0 < share < 1.0:
        raise ValueError(f"the held-out share must lie strictly between 0 and 1, got {share}")
    kept = held_out(users["msno"], share)
    split = CampaignSplit(users[~kept].reset_index(drop=True), users[kept].reset_index(drop=True))
    if split.train.empty or split.held_out.empty:
        raise ValueError(
            f"a held-out share of {share} leaves {len(split.train)} users to learn from and "
            f"{len(split.held_out)} to judge"
        )
    return split


def fit_campaign(train: pd.DataFrame, config: UpliftConfig) -> UpliftModel:
    """The uplift model fitted on campaign users (gold rows with ``treated`` and the label)."""
    return fit_uplift(
        train[list(FEATURES)], train[TREATED].to_numpy(), train[LABEL].to_numpy(), config
    )


def judge(
    score: np.ndarray,
    judged: pd.DataFrame,
    effect: np.ndarray | None = None,
    draws: int = 200,
    seed: int = 0,
) -> tuple[QiniEstimate, dict[str, float]]:
    """A score of the held-out users ``judged``: its observed Qini with its bootstrap interval,
    and the metrics to log (observed Qini, interval, uplift AUC; and against the true
    ``effect`` when given, its Qini and uplift AUC and the mean true effect)."""
    treated = judged[TREATED].to_numpy().astype(bool)
    churned = judged[LABEL].astype(int).to_numpy()
    found = estimate(treated, churned, score, draws, seed)
    metrics = {
        "observed_qini": found.value,
        "observed_qini_low": found.low,
        "observed_qini_high": found.high,
        "observed_uplift_auc": observed_uplift_auc(treated, churned, score),
        "held_out_users": float(found.users),
        "held_out_offered": float(treated.sum()),
    }
    if effect is not None:
        metrics |= {
            "oracle_qini": qini(effect, score),
            "oracle_uplift_auc": uplift_auc(effect, score),
            "oracle_best_uplift_auc": uplift_auc(effect, effect),
            "mean_true_effect": float(np.mean(effect)),
        }
    return found, metrics
