"""The challenger judged on live traffic: the champion's and the challenger's probabilities for
the same subscribers, both in the traffic log (``serving.shadow``), against the labels those
subscribers were later given.

``compare_live`` pairs them: the traffic-log entries the champion answered and the challenger
scored, the newest per subscriber (a subscriber asked about twice counts once), joined to a
labelled cohort; each model's ROC AUC and log loss on those subscribers. ``judge`` applies the
gate's own rule (``promotion.beats``: a ROC AUC higher by the margin, no worse log loss) to
them: ``promoted`` when the challenger, which beat the champion offline to become the
challenger, wins on live traffic as well; ``retired`` when it does not; ``waiting`` while too few
labelled subscribers were answered by both (their labels come a cycle or two after the
answers). ``settle`` does what the judgement says on the registry; ``judge_challenger`` does it
all for the registry's challenger, as the monthly cycle asks. docs/challenger.md.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score

from churn_transform.modelling.promotion import beats
from churn_transform.serving.traffic import read_traffic
from churn_transform.settings import Settings

#: Traffic-log entries read at most (a uniform sample beyond): memory stays bounded.
MAX_ENTRIES = 500_000
#: The traffic-log fields ``compare_live`` reads.
CHAMPION_FIELDS = ("model_version", "churn_probability")
CHALLENGER_FIELDS = ("challenger_version", "challenger_probability")


@dataclass(frozen=True)
class LiveScores:
    """One model's figures on the subscribers both models scored."""

    roc_auc: float
    log_loss: float


@dataclass(frozen=True)
class LiveComparison:
    """Champion and challenger on the same ``n`` labelled subscribers (``churners`` of them
    churned); their scores are None when the subscribers do not hold both classes."""

    champion_version: str
    challenger_version: str
    n: int
    churners: int
    champion: LiveScores | None
    challenger: LiveScores | None


class Verdict(StrEnum):
    PROMOTED = "promoted"  # the champion alias names the challenger now
    RETIRED = "retired"  # the challenger alias is removed
    WAITING = "waiting"  # too few labelled subscribers yet: judged again next cycle


@dataclass(frozen=True)
class Judgement:
    """What the live comparison decided, and why, in a sentence."""

    verdict: Verdict
    comparison: LiveComparison
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict.value, "reason": self.reason, **asdict(self.comparison)}

    def text(self) -> str:
        version = self.comparison.challenger_version
        return f"challenger version {version} {self.verdict.value}: {self.reason}"


def compare_live(
    traffic: pd.DataFrame, labels: pd.Series, champion: str, challenger: str
) -> LiveComparison:
    """Version ``champion``'s answers and version ``challenger``'s shadow scores in ``traffic``
    (``read_traffic``'s frame), on the subscribers ``labels`` (0/1 by ``msno``) holds."""
    both = _paired(traffic, champion, challenger)
    known = labels.dropna().astype(int)
    both = both[both["msno"].isin(known.index)]
    truth = known.loc[both["msno"]].to_numpy()
    churners = int(truth.sum())
    scores: tuple[LiveScores | None, LiveScores | None] = (None, None)
    if 0 < churners < len(truth):
        scores = (
            _scores(truth, both["churn_probability"].to_numpy(float)),
            _scores(truth, both["challenger_probability"].to_numpy(float)),
        )
    return LiveComparison(champion, challenger, len(truth), churners, *scores)


def _paired(traffic: pd.DataFrame, champion: str, challenger: str) -> pd.DataFrame:
    """The newest entry per subscriber that both versions scored."""
    needed = ("msno", "ts", *CHAMPION_FIELDS, *CHALLENGER_FIELDS)
    if traffic.empty or not set(needed) <= set(traffic.columns):
        return pd.DataFrame({name: [] for name in needed})
    chosen = (traffic["model_version"].astype(str) == champion) & (
        traffic["challenger_version"].astype(str) == challenger
    )
    both = traffic.loc[chosen & traffic["challenger_probability"].notna(), list(needed)]
    newest = both.sort_values("ts", kind="stable").drop_duplicates("msno", keep="last")
    return newest.sort_values("msno")


def _scores(truth: np.ndarray, probability: np.ndarray) -> LiveScores:
    return LiveScores(
        float(roc_auc_score(truth, probability)), float(log_loss(truth, probability, labels=[0, 1]))
    )


def judge(comparison: LiveComparison, margin: float, min_users: int) -> Judgement:
    """The verdict on ``comparison``: at least ``min_users`` subscribers of both classes, then
    the gate's rule with ``margin``."""
    champion, challenger = comparison.champion, comparison.challenger
    if comparison.n < min_users or champion is None or challenger is None:
        reason = (
            f"{comparison.n} labelled subscribers ({comparison.churners} churners) were scored "
            f"by both; at least {min_users} of both classes are needed"
        )
        return Judgement(Verdict.WAITING, comparison, reason)
    figures = (
        f"on {comparison.n} labelled subscribers, ROC AUC {challenger.roc_auc:.4f} against "
        f"{champion.roc_auc:.4f}, log loss {challenger.log_loss:.4f} against "
        f"{champion.log_loss:.4f} (margin {margin})"
    )
    won = beats(asdict(challenger), asdict(champion), margin)
    if won:
        return Judgement(Verdict.PROMOTED, comparison, f"it wins live: {figures}")
    return Judgement(Verdict.RETIRED, comparison, f"it does not win live: {figures}")


def settle(client: Any, name: str, aliases: tuple[str, str], judgement: Judgement) -> None:
    """The judgement on the registry (an ``MlflowClient``; ``aliases``: the champion's and the
    challenger's): promoted, the champion alias moves to the challenger; promoted or retired,
    the challenger alias is removed and the version tagged with its role and the reason, the
    comparison beside them; waiting, nothing changes."""
    if judgement.verdict is Verdict.WAITING:
        return
    champion_alias, challenger_alias = aliases
    version = judgement.comparison.challenger_version
    if judgement.verdict is Verdict.PROMOTED:
        client.set_registered_model_alias(name, champion_alias, version)
    client.delete_registered_model_alias(name, challenger_alias)
    role = "champion" if judgement.verdict is Verdict.PROMOTED else "retired"
    client.set_model_version_tag(name, version, "role", role)
    client.set_model_version_tag(name, version, "live_comparison", json.dumps(judgement.to_dict()))
    if role == "retired":
        client.set_model_version_tag(name, version, "retirement", judgement.reason)


def judge_challenger(
    settings: Settings, labels: pd.Series, margin: float, min_users: int
) -> Judgement | None:
    """The registry's challenger judged against its champion on the traffic logged since the
    challenger was registered, for the subscribers ``labels`` holds, and the judgement settled
    on the registry; None when no challenger is named."""
    import mlflow

    client = mlflow.MlflowClient(settings.tracking_uri)
    name = settings.model_name
    aliases = client.get_registered_model(name).aliases
    challenger, champion = (
        aliases.get(settings.challenger_alias),
        aliases.get(settings.champion_alias),
    )
    if challenger is None or champion is None:
        return None
    created = client.get_model_version(name, str(challenger)).creation_timestamp
    start = datetime.fromtimestamp(created / 1000, UTC).strftime("%Y-%m-%d")
    uri = settings.traffic_uri
    traffic, _ = read_traffic(
        uri,
        start,
        "9999-12-31",
        max_rows=MAX_ENTRIES,
        storage_options=settings.storage_options(uri),
    )
    comparison = compare_live(traffic, labels, str(champion), str(challenger))
    judgement = judge(comparison, margin, min_users)
    settle(client, name, (settings.champion_alias, settings.challenger_alias), judgement)
    return judgement
