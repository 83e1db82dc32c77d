"""The written retraining policy of the monthly cycle: when the champion is retrained.

Each month, once the newest cohort's labels are in, the cycle gathers the ``Evidence`` and
``decide`` says whether to retrain, always with its reasons (printed and recorded in MLflow):

1. **Realized quality.** The champion's ROC AUC on the newest labelled cohort (its batch
   scores, made a month before the labels) is more than ``max_auc_drop`` below the AUC it had
   on its own evaluation cohort when it was trained. The alert ``ChurnModelQualityDecayed``
   (deploy/prometheus/alerts.yml) uses the same limit.
2. **Drift.** The drift check over the service's traffic raised its alarm (``retrain_on_drift``),
   and no one API client sent more than ``max_client_share`` of the subscribers it judged: a
   drift one key's traffic can cause alone is no reason to retrain (requests without a key, on
   an open API, are one client).
3. **Age.** The newest labelled cohort is ``max_age_months`` or more months after the cohort
   the champion was evaluated on.

Whether a retrained candidate then serves is the promotion gate's decision (``train``): it must
beat the champion on the newest labelled cohort by the margin, with no segment of enough users
regressing beyond the limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from churn_transform.dates import months_between


@dataclass(frozen=True)
class Policy:
    """The limits (MLproject's ``cycle`` parameters give their defaults)."""

    max_auc_drop: float
    max_age_months: int
    retrain_on_drift: bool
    max_client_share: float


@dataclass(frozen=True)
class Evidence:
    """What the cycle knows of the champion this month."""

    cohort: str  # the newest labelled cohort, YYYY-MM
    realized_auc: float | None  # the champion's on it; None: it made no prediction for it
    evaluated_auc: float | None  # the champion's own, on its evaluation cohort
    evaluated_cohort: str | None  # that cohort
    drift_alarm: bool
    # the largest share of the drift window's subscribers one API client sent (None: unknown)
    drift_top_client_share: float | None = None


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reasons: tuple[str, ...]

    def text(self) -> str:
        verdict = "retrain" if self.retrain else "keep the champion"
        return f"{verdict}: " + "; ".join(self.reasons)


def decide(policy: Policy, evidence: Evidence) -> Decision:
    """Whether to retrain this month, and every reason that says so (or why not)."""
    reasons: list[str] = []
    calm: list[str] = []
    realized, own = evidence.realized_auc, evidence.evaluated_auc
    if realized is not None and own is not None:
        drop = own - realized
        said = (
            f"realized ROC AUC {realized:.4f} on {evidence.cohort}, {abs(drop):.4f} "
            f"{'below' if drop > 0 else 'above'} the champion's own {own:.4f} (retrain when "
            f"more than {policy.max_auc_drop} below)"
        )
        (reasons if drop > policy.max_auc_drop else calm).append(said)
    else:
        calm.append(f"no realized quality of the champion on {evidence.cohort}")
    share = evidence.drift_top_client_share
    if not evidence.drift_alarm:
        calm.append("no drift alarm")
    elif share is not None and share > policy.max_client_share:
        calm.append(
            f"the drift alarm rests on one client's traffic ({share:.0%} of the subscribers "
            f"judged; limit {policy.max_client_share:.0%})"
        )
    else:
        (reasons if policy.retrain_on_drift else calm).append("the drift check raised its alarm")
    if evidence.evaluated_cohort is not None:
        age = months_between(evidence.evaluated_cohort, evidence.cohort)
        said = (
            f"the champion was judged on {evidence.evaluated_cohort}, {age} month(s) before "
            f"{evidence.cohort} (limit {policy.max_age_months})"
        )
        (reasons if age >= policy.max_age_months else calm).append(said)
    return Decision(True, tuple(reasons)) if reasons else Decision(False, tuple(calm))
