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

    from churn_transform.modelling.promotion import PromotionOutcome
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


def champion_version(settings: Settings) -> str | None:
    """The version of ``settings.uplift_model_name`` its champion alias names, or None when
    there is none (no such registered model, or no champion yet); MLflow's error when the
    registry does not answer."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

    client = mlflow.MlflowClient(settings.tracking_uri)
    try:
        model = client.get_registered_model(settings.uplift_model_name)
    except MlflowException as error:
        if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise
    version = model.aliases.get(settings.champion_alias)
    return None if version is None else str(version)


def load_version(settings: Settings, version: str) -> UpliftModel:
    """Version ``version`` of ``settings.uplift_model_name``, downloaded and rebuilt with
    ``TRUSTED_TYPES`` only."""
    import mlflow

    # the version's own location, not its models:/ URI: MLflow resolves that with the
    # process's registry, whatever tracking URI it is given
    client = mlflow.MlflowClient(settings.tracking_uri)
    source = client.get_model_version_download_uri(settings.uplift_model_name, version)
    folder = mlflow.artifacts.download_artifacts(
        artifact_uri=source, tracking_uri=settings.tracking_uri
    )
    return load_uplift_model(folder)


def load_uplift_champion(settings: Settings) -> UpliftModel | None:
    """The uplift model the champion alias of ``settings.uplift_model_name`` names, or None when
    there is none (no campaign was ever learnt from, or none passed the gate). Raises
    UntrustedModelError for an artifact this project did not write, and MLflow's error when the
    registry does not answer."""
    version = champion_version(settings)
    return None if version is None else load_version(settings, version)


def apply(settings: Settings, outcome: PromotionOutcome) -> None:
    """The gate's outcome in the registry: the champion alias moved to a promoted version (and
    the promotion in its history, as for the churn model), or the version's role (``behind``,
    ``refused``, with its refusal)."""
    import mlflow

    from churn_transform.modelling.rollback import mark_promoted

    client = mlflow.MlflowClient(settings.tracking_uri)
    name = settings.uplift_model_name
    if outcome.promoted:
        client.set_registered_model_alias(name, outcome.alias, outcome.version)
        mark_promoted(client, name, outcome.version)
        return
    client.set_model_version_tag(
        name, outcome.version, "role", "refused" if outcome.refused else "behind"
    )
    if outcome.refused:
        client.set_model_version_tag(name, outcome.version, "refusal", outcome.refusal())


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
