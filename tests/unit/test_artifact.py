"""Only models this project trained load: skops with the project's types, nothing else."""

from __future__ import annotations

import zipfile
from pathlib import Path

import lightgbm as lgb
import mlflow.sklearn
import numpy as np
import pytest
import skops.io
import yaml
from sklearn.pipeline import Pipeline

from churn_transform.modelling.artifact import (
    FORMAT,
    TRUSTED_TYPES,
    UntrustedModelError,
    load_model,
)
from churn_transform.modelling.model import ChurnModel
from churn_transform.modelling.training import model_requirements
from churn_transform.modelling.transformer import ChurnFeatures
from tests.unit.test_model import _gold

MARKER = Path("/tmp/kkbox-artifact-test-ran-code")


class Gadget:
    """A type no model of ours holds; rebuilding it would run its __setstate__."""

    def __setstate__(self, state: dict) -> None:
        MARKER.write_text("ran")


class Payload:
    """Unpickling it runs a command of the attacker's choosing."""

    def __reduce__(self) -> tuple:
        return (Path.write_text, (MARKER, "ran"))


@pytest.fixture(scope="module")
def model() -> ChurnModel:
    gold, label = _gold(400, seed=3)
    booster = lgb.LGBMClassifier(n_estimators=10, verbose=-1, random_state=0)
    pipeline = Pipeline([("features", ChurnFeatures()), ("model", booster)])
    pipeline.fit(gold[:300], label[:300])
    return ChurnModel(pipeline).fit(gold[300:], label[300:])


@pytest.fixture(autouse=True)
def no_marker() -> None:
    MARKER.unlink(missing_ok=True)


def _saved(model: object, folder: Path, **options: object) -> Path:
    # given, as train gives them: else MLflow loads the model (running a payload) to infer them
    options.setdefault("pip_requirements", model_requirements())
    mlflow.sklearn.save_model(model, str(folder), **options)  # type: ignore[arg-type]
    return folder


def test_a_trained_model_loads_and_predicts_as_saved(model: ChurnModel, tmp_path: Path) -> None:
    folder = _saved(
        model, tmp_path / "m", serialization_format=FORMAT, skops_trusted_types=list(TRUSTED_TYPES)
    )
    rows = _gold(20, seed=4)[0]
    np.testing.assert_array_equal(load_model(folder).predict_proba(rows), model.predict_proba(rows))


def test_a_pickled_artifact_is_refused_before_it_can_run_code(tmp_path: Path) -> None:
    folder = _saved(Payload(), tmp_path / "m", serialization_format="cloudpickle")
    with pytest.raises(UntrustedModelError, match="saved as 'cloudpickle', which runs code"):
        load_model(folder)
    assert not MARKER.exists()


def test_a_skops_file_naming_other_types_is_refused_whatever_mlmodel_trusts(
    model: ChurnModel, tmp_path: Path
) -> None:
    folder = _saved(
        model, tmp_path / "m", serialization_format=FORMAT, skops_trusted_types=list(TRUSTED_TYPES)
    )
    model_file = (
        folder
        / yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["sklearn"]["pickled_model"]
    )
    skops.io.dump({"model": model, "gadget": Gadget()}, model_file)
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    mlmodel["flavors"]["sklearn"]["skops_trusted_types"].append(f"{__name__}.Gadget")
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(UntrustedModelError, match=f"does not trust: {__name__}.Gadget"):
        load_model(folder)
    assert not MARKER.exists()


def test_a_model_file_outside_the_artifact_is_refused(model: ChurnModel, tmp_path: Path) -> None:
    folder = _saved(
        model, tmp_path / "m", serialization_format=FORMAT, skops_trusted_types=list(TRUSTED_TYPES)
    )
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    mlmodel["flavors"]["sklearn"]["pickled_model"] = "../elsewhere.skops"
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(UntrustedModelError, match="lies outside the artifact"):
        load_model(folder)


def test_a_folder_that_is_no_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UntrustedModelError, match="is not an MLflow sklearn model"):
        load_model(tmp_path)


def test_a_model_trained_before_the_wings_is_refused_saying_to_retrain(
    model: ChurnModel, tmp_path: Path
) -> None:
    folder = _saved(
        model, tmp_path / "m", serialization_format=FORMAT, skops_trusted_types=list(TRUSTED_TYPES)
    )
    flavor = yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["sklearn"]
    model_file = folder / flavor["pickled_model"]
    with zipfile.ZipFile(model_file) as saved:  # the types named as the old layout named them
        members = {name: saved.read(name) for name in saved.namelist()}
    members["schema.json"] = members["schema.json"].replace(
        b"churn_transform.modelling.", b"churn_transform."
    )
    with zipfile.ZipFile(model_file, "w") as rewritten:
        for name, data in members.items():
            rewritten.writestr(name, data)
    with pytest.raises(UntrustedModelError, match=r"before the library moved into wings.*retrain"):
        load_model(folder)
