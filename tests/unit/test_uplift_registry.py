"""The uplift model in the registry (``churn_transform.modelling.uplift_registry``): saved in
skops and rebuilt with its trusted types only; no champion is None; the gate's outcome moves
the alias or tags the version, leaving the champion where it was."""

from __future__ import annotations

from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest

from churn_transform.modelling.artifact import FORMAT, UntrustedModelError
from churn_transform.modelling.promotion import Outcome, PromotionOutcome
from churn_transform.modelling.uplift import UpliftConfig, UpliftModel, fit_uplift
from churn_transform.modelling.uplift_registry import (
    TRUSTED_TYPES,
    apply,
    champion_version,
    load_uplift_champion,
    load_uplift_model,
)
from churn_transform.settings import Settings
from tests.conftest import tracking_store

NAME = "kkbox-uplift"


def _fitted() -> tuple[UpliftModel, pd.DataFrame]:
    rng = np.random.default_rng(0)
    features = pd.DataFrame({"a": rng.random(600), "b": rng.random(600)})
    treated, churned = rng.random(600) < 0.5, rng.random(600) < 0.3
    config = UpliftConfig(n_estimators=5, min_child_samples=20)
    return fit_uplift(features, treated, churned, config), features


def test_a_saved_uplift_model_loads_back_and_predicts_the_same(tmp_path: Path) -> None:
    model, features = _fitted()
    mlflow.sklearn.save_model(
        model,
        str(tmp_path / "model"),
        serialization_format=FORMAT,
        skops_trusted_types=list(TRUSTED_TYPES),
    )
    loaded = load_uplift_model(str(tmp_path / "model"))
    np.testing.assert_allclose(loaded.predict(features), model.predict(features))


def test_another_object_in_the_artifact_is_refused(tmp_path: Path) -> None:
    model, _ = _fitted()
    mlflow.sklearn.save_model(
        model.control,
        str(tmp_path / "model"),
        serialization_format=FORMAT,
        skops_trusted_types=list(TRUSTED_TYPES),
    )
    with pytest.raises(UntrustedModelError, match="holds a LGBMClassifier, not an UpliftModel"):
        load_uplift_model(str(tmp_path / "model"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(tracking_uri=tracking_store(tmp_path / "mlflow.db"), data_dir=str(tmp_path))


def test_no_registered_uplift_model_or_no_alias_is_no_champion(settings: Settings) -> None:
    assert load_uplift_champion(settings) is None
    mlflow.MlflowClient(settings.tracking_uri).create_registered_model(NAME)
    assert champion_version(settings) is None


def _versions(settings: Settings, count: int) -> mlflow.MlflowClient:
    client = mlflow.MlflowClient(settings.tracking_uri)
    client.create_registered_model(NAME)
    for _ in range(count):
        client.create_model_version(NAME, source=str(Path(settings.data_dir) / "model"))
    return client


def test_a_promoted_version_takes_the_alias_and_a_behind_one_leaves_it(settings: Settings) -> None:
    client = _versions(settings, 3)
    apply(settings, PromotionOutcome(Outcome.PROMOTED, "1", "champion"))
    assert champion_version(settings) == "1"
    assert "promoted_at" in client.get_model_version(NAME, "1").tags
    apply(settings, PromotionOutcome(Outcome.BEHIND, "2", "champion", "1"))
    reason = ("observed Qini interval reaches 0",)
    apply(settings, PromotionOutcome(Outcome.BELOW_FLOOR, "3", "champion", "1", reason))
    assert champion_version(settings) == "1"
    assert client.get_model_version(NAME, "2").tags["role"] == "behind"
    refused = client.get_model_version(NAME, "3").tags
    assert refused["role"] == "refused" and refused["refusal"] == reason[0]
