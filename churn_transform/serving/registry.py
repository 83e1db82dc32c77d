"""The registry's champion as the serving side sees it: which version the alias names, and that
version fetched with what the service says about it (labels and metadata).

The ``import`` step puts the champion into the BentoML store with these labels and metadata; a
service that follows the champion (``follow``) fetches a newly promoted one the same way, so
``/metadata`` and the metrics describe a model identically however it arrived. MLflow is
imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion

#: Run metrics the service reports as the model's evaluation.
REPORTED = (
    "roc_auc",
    "log_loss",
    "pr_auc",
    "brier",
    "precision",
    "recall",
    "churn_rate",
    "auc_gap_to_oracle",
    "threshold",
)


@dataclass(frozen=True)
class Registered:
    """A registry version: its number and the run that trained it (both name it: another
    registry, a fresh mlflow.db, also starts at version 1)."""

    version: str
    run_id: str


def labels_of(champion: ModelVersion, run: Run) -> dict[str, str]:
    """The store model's labels: registry version, run and the gold tables' content hashes."""
    return {
        "registry_version": str(champion.version),
        "run_id": str(champion.run_id),
        "data_version": run.data.tags.get("gold_hash.train", "unknown")[:12],
        "eval_data_version": run.data.tags.get("gold_hash.eval", "unknown")[:12],
    }


def metadata_of(model_uri: str, run: Run, version: ModelVersion) -> dict[str, Any]:
    """What the service's ``/metadata`` returns: the reported metrics, when and what trained it,
    and the version's model card (its description, written by ``train``)."""
    return {
        "metrics": {k: run.data.metrics[k] for k in REPORTED if k in run.data.metrics},
        "trained_at": run.info.start_time,
        "git_commit": run.data.tags.get("git_commit", ""),
        "model_uri": model_uri,
        "model_card": version.description or "",
    }


def aliased(tracking_uri: str, name: str, alias: str) -> Registered:
    """The version ``name@alias`` names now; raises MLflow's error when there is none."""
    import mlflow

    found = mlflow.MlflowClient(tracking_uri).get_model_version_by_alias(name, alias)
    return Registered(str(found.version), str(found.run_id))


def aliased_if_any(tracking_uri: str, name: str, alias: str) -> Registered | None:
    """The version ``name@alias`` names now, or None when the alias names none (the
    ``challenger``, which comes and goes); raises MLflow's error when the registry does not
    answer, or has no model ``name``."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    version = client.get_registered_model(name).aliases.get(alias)
    if version is None:
        return None
    found = client.get_model_version(name, str(version))
    return Registered(str(found.version), str(found.run_id))


def fetch(tracking_uri: str, name: str, version: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """Version ``version`` of ``name`` downloaded into a new temporary folder: the folder, the
    labels and the metadata the ``import`` step would give it."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    found = client.get_model_version(name, version)
    run = client.get_run(str(found.run_id))
    model_uri = f"models:/{name}/{version}"
    folder = mlflow.artifacts.download_artifacts(
        artifact_uri=model_uri,
        dst_path=tempfile.mkdtemp(prefix="champion-"),
        tracking_uri=tracking_uri,
    )
    return folder, labels_of(found, run), metadata_of(model_uri, run, found)
