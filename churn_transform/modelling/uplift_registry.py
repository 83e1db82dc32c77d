"""The uplift model in the MLflow registry: logged in skops format as its own registered model
(``Settings.uplift_model_name``), and its champion loaded back with trusted types only.

As for the churn model (``modelling.artifact``), a pickle would run whatever code its file
names when loaded: the uplift model is saved with skops and rebuilt only from
``TRUSTED_TYPES``. Its pyfunc flavour predicts each user's uplift (``UpliftModel.predict``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from churn_transform.modelling.artifact import FORMAT, UntrustedModelError, read_trusted
from churn_transform.modelling.uplift import UpliftModel

if TYPE_CHECKING:
    import pandas as pd

    from churn_transform.settings import Settings

#: Every type a fitted UpliftModel's skops file names, beyond what skops trusts by default.
TRUSTED_TYPES: tuple[str, ...] = (
    "churn_transform.modelling.uplift.UpliftModel",
    "churn_transform.modelling.transformer.ChurnFeatures",
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMRegressor",
)


def load_uplift_model(model_dir: str) -> UpliftModel:
    """The UpliftModel saved in the MLflow model folder ``model_dir``; UntrustedModelError when
    the folder holds anything else."""
    model = read_trusted(model_dir, TRUSTED_TYPES)
    if not isinstance(model, UpliftModel):
        raise UntrustedModelError(f"{model_dir} holds a {type(model).__name__}, not an UpliftModel")
    return model


def load_uplift_champion(settings: Settings) -> UpliftModel | None:
    """The uplift model the champion alias of ``settings.uplift_model_name`` names, or None when
    there is none (no such registered model, or no champion yet: no campaign was ever learnt
    from). Raises UntrustedModelError for an artifact this project did not write, and MLflow's
    error when the registry does not answer."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

    client = mlflow.MlflowClient(settings.tracking_uri)
    try:
        version = client.get_model_version_by_alias(
            settings.uplift_model_name, settings.champion_alias
        )
    except MlflowException as error:
        if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise
    folder = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{settings.uplift_model_name}/{version.version}",
        tracking_uri=settings.tracking_uri,
    )
    return load_uplift_model(folder)


def log_uplift_model(model: UpliftModel, example: pd.DataFrame, settings: Settings) -> str:
    """Log ``model`` on the active run (``uplift_model``) in skops format, with the project's
    code and pinned requirements as the churn model is, and register it as a new version of
    ``settings.uplift_model_name``; the version. ``example``: a few rows of model input, for
    the signature (no input example is saved: MLflow would load the model to check it)."""
    import mlflow
    from mlflow.models import infer_signature

    from churn_transform.modelling.training import model_requirements
    from churn_transform.settings import PROJECT_ROOT

    info = mlflow.sklearn.log_model(
        model,
        name="uplift_model",
        serialization_format=FORMAT,
        skops_trusted_types=list(TRUSTED_TYPES),
        code_paths=[str(PROJECT_ROOT / "churn_transform")],
        pip_requirements=model_requirements(),
        signature=infer_signature(example, model.predict(example)),
        registered_model_name=settings.uplift_model_name,
    )
    return str(info.registered_model_version)
