"""The ``import`` step's decisions, without a registry: what counts as already imported, and
what the store model carries."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from mlflow.entities.model_registry import ModelVersion

import steps.import_champion as import_step
from churn_transform.settings import Settings

CHAMPION = ModelVersion(name="kkbox-churn", version="3", creation_timestamp=0, run_id="run-a")


def _run(metrics: dict[str, float], tags: dict[str, str]) -> SimpleNamespace:
    return SimpleNamespace(
        data=SimpleNamespace(metrics=metrics, tags=tags), info=SimpleNamespace(start_time=1700)
    )


@pytest.mark.parametrize(
    ("labels", "imported"),
    [
        (None, False),  # an empty store
        ({"registry_version": "3", "run_id": "run-a"}, True),
        ({"registry_version": "2", "run_id": "run-a"}, False),  # an older version
        ({"registry_version": "3", "run_id": "run-b"}, False),  # another registry's version 3
        ({}, False),  # a model not imported by this step
    ],
)
def test_only_the_same_version_of_the_same_run_counts_as_imported(
    labels: dict[str, str] | None, imported: bool
) -> None:
    assert import_step.is_imported(labels, CHAMPION) is imported


def test_labels_name_the_version_the_run_and_the_gold_hashes() -> None:
    run = _run({}, {"gold_hash.train": "a" * 64, "gold_hash.eval": "b" * 64})
    assert import_step.labels_of(CHAMPION, run) == {  # type: ignore[arg-type]
        "registry_version": "3",
        "run_id": "run-a",
        "data_version": "a" * 12,
        "eval_data_version": "b" * 12,
    }
    assert import_step.labels_of(CHAMPION, _run({}, {}))["data_version"] == "unknown"  # type: ignore[arg-type]


def test_metadata_reports_only_the_evaluation_metrics_and_the_card() -> None:
    run = _run({"roc_auc": 0.9, "threshold": 0.3, "fit_seconds": 12.0}, {"git_commit": "abc"})
    carded = ModelVersion(
        name="kkbox-churn", version="3", creation_timestamp=0, description="# Model card"
    )
    metadata = import_step.metadata_of("models:/kkbox-churn/3", run, carded)  # type: ignore[arg-type]
    assert metadata == {
        "metrics": {"roc_auc": 0.9, "threshold": 0.3},
        "trained_at": 1700,
        "git_commit": "abc",
        "model_uri": "models:/kkbox-churn/3",
        "model_card": "# Model card",
    }


def test_the_store_s_latest_champion_is_not_imported_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Registry:
        def __init__(self, tracking_uri: str) -> None:
            pass

        def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
            return CHAMPION

    current = SimpleNamespace(
        info=SimpleNamespace(labels={"registry_version": "3", "run_id": "run-a"})
    )
    monkeypatch.setattr(import_step.mlflow, "MlflowClient", Registry)
    monkeypatch.setattr(import_step, "latest_imported", lambda name: current)
    monkeypatch.setattr(import_step.bentoml.mlflow, "import_model", pytest.fail)
    settings = Settings(tracking_uri="sqlite:///unused.db")
    assert import_step.import_champion(settings) == (current, False)
