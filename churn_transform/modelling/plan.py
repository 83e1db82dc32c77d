"""The campaign list as an action plan: whom to contact, by when, with which offer, what it is
expected to earn, and whom to hold out as the control group that judges it next month.

Two rules rank and size the list, and the list says which one did (``ranked_by``):

- ``uplift`` (when an uplift champion exists): a subscriber's expected incremental value is
  ``uplift * lifetime_value - offer_cost``. ``uplift`` is the drop in churn probability the offer
  brings (``modelling.uplift``); ``lifetime_value`` is what keeping them is worth: one month of
  their plan (``uplift.save_value``, a paying month for a trial user) times ``expected_months``,
  the months a kept subscriber is expected to stay within a year. A kept subscriber renews each
  later month with the cohort's renewal rate ``r`` (one minus its mean churn probability: the
  calibrated model's forecast of the share that renews, as CBPE reads it), so they stay
  ``1 + r + ... + r^11`` months of the next twelve. The year's horizon keeps a subscriber's value
  to what this month's offer can be credited with.
- ``churn probability`` (without one): today's rule, ``modelling.campaign.choose``: ranked by
  churn probability, each offer keeping ``acceptance`` of churners for a month of their plan.

Either way the campaign takes the top ``k`` of its ranking with ``k`` the size of greatest total
expected value (under the uplift rule: every subscriber whose value is positive).

Every subscriber is drawn into the control group or not by a hash of their ``msno`` and the
campaign id, so the draw is the same however often the cohort is scored, and independent of the
ranking: control targets are listed (``target`` true) but never contacted (``contact`` false),
and next month compares the contacted targets with them. The plan's totals count the contacted
only. Money is in NTD, the plans' currency. ``contact_log`` is the log a retention team hands back
once it played the plan, in the columns of the generator's past campaign: the synthetic world
plays it (``GeneratorConfig.campaign_log``) and next month's labels carry its true effect.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from churn_transform.dates import month_bounds, to_yyyymmdd
from churn_transform.modelling.campaign import choose, monthly_price
from churn_transform.modelling.explanation import READABLE
from churn_transform.modelling.uplift import save_value
from churn_transform.schema import CAMPAIGN_COLUMNS, LOG_FEATURES

CURRENCY = "NTD"
UPLIFT = "uplift"
CHURN_PROBABILITY = "churn probability"
#: The months of a kept subscriber's stay the offer is credited with.
HORIZON_MONTHS = 12

RENEWAL_NUDGE = "renewal nudge"
RE_ENGAGEMENT = "re-engagement"
WIN_BACK = "win-back"
RETENTION_OFFER = "retention offer"
_ACTION_FEATURES = {
    WIN_BACK: (
        "cancel_count",
        "cancel_count_365",
        "days_since_last_cancel",
        "last_is_cancel",
    ),
    RENEWAL_NUDGE: (
        "last_is_auto_renew",
        "auto_renew_share",
        "days_to_expiry",
        "last_payment_method_id",
        "last_plan_days",
        "last_list_price",
        "last_amount_paid",
        "discount_count",
        "free_count",
        "tx_count",
        "tx_count_90",
        "total_paid",
        "total_plan_days",
        "days_since_last_transaction",
    ),
    RE_ENGAGEMENT: LOG_FEATURES,  # every listening feature
}
#: The recommended action for each gold feature a top reason may name: a renewal nudge for
#: manual renewers and plan matters, re-engagement for falling listening, win-back for recent
#: cancellers; who someone is (age, city, tenure ...) calls for the plain retention offer.
ACTIONS: dict[str, str] = {
    feature: next((a for a, features in _ACTION_FEATURES.items() if feature in features), None)
    or RETENTION_OFFER
    for feature in READABLE
}
_BY_MEANING = {meaning: feature for feature, meaning in READABLE.items()}


def action(reason: str) -> str:
    """The action for a top reason as ``score`` writes it ("<meaning>: <value>"); the plain
    retention offer when there is no reason. Raises naming a reason no feature means."""
    if not isinstance(reason, str) or not reason:
        return RETENTION_OFFER
    meaning = reason.rsplit(": ", 1)[0]
    if meaning not in _BY_MEANING:
        raise ValueError(f"the reason {reason!r} names no feature of the action table")
    return ACTIONS[_BY_MEANING[meaning]]


def campaign_id(cohort: str) -> str:
    """The id of the cohort's campaign (the generator's past campaign is named alike)."""
    return f"retention-{cohort}"


def in_control(msno: pd.Series, campaign: str, share: float) -> np.ndarray:
    """Whether each subscriber is in the campaign's control group: the first 8 bytes of
    sha256("<campaign>:<msno>") read as a number in [0, 1), below ``share``."""
    if not 0 <= share < 1:
        raise ValueError(f"the control share must lie in [0, 1), got {share}")
    draws = [
        int.from_bytes(hashlib.sha256(f"{campaign}:{m}".encode()).digest()[:8], "big") / 2**64
        for m in msno.astype(str)
    ]
    return np.asarray(draws, dtype=float) < share


def expected_months(renewal_rate: float, horizon: int = HORIZON_MONTHS) -> float:
    """The months within ``horizon`` a kept subscriber stays: ``1 + r + ... + r^(horizon-1)``."""
    if not 0 <= renewal_rate <= 1:
        raise ValueError(f"the renewal rate must lie in [0, 1], got {renewal_rate}")
    return float(sum(renewal_rate**month for month in range(horizon)))


@dataclass(frozen=True)
class Valuation:
    """One rule's ranking of the cohort (indices, best first), the campaign size it chose, and
    per subscriber (cohort order) the saves and the net value contacting them is expected to
    bring, and what a kept subscriber is worth under the rule (``lifetime_value``, NTD: the net
    value is ``saves * lifetime_value - offer_cost``). ``lifetime_months`` is the uplift rule's
    ``expected_months`` (None otherwise)."""

    rule: str
    order: np.ndarray
    size: int
    saves: np.ndarray
    value: np.ndarray
    lifetime_months: float | None
    lifetime_value: np.ndarray


def by_uplift(
    uplift: np.ndarray, lifetime_value: np.ndarray, offer_cost: float, months: float
) -> Valuation:
    """Ranked by ``uplift * lifetime_value - offer_cost``, sized at its positive values."""
    worth = np.asarray(lifetime_value, float)
    value = np.asarray(uplift, float) * worth - offer_cost
    order = np.argsort(-value, kind="stable")
    size = int((value > 0).sum())
    return Valuation(UPLIFT, order, size, np.asarray(uplift, float), value, months, worth)


def by_churn_probability(
    probability: np.ndarray, monthly: np.ndarray, offer_cost: float, acceptance: float
) -> Valuation:
    """Today's rule: ranked by probability, sized by ``campaign.choose``."""
    order, choice = choose(probability, monthly, offer_cost, acceptance)
    saves = acceptance * probability
    value = saves * monthly - offer_cost
    return Valuation(CHURN_PROBABILITY, order, choice.size, saves, value, None, monthly)


