"""Entry point ``import``: the registry's champion into the BentoML model store.

Reads ``models:/<model_name>@<champion_alias>`` and its training run, and imports the model with
``bentoml.mlflow.import_model`` under the same name, labelled with the registry version, run id
and the content hash of the gold tables it was trained and judged on; the run's evaluation
metrics, decision threshold and model card go in the metadata that the service's ``/metadata``
returns.
Importing the version (and run) that is already the store's latest does nothing.

The module is not named like its entry point because ``import`` is a Python keyword.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping

import bentoml
import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from churn_transform.serving.registry import labels_of, metadata_of
from churn_transform.settings import Settings
from steps._cli import load_registered, start, tracked_run

log = logging.getLogger(__name__)


def latest_imported(name: str) -> bentoml.Model | None:
    try:
        return bentoml.models.get(f"{name}:latest")
    except bentoml.exceptions.NotFound:
        return None


def is_imported(labels: Mapping[str, str] | None, champion: ModelVersion) -> bool:
    """Whether a store model with these labels (``None``: no model) is ``champion``."""
    if labels is None:
        return False
    # the run id too: another registry (a fresh mlflow.db) also starts at version 1
    imported = (labels.get("registry_version"), labels.get("run_id"))
    return imported == (str(champion.version), champion.run_id)


def import_champion(settings: Settings) -> tuple[bentoml.Model, bool]:
    """The champion in the BentoML store, and whether this call imported it. A champion whose
    artifact is not a model this project trained (``modelling.artifact``) stops the step
    before it reaches the store."""
    client = mlflow.MlflowClient(settings.tracking_uri)
    try:
        champion = client.get_model_version_by_alias(settings.model_name, settings.champion_alias)
    except MlflowException as error:
        sys.exit(
            f"import: no {settings.champion_alias!r} version of {settings.model_name!r} to "
            f"import ({str(error).splitlines()[0]}); train one that clears the floor first"
        )
    current = latest_imported(settings.model_name)
    if current is not None and is_imported(current.info.labels, champion):
        return current, False
    run = client.get_run(str(champion.run_id))
    model_uri = f"models:/{settings.model_name}/{champion.version}"
    load_registered(model_uri)  # exits, naming the reason, on a tampered or foreign artifact
    model = bentoml.mlflow.import_model(
        settings.model_name,
        model_uri,
        labels=labels_of(champion, run),
        metadata=metadata_of(model_uri, run, champion),
        # BentoML's own default, said outright: the service calls the model itself, unbatched
        signatures={"predict": {"batchable": False}},
    )
    return model, True


def main(argv: list[str] | None = None) -> None:
    """No parameters: the champion is the registry's alias."""
    settings = start("import")
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    with tracked_run(settings, "import"):
        model, imported = import_champion(settings)
        mlflow.set_tags({"bentoml_tag": str(model.tag), **model.info.labels})
    verb = "imported" if imported else "already in the store:"
    print(f"{verb} {model.tag} (registry version {model.info.labels['registry_version']})")


if __name__ == "__main__":
    main()
