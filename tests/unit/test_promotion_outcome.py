"""The promotion gate's typed outcome (issue #32): each outcome from crafted figures, its sentence
for people, its record kept on a real MLflow run and read back whole, the gate on a real registry,
and the cycle following the record whatever the sentence says."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest

import steps.cycle as cycle
from churn_transform.modelling.promotion import (
    Floor,
    Gate,
    Judged,
    Outcome,
    PromotionOutcome,
    check_floor,
    compare,
    promote,
    record,
    recorded,
    segments_of,
)
from churn_transform.schema import LABEL
from churn_transform.settings import Settings
from tests.conftest import tracking_store
from tests.unit.test_explanation import _gold

GATE = Gate(Floor(0.6, 0.9), margin=0.005, max_segment_auc_drop=0.05)


def _segments(off: float, width: float = 0.01) -> pd.DataFrame:
    """Per-segment metrics as ``segments_of`` gives them: auto_renew=off at ROC AUC ``off``,
    its interval ``width`` either side; both segments calibrated."""
    return pd.DataFrame(
        {
            "segment": ["auto_renew", "auto_renew"],
            "value": ["on", "off"],
            "users": [900, 600],
            "churners": [40, 60],
            "churner_share": [0.4, 0.6],
            "roc_auc": [0.80, off],
            "roc_auc_low": [0.79, off - width],
            "roc_auc_high": [0.81, off + width],
            "calibration_gap": [0.0, 0.0],
            "calibration_gap_low": [-0.01, -0.01],
            "calibration_gap_high": [0.01, 0.01],
        }
    )


CHAMPION = Judged("1", {"roc_auc": 0.80, "log_loss": 0.30}, _segments(0.78))


def _candidate(
    roc_auc: float, log_loss: float = 0.29, off: float = 0.78, width: float = 0.01, **more: float
) -> Judged:
    scores = {"roc_auc": roc_auc, "log_loss": log_loss, **more}
    return Judged("2", scores, _segments(off, width))


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        (_candidate(0.55), "ROC AUC 0.5500 is not above the floor of 0.6"),
        (
            _candidate(0.85, oracle_roc_auc=0.95),
            "ROC AUC 0.8500 is below 90% of the oracle's 0.9500 on the same users",
        ),
    ],
)
def test_a_candidate_below_the_floor_is_refused_whatever_the_champion(
    candidate: Judged, reason: str
) -> None:
    outcome = check_floor(candidate, GATE, "champion", "1")
    assert outcome == PromotionOutcome(Outcome.BELOW_FLOOR, "2", "champion", "1", (reason,))
    assert outcome.refused and not outcome.promoted


def test_a_candidate_above_the_floor_goes_on_to_the_comparison() -> None:
    assert check_floor(_candidate(0.61), GATE, "champion", None) is None


def test_the_first_candidate_above_the_floor_is_promoted() -> None:
    outcome = compare(_candidate(0.61, log_loss=0.9), None, GATE, "champion")
    assert outcome == PromotionOutcome(Outcome.PROMOTED, "2", "champion", None)


def test_a_candidate_whose_segment_interval_lies_far_below_the_champion_is_refused() -> None:
    outcome = compare(_candidate(0.90, off=0.70), CHAMPION, GATE, "champion")
    assert outcome.outcome is Outcome.SEGMENT_REGRESSION and outcome.refused
    assert outcome.champion == "1"
    assert outcome.reasons == (
        "auto_renew=off (600 users, 60 churners): ROC AUC 0.7000 (0.6900 to 0.7100) lies wholly "
        "more than 0.05 below the champion's 0.7800",
    )


def test_a_segment_whose_interval_is_too_wide_to_say_does_not_hold_a_candidate_back() -> None:
    # the same point estimate, 0.08 below, but the interval reaches above 0.78 - 0.05
    assert compare(_candidate(0.90, off=0.70, width=0.04), CHAMPION, GATE, "champion").promoted


@pytest.mark.parametrize(
    ("candidate", "kind"),
    [
        (_candidate(0.81), Outcome.PROMOTED),  # better by the margin
        (_candidate(0.803), Outcome.CHALLENGER),  # better, but not by enough
        (_candidate(0.85, log_loss=0.31), Outcome.CHALLENGER),  # ranks better, calibrated worse
    ],
)
def test_a_candidate_is_promoted_only_if_it_beats_the_champion_by_the_margin(
    candidate: Judged, kind: Outcome
) -> None:
    assert compare(candidate, CHAMPION, GATE, "champion") == PromotionOutcome(
        kind, "2", "champion", "1"
    )


OUTCOMES = [
    (PromotionOutcome(Outcome.PROMOTED, "1", "champion"), "version 1 is the new champion"),
    (
        PromotionOutcome(Outcome.CHALLENGER, "2", "champion", "1"),
        "version 2 stays a challenger: champion is version 1",
    ),
    (
        PromotionOutcome(Outcome.BELOW_FLOOR, "3", "best", "1", ("AUC low",)),
        "version 3 is refused and will not serve: AUC low",
    ),
    (
        PromotionOutcome(Outcome.SEGMENT_REGRESSION, "4", "champion", "1", ("city=1", "age")),
        "version 4 is refused and will not serve: city=1; age",
    ),
]


@pytest.mark.parametrize(("outcome", "sentence"), OUTCOMES)
def test_each_outcome_says_what_it_means_in_a_sentence(
    outcome: PromotionOutcome, sentence: str
) -> None:
    assert outcome.text() == sentence


@pytest.mark.parametrize("outcome", [outcome for outcome, _ in OUTCOMES])
def test_the_outcome_round_trips_through_its_json(outcome: PromotionOutcome) -> None:
    written = outcome.to_json()
    assert json.loads(written)["outcome"] == outcome.outcome.value
    assert PromotionOutcome.from_json(written) == outcome


def test_a_record_with_an_unknown_outcome_is_refused_naming_it() -> None:
    written = json.loads(OUTCOMES[0][0].to_json()) | {"outcome": "adopted"}
    with pytest.raises(ValueError, match="'adopted' is not a valid Outcome"):
        PromotionOutcome.from_json(json.dumps(written))


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A SQLite tracking store of the test's own, its experiment's artifacts under
    ``tmp_path``; MLflow's globals restored afterwards."""
    uri = tracking_store(tmp_path / "mlflow.db")
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.MlflowClient(uri).create_experiment(
        "promotion", artifact_location=str(tmp_path / "artifacts")
    )
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment)
    yield uri
    mlflow.set_tracking_uri(None)