@dataclass(frozen=True)
class PlanSummary:
    """The plan's totals, beside the list in the lake. ``expected_revenue`` is the kept
    subscribers' value; ``expected_net_value`` = ``expected_revenue - cost``, both over the
    ``contacted`` targets only (``targets`` = ``contacted`` + ``control``)."""

    cohort: str
    campaign_id: str
    ranked_by: str
    currency: str
    subscribers: int
    targets: int
    contacted: int
    control: int
    expected_saves: float
    expected_revenue: float
    cost: float
    expected_net_value: float
    offer_cost: float
    control_share: float
    lifetime_months: float | None
    acceptance: float | None = None  # the churn-probability rule's; None in plans before it

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> PlanSummary:
        return cls(**json.loads(text))

    @property
    def said(self) -> str:
        return (
            f"ranked by {self.ranked_by}: {self.targets:,} targets of {self.subscribers:,}, "
            f"{self.contacted:,} contacted and {self.control:,} held out as control; expected "
            f"{self.expected_saves:,.1f} saves, cost {self.cost:,.0f} {self.currency}, expected "
            f"net value {self.expected_net_value:,.0f} {self.currency}"
        )


def call_by(cohort: str, days_to_expiry: pd.Series) -> pd.Series:
    """Each subscriber's call-by date: their current plan's expiry (the cohort's first day plus
    ``days_to_expiry``), ISO; empty where the expiry is unknown."""
    first, _ = month_bounds(cohort)  # a day number since 1970-01-01
    days = pd.to_numeric(days_to_expiry, errors="coerce")
    dates = pd.Timestamp(np.datetime64(first, "D")) + pd.to_timedelta(days, unit="D")
    return dates.dt.strftime("%Y-%m-%d").fillna("")


def valuation(scores: pd.DataFrame, offer_cost: float, acceptance: float) -> Valuation:
    """The uplift rule when ``scores`` has an ``uplift`` column, else the churn-probability
    rule. ``scores``: ``churn_probability`` and the plan columns (``last_list_price``,
    ``last_plan_days``), as ``monitoring.scoring.score`` gives them."""
    probability = scores["churn_probability"].to_numpy(float)
    if UPLIFT not in scores.columns:
        return by_churn_probability(probability, monthly_price(scores), offer_cost, acceptance)
    uplift = scores[UPLIFT].to_numpy(float)
    if np.isnan(uplift).any():
        row = int(np.flatnonzero(np.isnan(uplift))[0])
        raise ValueError(f"row {row} (msno {scores['msno'].iloc[row]!r}) has no uplift")
    months = expected_months(1 - float(probability.mean())) if len(probability) else 1.0
    return by_uplift(uplift, save_value(scores) * months, offer_cost, months)


