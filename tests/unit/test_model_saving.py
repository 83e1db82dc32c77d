"""A trained model is saved with its requirements given, pinned to the locked versions: MLflow
infers nothing and loads nothing while saving (its inference, without uv on PATH, loads the
model in a subprocess, running whatever a tampered artifact holds)."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import sys
from collections.abc import Iterator
from importlib.metadata import packages_distributions, version
from pathlib import Path

import lightgbm as lgb
import mlflow
import mlflow.sklearn
import pytest
from sklearn.pipeline import Pipeline

from churn_transform.modelling.artifact import TRUSTED_TYPES
from churn_transform.modelling.model import ChurnModel
from churn_transform.modelling.training import MODEL_RUNTIME, Fitted, model_requirements
from churn_transform.modelling.transformer import ChurnFeatures
from churn_transform.settings import Settings
from tests.conftest import tracking_store
from tests.unit.test_model import _gold


@pytest.fixture(scope="module")
def model() -> ChurnModel:
    gold, label = _gold(400, seed=3)
    booster = lgb.LGBMClassifier(n_estimators=10, verbose=-1, random_state=0)
    pipeline = Pipeline([("features", ChurnFeatures()), ("model", booster)])
    pipeline.fit(gold[:300], label[:300])
    return ChurnModel(pipeline).fit(gold[300:], label[300:])


def test_the_requirements_pin_the_installed_version_of_each_runtime_package() -> None:
    pins = dict(line.split("==") for line in model_requirements())
    assert list(pins) == list(MODEL_RUNTIME)
    assert pins == {name: version(name) for name in MODEL_RUNTIME}
    assert {"mlflow", "scikit-learn", "lightgbm", "skops"} <= set(pins)


def _distribution(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imports(module: str) -> set[str]:
    """Every module ``module``'s source imports, at its top or inside a function."""
    source = Path(importlib.util.find_spec(module).origin).read_text()  # type: ignore[union-attr, arg-type]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def _shipped_imports(roots: set[str]) -> set[str]:
    """Top-level packages imported by the project modules ``roots`` and every project module
    they import in turn: what the model's own code needs where it is loaded."""
    seen: set[str] = set()
    outside: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for name in _imports(module):
            if name.startswith("churn_transform."):
                todo.append(name)
            else:
                outside.add(name.partition(".")[0])
    return outside - set(sys.stdlib_module_names) - {"__future__"}


def test_the_requirements_bring_every_package_the_saved_model_s_types_import() -> None:
    # the modules of the types a saved model holds (its skops file names them)
    roots = {name.rpartition(".")[0] for name in TRUSTED_TYPES}
    project = {module for module in roots if module.startswith("churn_transform.")}
    others = {module.partition(".")[0] for module in roots - project}
    outside = _shipped_imports(project) | (others - set(sys.stdlib_module_names))
    owners = packages_distributions()
    needed = {_distribution(owner) for top in outside for owner in owners[top]}
    assert needed >= {"scikit-learn", "lightgbm", "numpy", "pandas", "pandera"}
    assert needed <= {_distribution(name) for name in MODEL_RUNTIME}


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A tracking store of the test's own, and a PATH without uv, as on a machine without it."""
    uri = tracking_store(tmp_path / "mlflow.db")
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    path = os.environ.get("PATH", "").split(os.pathsep)
    monkeypatch.setenv("PATH", os.pathsep.join(d for d in path if not (Path(d) / "uv").exists()))
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)


def test_train_logs_its_model_without_inferring_requirements_or_loading_it(
    model: ChurnModel, tracking: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from steps.train import log_model

    loads: list[str] = []
    monkeypatch.setattr(
        "mlflow.utils.environment._infer_requirements",
        lambda *args, **kwargs: loads.append("inferred requirements") or [],
    )
    monkeypatch.setattr(
        "mlflow.models.utils._validate_serving_input",
        lambda *args, **kwargs: loads.append("checked an input example"),
    )
    fitted = Fitted(model=model, best_iteration=10, threshold_reason="a test")
    with mlflow.start_run() as run:
        registered = log_model(fitted, _gold(20, seed=5)[0], Settings(tracking_uri=tracking))
    assert loads == []
    assert registered.run_id == run.info.run_id and str(registered.version) == "1"
    folder = Path(mlflow.artifacts.download_artifacts(f"models:/kkbox-churn/{registered.version}"))
    assert (folder / "requirements.txt").read_text().split() == model_requirements()