def _recorded_run(outcome: PromotionOutcome | None, sentence: str | None = None) -> str:
    """A finished run with ``outcome`` recorded (none if None), its tag reworded to
    ``sentence`` if given; its id."""
    with mlflow.start_run() as run:
        if outcome is not None:
            record(outcome)
        if sentence is not None:
            mlflow.set_tag("promotion", sentence)
    return str(run.info.run_id)


@pytest.mark.parametrize(("outcome", "sentence"), OUTCOMES)
def test_a_recorded_outcome_is_read_back_whole_beside_its_sentence(
    outcome: PromotionOutcome, sentence: str, tracking: str
) -> None:
    run_id = _recorded_run(outcome)
    assert recorded(tracking, run_id) == outcome
    assert mlflow.MlflowClient(tracking).get_run(run_id).data.tags["promotion"] == sentence


def test_a_run_that_recorded_no_outcome_reads_as_none(tracking: str) -> None:
    assert recorded(tracking, _recorded_run(None)) is None


ARGS = argparse.Namespace(
    month="2017-05",
    train_months=2,
    holdout=0.3,
    min_segment_users=100,
    margin=0.005,
    min_auc=0.6,
    min_oracle_share=0.9,
    max_segment_auc_drop=0.05,
)


@pytest.mark.parametrize(
    ("outcome", "sentence", "facts"),
    [
        # the sentence no longer starts "version N" nor says "is the new"
        (
            PromotionOutcome(Outcome.PROMOTED, "2", "champion", "1"),
            "v2 takes over from v1",
            {"action": "promoted", "candidate": "2"},
        ),
        # the sentence says "is the new", which the old text matching took for a promotion
        (
            PromotionOutcome(Outcome.CHALLENGER, "2", "champion", "1"),
            "version 2 is the new runner-up; champion stays version 1",
            {"action": "refused", "candidate": "2"},
        ),
        (
            PromotionOutcome(Outcome.SEGMENT_REGRESSION, "2", "champion", "1", ("city=1",)),
            "version 2 is the new candidate held back on city=1",
            {"action": "refused", "candidate": "2"},
        ),
        (None, "version 2 is the new champion", {"action": "retrained", "candidate": None}),
    ],
)
def test_the_cycle_follows_the_recorded_outcome_whatever_its_sentence_says(
    outcome: PromotionOutcome | None,
    sentence: str,
    facts: dict[str, Any],
    tracking: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_id = _recorded_run(outcome, sentence)
    monkeypatch.setattr(cycle, "_champion", lambda settings: ("1", {}, {}))
    trained: list[dict[str, object]] = []

    def step(entry_point: str, **parameters: object) -> str:
        trained.append({"entry_point": entry_point, **parameters})
        return run_id

    before = {"champion_before": "1", "labelled": "2017-04"}
    settings = Settings(tracking_uri=tracking)
    assert cycle._retrain(step, settings, ARGS, before) == facts
    assert [each["entry_point"] for each in trained] == ["train"]


class Fixed:
    """A model whose probabilities are given, row for row."""

    def __init__(self, probability: np.ndarray) -> None:
        self.probability = probability

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        return np.column_stack([1 - self.probability, self.probability])


@pytest.fixture
def registry(tracking: str) -> tuple[Settings, pd.DataFrame, Fixed]:
    """Version 1 of the model, the champion (threshold 0.5), version 2 registered beside it;
    the gate's evaluation users and the champion as a model scoring them."""
    client = mlflow.MlflowClient(tracking)
    settings = Settings(tracking_uri=tracking)
    client.create_registered_model(settings.model_name)
    for _ in ("1", "2"):
        with mlflow.start_run() as run:
            mlflow.log_metric("threshold", 0.5)
        source = f"runs:/{run.info.run_id}/model"
        client.create_model_version(settings.model_name, source, run.info.run_id)
    client.set_registered_model_alias(settings.model_name, settings.champion_alias, "1")
    gold, label = _gold(400, seed=3)
    gold[LABEL] = label
    noise = np.random.default_rng(4).random(len(label))
    return settings, gold, Fixed(0.3 * label + 0.7 * noise)


def _tags(settings: Settings, version: str) -> dict[str, str]:
    found = mlflow.MlflowClient(settings.tracking_uri).get_model_version(
        settings.model_name, version
    )
    return dict(found.tags)


def _champion(settings: Settings) -> str:
    client = mlflow.MlflowClient(settings.tracking_uri)
    found = client.get_model_version_by_alias(settings.model_name, settings.champion_alias)
    return str(found.version)


def test_the_gate_keeps_a_candidate_that_does_not_beat_the_champion_as_a_challenger(
    registry: tuple[Settings, pd.DataFrame, Fixed],
) -> None:
    settings, gold, champion = registry
    loaded: list[str] = []

    def load(uri: str) -> Any:
        loaded.append(uri)
        return champion

    segments = segments_of(champion, gold, settings.offer_cost, settings.offer_acceptance)
    candidate = Judged("2", {"roc_auc": 0.61, "log_loss": 9.0}, segments)
    outcome = promote(settings, candidate, gold, GATE, load)
    assert outcome.outcome is Outcome.CHALLENGER and outcome.champion == "1"
    # 0.3 * label + 0.7 * noise: a mean near 0.44 against 20% churned, named whatever the outcome
    assert outcome.notes[0].startswith("cohort=all (400 users, 80 churners, 100% of them) is over")
    assert loaded == ["models:/kkbox-churn@champion"] and _champion(settings) == "1"
    tags = _tags(settings, "2")
    assert tags["role"] == "challenger"
    comparison = json.loads(tags["comparison"])
    assert comparison["champion_version"] == "1" and comparison["margin"] == GATE.margin
    assert comparison["candidate"] == candidate.scores and comparison["champion"]["roc_auc"] > 0.6


def test_the_gate_moves_the_alias_to_a_candidate_that_beats_the_champion(
    registry: tuple[Settings, pd.DataFrame, Fixed],
) -> None:
    settings, gold, champion = registry
    segments = segments_of(champion, gold, settings.offer_cost, settings.offer_acceptance)
    candidate = Judged("2", {"roc_auc": 0.99, "log_loss": 0.01}, segments)
    outcome = promote(settings, candidate, gold, GATE, lambda uri: champion)  # type: ignore[arg-type,return-value]
    assert outcome.promoted and outcome.champion == "1" and _champion(settings) == "2"
    assert "role" not in _tags(settings, "2")


def test_the_gate_refuses_a_candidate_below_the_floor_without_loading_the_champion(
    registry: tuple[Settings, pd.DataFrame, Fixed],
) -> None:
    settings, gold, _ = registry

    def load(uri: str) -> Any:
        raise AssertionError("the champion is not needed to refuse this one")

    candidate = Judged("2", {"roc_auc": 0.5, "log_loss": 0.7}, pd.DataFrame())
    outcome = promote(settings, candidate, gold, GATE, load)
    assert outcome.outcome is Outcome.BELOW_FLOOR and _champion(settings) == "1"
    tags = _tags(settings, "2")
    assert tags["role"] == "refused" and tags["refusal"] == outcome.refusal()
    assert "comparison" not in tags


def test_an_outcome_with_many_notes_keeps_them_all_in_its_record_and_a_tag_mlflow_takes(
    tracking: str,
) -> None:
    notes = tuple(f"segment={k} is under-predicted: {'x' * 200}" for k in range(60))
    outcome = PromotionOutcome(Outcome.PROMOTED, "1", "champion", notes=notes)
    run = _recorded_run(outcome)
    assert recorded(tracking, run) == outcome
    tag = mlflow.MlflowClient(tracking).get_run(run).data.tags["promotion"]
    assert tag.startswith("version 1 is the new champion\n  watch: segment=0 ")
    assert tag.endswith("(all of it in promotion.json)")