def action_plan(
    scores: pd.DataFrame, cohort: str, offer_cost: float, acceptance: float, control_share: float
) -> tuple[pd.DataFrame, PlanSummary]:
    """The ranked list and its totals. The list is ``scores`` (msno, churn_probability, churn,
    reasons, segments ...) in the rule's order with, after the first three columns: ``target``,
    ``revenue_at_risk`` (probability times a month of the plan), ``offer_value`` (the rule's
    expected net value of contacting them), ``contact``, ``control``, ``action`` (from the top
    reason), ``call_by``, ``ranked_by``, ``uplift`` (empty under the churn rule), and the two
    figures a verdict on the campaign weighs its result with: ``lifetime_value`` (what a kept
    subscriber is worth under the rule, NTD) and ``expected_save`` (the rule's forecast of the
    saves contacting them brings)."""
    rated = valuation(scores, offer_cost, acceptance)
    target = np.zeros(len(scores), dtype=bool)
    target[rated.order[: rated.size]] = True
    control = in_control(scores["msno"], campaign_id(cohort), control_share)
    contact = target & ~control
    probability = scores["churn_probability"].to_numpy(float)
    added = {
        "target": target,
        "revenue_at_risk": probability * monthly_price(scores),
        "offer_value": rated.value,
        "contact": contact,
        "control": control,
        "action": scores.get("reason_1", pd.Series("", index=scores.index)).map(action),
        "call_by": call_by(cohort, scores["days_to_expiry"]),
        "ranked_by": rated.rule,
        UPLIFT: scores[UPLIFT] if UPLIFT in scores.columns else np.nan,
        "lifetime_value": rated.lifetime_value,
        "expected_save": rated.saves,
    }
    rest = scores.drop(columns=[UPLIFT, "days_to_expiry"], errors="ignore")
    listed = pd.concat(
        [rest.iloc[:, :3], pd.DataFrame(added, index=scores.index), rest.iloc[:, 3:]], axis=1
    )
    summary = _summary(
        cohort, rated, len(scores), target, contact, (offer_cost, acceptance, control_share)
    )
    return listed.iloc[rated.order].reset_index(drop=True), summary


def contact_log(listed: pd.DataFrame, cohort: str) -> pd.DataFrame:
    """The campaign log a retention team hands back after playing the plan ``listed``
    (``action_plan``'s list): a row per target in the list's order, in the columns of the
    generator's past campaign (``schema.CAMPAIGN_COLUMNS``), offered on the cohort's first day;
    ``treated`` 1 for a contacted target, 0 for one held out as control. Subscribers the plan
    does not target are not in the campaign, so not in its log."""
    missing = [column for column in ("msno", "target", "contact") if column not in listed]
    if missing:
        raise ValueError(f"the campaign list has no column {', '.join(missing)}")
    targets = listed[listed["target"].astype(bool)]
    offered = int(to_yyyymmdd(np.array([month_bounds(cohort)[0]]))[0])
    log = pd.DataFrame(
        {
            "msno": targets["msno"].astype(str).to_numpy(),
            "campaign_id": campaign_id(cohort),
            "offered_date": offered,
            "treated": targets["contact"].astype(bool).to_numpy().astype(np.int64),
        }
    )
    return log[list(CAMPAIGN_COLUMNS)]


def _summary(
    cohort: str,
    rated: Valuation,
    subscribers: int,
    target: np.ndarray,
    contact: np.ndarray,
    made_with: tuple[float, float, float],
) -> PlanSummary:
    offer_cost, acceptance, control_share = made_with
    cost = offer_cost * int(contact.sum())
    net = float(rated.value[contact].sum())
    return PlanSummary(
        cohort=cohort,
        campaign_id=campaign_id(cohort),
        ranked_by=rated.rule,
        currency=CURRENCY,
        subscribers=subscribers,
        targets=int(target.sum()),
        contacted=int(contact.sum()),
        control=int((target & ~contact).sum()),
        expected_saves=float(rated.saves[contact].sum()),
        expected_revenue=net + cost,
        cost=float(cost),
        expected_net_value=net,
        offer_cost=offer_cost,
        control_share=control_share,
        lifetime_months=rated.lifetime_months,
        acceptance=acceptance,
    )


def planned_alike(
    summary: PlanSummary, offer_cost: float, acceptance: float, control_share: float, rule: str
) -> bool:
    """Whether the plan ``summary`` was made with these settings and ranking rule (``UPLIFT``
    or ``CHURN_PROBABILITY``): a cohort scored again with another control share, offer cost or
    acceptance, or with an uplift champion where there was none, needs a plan of its own."""
    made = (summary.offer_cost, summary.acceptance, summary.control_share, summary.ranked_by)
    return made == (offer_cost, acceptance, control_share, rule)
