"""A campaign's verdict: what the offers did, read from the labels of the cohort they were played
on, against the control group the plan held out (``modelling.plan``), beside what the plan
forecast and, on synthetic data, what the oracle expected.

The comparison is between the subscribers the played log (``etl.campaign_log``) says were
contacted (``treated`` 1) and the plan's control targets who were held out (``treated`` 0, and
both ``target`` and ``control`` in the plan): the plan drew the control by a hash independent of
its ranking, so the two groups differ by the offer and by chance only. A logged subscriber who
is neither (held out without being a control target) is left out and counted
(``not_compared``); so is a compared subscriber without a label (``unlabelled``), whom the cost
leaves out too, so that saves and cost count the same people. The plan is the one the log was
played from (``played_plan``), not necessarily the cohort's newest.

With ``n`` contacted churning at the rate ``p1`` and the control at ``p0``, the realized saves
are ``n * (p0 - p1)``. A subscriber's retained value is ``(1 - churn) * lifetime_value``; the
realized net value is ``n * (mean retained value contacted - mean retained value control)``
minus the cost, ``n * offer_cost``. The 95% intervals are the normal approximation of a
difference of two independent means (Welch's, without the t correction): the standard error
``sqrt(s1^2 / n1 + s0^2 / n0)``, with ``p (1 - p)`` for the churn rates (the Wald interval). It
is adequate once each group holds some tens of churners and of stayers, as a campaign's groups
of hundreds or thousands do (the central limit theorem; its coverage is checked by simulation in
tests/unit/test_verdict.py); below ``MIN_OUTCOMES`` churners or stayers in either group the
verdict gives no interval and says the group is too small to tell. The intervals reflect the
random draw of the control group and of the outcomes, not the oracle's or the plan's models.

Money is in the plan's currency (NTD). ``quality`` writes the verdict to the lake
(``quality/<cohort>/campaign_verdict.json``), where the cycle and the dashboard read it.
"""

from __future__ import annotations

import json
import math
import posixpath
from dataclasses import MISSING, asdict, dataclass, fields
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from churn_transform.lake import Lake
    from churn_transform.modelling.plan import PlanSummary

#: The folder of the lake (``quality/<cohort>/``) and the file the verdict is written to.
QUALITY = "quality"
VERDICT = "campaign_verdict.json"
#: Fewer churners or stayers than this in a group: the normal approximation is not trusted.
MIN_OUTCOMES = 10
_Z = NormalDist().inv_cdf(0.975)
LOG_COLUMNS = ("msno", "campaign_id", "treated")
PLAN_COLUMNS = ("msno", "target", "contact", "control", "lifetime_value", "expected_save")
PLAN_VALUE = "offer_value"
#: The plan's rule ranking by churn probability (``plan.CHURN_PROBABILITY``, not imported: the
#: plan's module brings LightGBM, which the dashboard need not load to read a verdict).
CHURN_RANKED = "churn probability"
#: Saves below this share of the forecast (the oracle's, or realized ones) are far below it.
FAR_BELOW = 0.5


