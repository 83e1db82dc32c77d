"""The model artifact: written in skops format, read back only with the project's own types.

A pickled model runs whatever code its file names when it is loaded, so a registry that anyone
could write to would be a way to run code in ``score``, ``import`` and the service. skops files
name the types they rebuild; ``load_model`` rebuilds only ``TRUSTED_TYPES`` (this module's list,
never the list the artifact's own ``MLmodel`` file carries, which a tampered artifact would
widen), refuses any other format, and does not put code shipped with the artifact on the path.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:  # imported when a model is loaded: `bentoml serve`'s supervisor never does
    from churn_transform.modelling.model import ChurnModel

#: Every type a trained ChurnModel's skops file names, beyond what skops trusts by default.
TRUSTED_TYPES: tuple[str, ...] = (
    "churn_transform.modelling.model.ChurnModel",
    "churn_transform.modelling.transformer.ChurnFeatures",
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
)
FORMAT = "skops"
#: The same types as named by models trained before the library moved into wings.
BEFORE_WINGS: tuple[str, ...] = (
    "churn_transform.model.ChurnModel",
    "churn_transform.transformer.ChurnFeatures",
)


class UntrustedModelError(RuntimeError):
    """An artifact that is not a model this project trained, or not in a safe format."""


def _model_file(model_dir: Path) -> Path:
    try:
        flavor = yaml.safe_load((model_dir / "MLmodel").read_text())["flavors"]["sklearn"]
    except (OSError, KeyError, TypeError, yaml.YAMLError) as error:
        raise UntrustedModelError(f"{model_dir} is not an MLflow sklearn model: {error}") from None
    if flavor.get("serialization_format") != FORMAT:
        raise UntrustedModelError(
            f"{model_dir} is saved as {flavor.get('serialization_format')!r}, which runs code "
            f"when loaded; only {FORMAT!r} models trained by `mlflow run . -e train` are loaded"
        )
    path = (model_dir / str(flavor.get("pickled_model", ""))).resolve()
    if not path.is_relative_to(model_dir.resolve()) or not path.is_file():
        raise UntrustedModelError(f"{model_dir}: the model file {path} lies outside the artifact")
    return path


def load_model(model_dir: str | Path) -> ChurnModel:
    """The ChurnModel saved in the MLflow model folder ``model_dir``, rebuilt from its skops file
    with ``TRUSTED_TYPES`` only; UntrustedModelError names whatever else the file asks for."""
    # skops is imported here, not at the top: its list of scikit-learn types imports whatever
    # array libraries are installed (Dask among them in the pipeline's environment), which
    # importing the service must not do.
    import skops.io

    from churn_transform.modelling.model import ChurnModel

    path = _model_file(Path(model_dir))
    try:
        unknown = set(skops.io.get_untrusted_types(file=path)) - set(TRUSTED_TYPES)
    except Exception as error:  # a file skops cannot even list: not one we wrote
        raise UntrustedModelError(f"{path} is not a readable skops file: {error}") from None
    if unknown and unknown <= set(BEFORE_WINGS):
        raise UntrustedModelError(
            f"{path} was trained before the library moved into wings ({', '.join(sorted(unknown))}"
            " are now under churn_transform.modelling): retrain it with "
            "`mlflow run . -e train --env-manager local`, or `make demo`"
        )
    if unknown:
        raise UntrustedModelError(
            f"{path} asks for types this project does not trust: {', '.join(sorted(unknown))}"
        )
    model = skops.io.load(path, trusted=list(TRUSTED_TYPES))
    if not isinstance(model, ChurnModel):
        raise UntrustedModelError(f"{path} holds a {type(model).__name__}, not a ChurnModel")
    return model


def read_trusted(model_dir: str | Path, trusted: tuple[str, ...]) -> object:
    """The object in the skops file of the MLflow model folder ``model_dir``, rebuilt with the
    ``trusted`` types only (the uplift model's list: ``modelling.uplift_registry``);
    UntrustedModelError names whatever else the file asks for."""
    import skops.io

    path = _model_file(Path(model_dir))
    try:
        unknown = set(skops.io.get_untrusted_types(file=path)) - set(trusted)
    except Exception as error:  # a file skops cannot even list: not one we wrote
        raise UntrustedModelError(f"{path} is not a readable skops file: {error}") from None
    if unknown:
        raise UntrustedModelError(
            f"{path} asks for types this project does not trust: {', '.join(sorted(unknown))}"
        )
    return skops.io.load(path, trusted=list(trusted))
