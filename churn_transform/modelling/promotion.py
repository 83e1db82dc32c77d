"""The promotion gate: whether a newly registered model version serves, and the record of why.

The gate's rules, in order: the floor any model must clear, the first one included (``refusal``);
no segment surely far below the champion's on the same users (``segments.segment_regressions``:
its bootstrap interval says so, not a point estimate, however few its users); and beating the
champion by the margin without a worse log loss (``beats``). Whatever the outcome, its notes name
the segments holding a tenth of the churners whose ROC AUC interval lies at or below the floor
(``segments.below_floor``) and those the candidate surely over- or under-predicts
(``segments.miscalibrated``), with their gap and recall. ``check_floor`` and ``compare`` apply them
and return a typed ``PromotionOutcome``; ``promote`` applies them on the registry (the champion
alias moved, or the version tagged ``challenger`` or ``refused`` with its reason); ``record`` keeps
the outcome on the training run as ``promotion.json``, which ``recorded`` reads back (the monthly
cycle does), beside its sentence for people (the run's tag ``promotion``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException

from churn_transform.modelling.campaign import monthly_price, targeted
from churn_transform.modelling.model import ChurnModel
from churn_transform.modelling.rollback import mark_promoted
from churn_transform.modelling.segments import (
    below_floor,
    miscalibrated,
    segment_metrics,
    segment_regressions,
)
from churn_transform.modelling.training import evaluate
from churn_transform.schema import FEATURES, LABEL
from churn_transform.settings import Settings

#: The training run's artifact holding its outcome.
RECORD = "promotion.json"
#: The longest ``promotion`` tag written (MLflow's limit is 8,000 characters).
TAG_LIMIT = 5000


@dataclass(frozen=True)
class Floor:
    """What any model must clear to become champion, the first one included."""

    min_roc_auc: float
    #: Share of the oracle's ROC AUC on the same users, where the data is synthetic.
    min_oracle_share: float


def refusal(scores: dict[str, float], floor: Floor) -> str | None:
    """Why a candidate may not serve at all (a constant model, or one far below the oracle),
    or None when it clears the floor. ``scores`` may carry ``oracle_roc_auc``."""
    auc = scores["roc_auc"]
    if not auc > floor.min_roc_auc:
        return f"ROC AUC {auc:.4f} is not above the floor of {floor.min_roc_auc}"
    oracle = scores.get("oracle_roc_auc")
    if oracle is not None and auc < floor.min_oracle_share * oracle:
        return (
            f"ROC AUC {auc:.4f} is below {floor.min_oracle_share:.0%} of the oracle's "
            f"{oracle:.4f} on the same users"
        )
    return None


def beats(candidate: dict[str, float], champion: dict[str, float] | None, margin: float) -> bool:
    """Promotion rule: no champion yet, or a ROC AUC higher by at least ``margin`` on the same
    evaluation cohort, without a worse log loss."""
    if champion is None:
        return True
    better = candidate["roc_auc"] >= champion["roc_auc"] + margin
    return better and candidate["log_loss"] <= champion["log_loss"]


class Outcome(StrEnum):
    """What the gate did with a candidate."""

    PROMOTED = "promoted"  # the champion alias names it now
    BELOW_FLOOR = "below_floor"  # refused: not good enough to serve at all
    SEGMENT_REGRESSION = "segment_regression"  # refused: far below the champion on a segment
    CHALLENGER = "challenger"  # kept beside the champion, which it did not beat


@dataclass(frozen=True)
class PromotionOutcome:
    """The gate's outcome for ``version``. ``champion``: the version the ``alias`` named when
    the gate judged (None: none did); ``reasons``: why a refused version will not serve;
    ``notes``: what to watch whatever the outcome (segments it surely mis-predicts)."""

    outcome: Outcome
    version: str
    alias: str
    champion: str | None = None
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def promoted(self) -> bool:
        return self.outcome is Outcome.PROMOTED

    @property
    def refused(self) -> bool:
        return self.outcome in (Outcome.BELOW_FLOOR, Outcome.SEGMENT_REGRESSION)

    def text(self) -> str:
        """The outcome as a sentence, for people (printed, and the run's tag ``promotion``)."""
        return self._decision() + "".join(f"\n  watch: {note}" for note in self.notes)

    def _decision(self) -> str:
        if self.refused:
            return f"version {self.version} is refused and will not serve: {self.refusal()}"
        if self.promoted:
            return f"version {self.version} is the new {self.alias}"
        return f"version {self.version} stays a challenger: {self.alias} is version {self.champion}"

    def refusal(self) -> str:
        """The reasons in one line (the version's tag ``refusal``)."""
        return "; ".join(self.reasons)

    def to_json(self) -> str:
        return json.dumps(
            {
                "outcome": self.outcome.value,
                "version": self.version,
                "alias": self.alias,
                "champion": self.champion,
                "reasons": list(self.reasons),
                "notes": list(self.notes),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> PromotionOutcome:
        """The outcome ``to_json`` wrote (before notes, none); raises ValueError naming an
        unknown outcome."""
        fields = json.loads(text)
        champion = fields["champion"]
        return cls(
            Outcome(fields["outcome"]),
            str(fields["version"]),
            str(fields["alias"]),
            None if champion is None else str(champion),
            tuple(fields["reasons"]),
            tuple(fields.get("notes", ())),
        )


@dataclass(frozen=True)
class Gate:
    """The gate's limits (MLproject's ``train`` parameters give their defaults)."""

    floor: Floor
    margin: float
    max_segment_auc_drop: float


@dataclass(frozen=True)
class Judged:
    """A model version on the gate's evaluation users: its ``scores`` (``roc_auc``,
    ``log_loss``, ..., and ``oracle_roc_auc`` on synthetic data) and its ``segments``
    (``segments_of``)."""

    version: str
    scores: dict[str, float]
    segments: pd.DataFrame


def segments_of(
    model: object, gold: pd.DataFrame, offer_cost: float, acceptance: float
) -> pd.DataFrame:
    """The model's metrics per segment of the labelled cohort ``gold``, recall at the cut of
    the campaign its probabilities would choose there (``campaign.targeted``)."""
    probability = model.predict_proba(gold[list(FEATURES)])[:, 1]  # type: ignore[attr-defined]
    chosen = targeted(probability, monthly_price(gold), offer_cost, acceptance)
    return segment_metrics(gold, gold[LABEL].astype(int).to_numpy(), probability, chosen)


def check_floor(
    candidate: Judged, gate: Gate, alias: str, champion: str | None
) -> PromotionOutcome | None:
    """The refusal of a candidate that may not serve at all, whatever the champion (version
    ``champion``, or None), or None when it clears the floor."""
    reason = refusal(candidate.scores, gate.floor)
    if reason is None:
        return None
    notes = _notes(candidate, gate)
    kind = Outcome.BELOW_FLOOR
    return PromotionOutcome(kind, candidate.version, alias, champion, (reason,), notes)


def _notes(candidate: Judged, gate: Gate) -> tuple[str, ...]:
    """What to watch, whatever the outcome: segments holding a tenth of the churners whose ROC
    AUC interval lies at or below the floor, then where the candidate surely mis-predicts."""
    below = below_floor(candidate.segments, gate.floor.min_roc_auc)
    return (*below, *miscalibrated(candidate.segments))


def compare(candidate: Judged, champion: Judged | None, gate: Gate, alias: str) -> PromotionOutcome:
    """The outcome for a candidate above the floor: promoted when there is no champion; refused
    when a segment's interval says it is far below the champion's; else promoted only if it
    beats the champion by the margin, a challenger if not. Any outcome carries ``_notes``."""
    notes = _notes(candidate, gate)
    if champion is None:
        return PromotionOutcome(Outcome.PROMOTED, candidate.version, alias, notes=notes)
    worse = segment_regressions(candidate.segments, champion.segments, gate.max_segment_auc_drop)
    if worse:
        kind = Outcome.SEGMENT_REGRESSION
        return PromotionOutcome(
            kind, candidate.version, alias, champion.version, tuple(worse), notes
        )
    beaten = beats(candidate.scores, champion.scores, gate.margin)
    kind = Outcome.PROMOTED if beaten else Outcome.CHALLENGER
    return PromotionOutcome(kind, candidate.version, alias, champion.version, notes=notes)


def promote(
    settings: Settings,
    candidate: Judged,
    eval_gold: pd.DataFrame,
    gate: Gate,
    load: Callable[[str], ChurnModel],
) -> PromotionOutcome:
    """The gate on the registry for ``candidate``, a registered version judged on ``eval_gold``:
    the champion is judged on the same users (``load`` fetches it from its ``models:/`` URI,
    only once the candidate clears the floor), then the alias moves to the candidate, or the
    candidate is tagged ``challenger`` or ``refused``; the outcome. The comparison with the
    champion is kept as the candidate's tag ``comparison`` whenever the floor was cleared."""
    client = mlflow.MlflowClient(settings.tracking_uri)
    name, alias = settings.model_name, settings.champion_alias
    try:
        current = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        current = None
    outcome = check_floor(candidate, gate, alias, str(current.version) if current else None)
    if outcome is None:
        champion = None
        if current is not None:
            model = load(f"models:/{name}@{alias}")
            threshold = float(client.get_run(str(current.run_id)).data.metrics["threshold"])
            champion = _judged(str(current.version), model, eval_gold, threshold, settings)
        outcome = compare(candidate, champion, gate, alias)
        if not outcome.refused:
            comparison = _comparison(candidate, champion, gate)
            client.set_model_version_tag(name, candidate.version, "comparison", comparison)
    _apply(client, name, outcome)
    return outcome


def _judged(
    version: str, model: ChurnModel, gold: pd.DataFrame, threshold: float, settings: Settings
) -> Judged:
    segments = segments_of(model, gold, settings.offer_cost, settings.offer_acceptance)
    return Judged(version, evaluate(model, gold, threshold), segments)


def _comparison(candidate: Judged, champion: Judged | None, gate: Gate) -> str:
    return json.dumps(
        {
            "candidate": candidate.scores,
            "champion": champion.scores if champion else None,
            "margin": gate.margin,
            "champion_version": champion.version if champion else None,
        }
    )


def _apply(client: Any, name: str, outcome: PromotionOutcome) -> None:
    """The outcome in the registry: the alias moved, or the version's role (and refusal)."""
    if outcome.promoted:
        client.set_registered_model_alias(name, outcome.alias, outcome.version)
        mark_promoted(client, name, outcome.version)  # the champion history rollback walks back
        return
    role = "refused" if outcome.refused else "challenger"
    client.set_model_version_tag(name, outcome.version, "role", role)
    if outcome.refused:
        client.set_model_version_tag(name, outcome.version, "refusal", outcome.refusal())


def record(outcome: PromotionOutcome) -> None:
    """On the active run: the outcome as ``RECORD``, for ``recorded``, and its sentence as the
    tag ``promotion``, for people."""
    mlflow.log_text(outcome.to_json(), RECORD)
    sentence = outcome.text()
    if len(sentence) > TAG_LIMIT:  # many notes: MLflow refuses a tag value over 8,000 characters
        sentence = sentence[: TAG_LIMIT - 40] + f" ... (all of it in {RECORD})"
    mlflow.set_tag("promotion", sentence)


def recorded(tracking_uri: str, run_id: str) -> PromotionOutcome | None:
    """The outcome the training run ``run_id`` recorded; None for a run without one (one that
    stopped before its gate)."""
    client = mlflow.MlflowClient(tracking_uri)
    if RECORD not in {artifact.path for artifact in client.list_artifacts(run_id)}:
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = client.download_artifacts(run_id, RECORD, folder)
        return PromotionOutcome.from_json(Path(path).read_text())