@dataclass(frozen=True)
class Verdict:
    """A campaign's realized figures (None: not measurable, see ``said``) beside its forecast
    and, on synthetic data, the oracle's expectation (None on real data). ``contacted`` and
    ``control`` count the labelled subscribers compared; money is in ``currency``.
    ``ranked_by`` is the plan's rule (``PlanSummary.ranked_by``; None in a verdict written
    before it was recorded)."""

    cohort: str
    campaign_id: str
    currency: str
    contacted: int
    control: int
    unlabelled: int
    not_compared: int
    contacted_churn_rate: float | None
    control_churn_rate: float | None
    realized_saves: float | None
    realized_saves_low: float | None
    realized_saves_high: float | None
    cost: float
    realized_net_value: float | None
    realized_net_value_low: float | None
    realized_net_value_high: float | None
    return_on_cost: float | None
    forecast_saves: float
    forecast_net_value: float
    oracle_saves: float | None
    oracle_net_value: float | None
    ranked_by: str | None = None

    @property
    def too_small(self) -> str | None:
        """The group too small for an interval ("control", "contacted"), or None."""
        if self.realized_saves_low is not None:
            return None
        return "control" if _short(self.control, self.control_churn_rate) else "contacted"

    @property
    def said(self) -> str:
        """A few short sentences: whether the saves' and the net value's intervals exclude zero
        (or which group is too small to tell, and the fix), beside the forecast net value and
        the oracle's (synthetic data); the two groups' churn rates; and, for a list ranked by
        churn probability whose saves fall far below the forecast, why."""
        return " ".join(part for part in (self._effect(), self._churned(), self._ranking()) if part)

    def _effect(self) -> str:
        name = f"Campaign {self.campaign_id}"
        oracle = self.oracle_net_value
        expected = f" and the oracle's {oracle:,.0f}" if oracle is not None else ""
        if self.too_small:
            return (
                f"{name}: too small to tell. {self._shortfall()} Net value forecast "
                f"{self.forecast_net_value:,.0f} {self.currency}{expected}."
            )
        saves, low, high = _measured(
            self.realized_saves, self.realized_saves_low, self.realized_saves_high
        )
        interval = f"(95% interval {low:,.1f} to {high:,.1f})"
        if low > 0:
            effect = f"saved {saves:,.1f} subscribers {interval}, more than chance would give"
        elif high < 0:
            effect = f"lost {-saves:,.1f} subscribers {interval}: the contacted churned more"
        else:
            effect = (
                f"made no difference distinguishable from chance: {saves:,.1f} saves {interval}"
            )
        net, net_low, net_high = _measured(
            self.realized_net_value, self.realized_net_value_low, self.realized_net_value_high
        )
        paid = "it paid for itself" if net_low > 0 else "it did not pay for itself"
        if net_low <= 0 <= net_high:
            paid = "whether it paid for itself is not settled"
        return (
            f"{name} {effect}; net value {net:,.0f} {self.currency} (95% interval "
            f"{net_low:,.0f} to {net_high:,.0f}) against a forecast of "
            f"{self.forecast_net_value:,.0f}{expected}: {paid}."
        )

    def _shortfall(self) -> str:
        """Which group is too small, its churners and stayers, and what would make it larger."""
        if self.too_small == "control":
            users, rate = self.control, self.control_churn_rate
            fix = (
                "Hold out more: set a larger KKBOX_CONTROL_SHARE (e.g. 0.5) before the cohort "
                "is scored."
            )
        else:
            users, rate = self.contacted, self.contacted_churn_rate
            fix = "It takes a larger campaign."
        churners = round(users * (rate or 0.0))
        return (
            f"The {self.too_small} group had {churners:,} churners and {users - churners:,} "
            f"stayers; an interval needs {MIN_OUTCOMES} of each. {fix}"
        )

    def _churned(self) -> str:
        """The two groups' observed churn rates."""

        def rate(share: float | None, users: int, group: str) -> str:
            if share is None:
                return f"none of {users:,} {group} had a label" if users else f"no one {group}"
            return f"{share:.1%} of {users:,} {group}"

        contacted = rate(self.contacted_churn_rate, self.contacted, "contacted")
        return f"Churned: {contacted}, {rate(self.control_churn_rate, self.control, 'held out')}."

    def _ranking(self) -> str:
        """Why a list ranked by churn probability saved far fewer than its forecast: it assumes
        an offer keeps ``acceptance`` of any likely churner, and the likeliest are often the
        ones an offer rarely saves (docs/uplift.md)."""
        if self.ranked_by != CHURN_RANKED or self.forecast_saves <= 0:
            return ""
        found = [s for s in (self.oracle_saves, self.realized_saves) if s is not None]
        if not any(saves < FAR_BELOW * self.forecast_saves for saves in found):
            return ""
        return (
            f"Ranked by {CHURN_RANKED}, the list targets likely churners an offer rarely saves: "
            f"the forecast of {self.forecast_saves:,.1f} saves assumes it keeps a share of each "
            "(docs/uplift.md)."
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Verdict:
        """The record ``to_json`` wrote (one from before a field with a default was added takes
        the default); ``ValueError`` naming a field that is missing."""
        data = json.loads(text)
        needed = [f.name for f in fields(cls) if f.default is MISSING]
        if missing := [name for name in needed if name not in data]:
            raise ValueError(f"a campaign verdict lacks the field(s) {missing}")
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def _measured(*figures: float | None) -> tuple[float, ...]:
    if any(figure is None for figure in figures):
        raise ValueError("a verdict without an interval has none to say")
    return tuple(float(figure) for figure in figures if figure is not None)


def _short(users: int, churn_rate: float | None) -> bool:
    churners = users * (churn_rate or 0.0)
    return min(churners, users - churners) < MIN_OUTCOMES


def _columns(frame: pd.DataFrame, needed: tuple[str, ...], what: str) -> None:
    if missing := [c for c in needed if c not in frame.columns]:
        raise ValueError(f"the {what} has no column {', '.join(missing)}")


def _unique(frame: pd.DataFrame, what: str) -> None:
    repeated = frame["msno"].duplicated()
    if repeated.any():
        row = int(np.flatnonzero(repeated)[0])
        raise ValueError(f"{what} row {row}: msno {frame['msno'].iloc[row]!r} is listed twice")


def _played(log: pd.DataFrame, plan: pd.DataFrame, summary: PlanSummary) -> pd.DataFrame:
    """The log joined with the plan: every logged subscriber with ``treated`` and the plan's
    columns; ``ValueError`` naming the row of a log that does not follow the plan."""
    _columns(log, LOG_COLUMNS, "campaign log")
    _columns(plan, (*PLAN_COLUMNS, PLAN_VALUE), "plan")
    _unique(log, "campaign log")
    _unique(plan, "plan")
    for row, (campaign, treated) in enumerate(zip(log["campaign_id"], log["treated"], strict=True)):
        if campaign != summary.campaign_id:
            raise ValueError(
                f"campaign log row {row}: campaign_id {campaign!r} is not the plan's "
                f"{summary.campaign_id!r}"
            )
        if treated not in (0, 1):
            raise ValueError(f"campaign log row {row}: treated {treated!r} is neither 0 nor 1")
    played = log[["msno", "treated"]].merge(plan, on="msno", how="left", indicator=True)
    for row, (msno, treated, found, contact) in enumerate(
        zip(played["msno"], played["treated"], played["_merge"], played["contact"], strict=True)
    ):
        if found != "both":
            raise ValueError(f"campaign log row {row}: msno {msno!r} is not in the plan")
        if treated == 1 and not bool(contact):
            raise ValueError(
                f"campaign log row {row}: msno {msno!r} was contacted, but the plan did not "
                "list them to contact"
            )
    return played.drop(columns="_merge")


def _labelled(compared: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    """``compared`` with each subscriber's ``churn`` label; those without one dropped."""
    churn = compared["msno"].map(labels)
    bad = churn.notna() & ~churn.isin([0, 1])
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"the label of msno {compared['msno'].iloc[row]!r} is {churn.iloc[row]}, not 0 or 1"
        )
    return compared.assign(churn=churn)[churn.notna()]


def _finite(frame: pd.DataFrame, column: str, what: str) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(float)
    if not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ValueError(f"{what}: msno {frame['msno'].iloc[row]!r} has no {column}")
    return values


def difference(treated: np.ndarray, control: np.ndarray, ddof: int) -> tuple[float, float]:
    """The difference of the means ``treated - control`` and its standard error, each group with
    its own variance (``ddof`` 0 for 0/1 outcomes is the Wald form, ``p (1 - p) / n``)."""
    error = math.sqrt(treated.var(ddof=ddof) / len(treated) + control.var(ddof=ddof) / len(control))
    return float(treated.mean() - control.mean()), error


def played_plan(
    log: pd.DataFrame, plans: list[tuple[pd.DataFrame, PlanSummary]]
) -> tuple[pd.DataFrame, PlanSummary] | None:
    """The newest of ``plans`` (newest first, as ``monitoring.predictions.campaign_plans`` reads
    them) whose contacts are exactly the subscribers the log says were contacted; None if none
    is. A cohort scored again after its campaign was played (a new champion) has a newer plan,
    with other targets, that nobody played."""
    contacted = set(log.loc[log["treated"] == 1, "msno"].astype(str))
    for plan, summary in plans:
        if set(plan.loc[plan["contact"].astype(bool), "msno"].astype(str)) == contacted:
            return plan, summary
    return None


def campaign_verdict(
    log: pd.DataFrame,
    labels: pd.Series,
    plan: pd.DataFrame,
    summary: PlanSummary,
    oracle: pd.DataFrame | None = None,
) -> Verdict:
    """The verdict of the campaign ``log`` played from ``plan`` (its list and ``summary``).
    ``labels``: ``is_churn`` (0/1) by msno, a subscriber absent or NaN being unlabelled;
    ``oracle``: ``churn_probability`` and ``churn_probability_offered`` by msno (synthetic data).
    Raises ``ValueError`` naming the column or row that is missing or does not follow the plan."""
    played = _played(log, plan, summary)
    treated = played["treated"] == 1
    planned = played["target"].astype(bool) & played["control"].astype(bool)
    held_out = (played["treated"] == 0) & planned
    compared = played[treated | held_out]
    judged = _labelled(compared, labels)
    contacted, control = judged[judged["treated"] == 1], judged[judged["treated"] == 0]
    n = len(contacted)
    cost = n * summary.offer_cost
    value = {
        name: _finite(frame, "lifetime_value", "the plan")
        for name, frame in (("contacted", contacted), ("control", control))
    }
    churned = {
        "contacted": contacted["churn"].to_numpy(float),
        "control": control["churn"].to_numpy(float),
    }
    rates = {k: float(v.mean()) if len(v) else None for k, v in churned.items()}
    realized = _realized(n, cost, churned, value, rates)
    return Verdict(
        cohort=summary.cohort,
        campaign_id=summary.campaign_id,
        currency=summary.currency,
        contacted=n,
        control=len(control),
        unlabelled=len(compared) - len(judged),
        not_compared=len(played) - len(compared),
        contacted_churn_rate=rates["contacted"],
        control_churn_rate=rates["control"],
        cost=float(cost),
        forecast_saves=float(_finite(contacted, "expected_save", "the plan").sum()),
        forecast_net_value=float(_finite(contacted, PLAN_VALUE, "the plan").sum()),
        **realized,
        **_oracle(oracle, contacted, value["contacted"], cost),
        ranked_by=summary.ranked_by,
    )


def _realized(
    n: int,
    cost: float,
    churned: dict[str, np.ndarray],
    value: dict[str, np.ndarray],
    rates: dict[str, float | None],
) -> dict[str, float | None]:
    """The realized saves and net value with their intervals; None where a group is too
    small to tell (``MIN_OUTCOMES``)."""
    found: dict[str, float | None] = dict.fromkeys(
        (
            f"realized_{name}{end}"
            for name in ("saves", "net_value")
            for end in ("", "_low", "_high")
        ),
    )
    found["return_on_cost"] = None
    if _short(len(churned["control"]), rates["control"]) or _short(n, rates["contacted"]):
        return found
    kept, error = difference(churned["control"], churned["contacted"], ddof=0)
    retained = {k: (1 - churned[k]) * value[k] for k in churned}
    gained, gained_error = difference(retained["contacted"], retained["control"], ddof=1)
    net = n * gained - cost
    found.update(
        realized_saves=n * kept,
        realized_saves_low=n * (kept - _Z * error),
        realized_saves_high=n * (kept + _Z * error),
        realized_net_value=net,
        realized_net_value_low=net - n * _Z * gained_error,
        realized_net_value_high=net + n * _Z * gained_error,
        return_on_cost=net / cost if cost > 0 else None,
    )
    return found


def _oracle(
    oracle: pd.DataFrame | None, contacted: pd.DataFrame, value: np.ndarray, cost: float
) -> dict[str, float | None]:
    """The saves and net value the oracle's probabilities expect of the contacted."""
    if oracle is None:
        return {"oracle_saves": None, "oracle_net_value": None}
    _columns(oracle, ("churn_probability", "churn_probability_offered"), "oracle")
    answers = oracle.reindex(contacted["msno"]).reset_index(names="msno")
    drop = _finite(answers, "churn_probability", "the oracle") - _finite(
        answers, "churn_probability_offered", "the oracle"
    )
    return {
        "oracle_saves": float(drop.sum()),
        "oracle_net_value": float((drop * value).sum() - cost),
    }


def verdict_metrics(verdict: Verdict) -> dict[str, float]:
    """The verdict's figures as run metrics (``campaign_<field>``), those not measured left out."""
    names = ("contacted", "control", "unlabelled", "cost", "return_on_cost")
    prefixes = ("realized_", "forecast_", "oracle_")
    return {
        f"campaign_{f.name}": float(getattr(verdict, f.name))
        for f in fields(verdict)
        if (f.name in names or f.name.startswith(prefixes)) and getattr(verdict, f.name) is not None
    }


def write_verdict(lake: Lake, verdict: Verdict) -> str:
    """The verdict in the lake, replacing the cohort's previous one whole; its URL."""
    url = lake.url(QUALITY, verdict.cohort, VERDICT)
    path = lake.path_of(url)
    lake.fs.makedirs(posixpath.dirname(path), exist_ok=True)
    lake.replace(path, verdict.to_json().encode())
    return url


def read_verdict(lake: Lake, cohort: str) -> Verdict | None:
    """The verdict of the campaign of ``cohort``, or None when none was measured."""
    path = lake.path_of(lake.url(QUALITY, cohort, VERDICT))
    if not lake.fs.exists(path):
        return None
    return Verdict.from_json(lake.fs.cat_file(path).decode())


def newest_verdict(lake: Lake) -> Verdict | None:
    """The verdict of the newest cohort that has one, or None."""
    found = lake.fs.glob(lake.path_of(lake.url(QUALITY, "*", VERDICT)))
    if not found:
        return None
    cohort = max(posixpath.basename(posixpath.dirname(path)) for path in found)
    return read_verdict(lake, cohort)
