"""What every step does at its edge: logging, settings read once, and its MLflow run."""

from __future__ import annotations

import argparse
import datetime
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
from pydantic import ValidationError

from churn_transform.artifact import UntrustedModelError, load_model
from churn_transform.lake import lake_of  # noqa: F401 (the steps' way to their lake)
from churn_transform.model import ChurnModel
from churn_transform.settings import Settings

_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")
log = logging.getLogger(__name__)


def boolean(value: str) -> bool:
    """An MLproject boolean parameter (``true``/``false``, any case; also 1/0, yes/no).

    The argparse ``type`` of every boolean flag: a bad value stops the step with argparse's
    message, which names the flag (``argument --generate: expected true or false, got 'ja'``).
    """
    word = value.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def start(step: str) -> Settings:
    """Configure logging for a step and read the settings, exiting with a clear message if bad."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {step} %(levelname)s %(message)s")
    try:
        return Settings()
    except ValidationError as err:
        problems = "; ".join(
            f"KKBOX_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in err.errors()
        )
        sys.exit(f"{step}: invalid configuration: {problems}")


@contextmanager
def tracked_run(settings: Settings, step: str) -> Iterator[mlflow.ActiveRun]:
    """The step's MLflow run: the one ``mlflow run`` opened for it, or a new one named ``step``
    in the settings' experiment."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    if os.environ.get("MLFLOW_RUN_ID"):
        # nested when a step runs inside its caller's process (project_step, env "local")
        with mlflow.start_run(nested=mlflow.active_run() is not None) as run:
            _warn_if_elsewhere(run, settings.experiment_name)
            yield run
        return
    mlflow.set_experiment(settings.experiment_name)
    with mlflow.start_run(run_name=step, nested=mlflow.active_run() is not None) as run:
        yield run


def _warn_if_elsewhere(run: mlflow.ActiveRun, experiment: str) -> None:
    # `mlflow run` creates the run before the step starts, in the experiment of its
    # --experiment-name or MLFLOW_EXPERIMENT_NAME (else Default): the step cannot move it.
    found = mlflow.MlflowClient().get_experiment(run.info.experiment_id).name
    if found != experiment:
        logging.getLogger(__name__).warning(
            "this run is in the MLflow experiment %r, not %r: export MLFLOW_EXPERIMENT_NAME=%s "
            "(the Makefile does) or pass --experiment-name %s to `mlflow run`",
            found,
            experiment,
            experiment,
            experiment,
        )


@contextmanager
def dask_cluster(settings: Settings) -> Iterator[None]:
    """Dask's scheduler for a step: the settings' cluster if named, else local threads."""
    import dask

    if not settings.dask_scheduler:
        with dask.config.set(scheduler="threads"):
            yield
        return
    from distributed import Client

    with Client(settings.dask_scheduler, timeout="30s"):
        logging.getLogger(__name__).info("computing on %s", settings.dask_scheduler)
        yield


def load_registered(uri: str) -> ChurnModel:
    """The registry's model at ``uri`` (``models:/NAME@ALIAS``), downloaded and rebuilt with the
    project's trusted types only; a tampered or foreign artifact stops the step, saying why."""
    try:
        return load_model(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except UntrustedModelError as error:
        sys.exit(f"refusing the model {uri}: {error}")


_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def cohort(value: str) -> str:
    """argparse type of a cohort month, ``YYYY-MM``: the only shape of a parameter that becomes
    part of a lake or workspace path, so no parameter can reach outside the step's folder."""
    if not _MONTH.fullmatch(value):
        raise argparse.ArgumentTypeError(f"expected a month like 2017-03, got {value!r}")
    return value


def cohorts(value: str) -> list[str]:
    """argparse type of comma-separated cohort months (``2017-02,2017-03``), each checked."""
    months = [cohort(month) for month in value.split(",") if month]
    if not months:
        raise argparse.ArgumentTypeError(f"expected months like 2017-02,2017-03, got {value!r}")
    return months


def day(value: str) -> str:
    """argparse type of a day, ``YYYY-MM-DD``."""
    try:
        return str(datetime.date.fromisoformat(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a day like 2017-03-01, got {value!r}") from None


def optional(kind: Callable[[str], str]) -> Callable[[str], str | None]:
    """argparse type: ``kind``, or None for ``none`` (MLproject's way of leaving one out)."""

    def parse(value: str) -> str | None:
        return None if value.lower() == "none" else kind(value)

    return parse


def share(value: str) -> float:
    """argparse type of a share of users: a number from 0 up to, not including, 1."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan  # refused below, as any number out of range
    if not 0.0 <= number < 1.0:
        raise argparse.ArgumentTypeError(f"expected a share from 0 to below 1, got {value!r}")
    return number


def size(value: str) -> str:
    """argparse type of a byte size as Dask reads it (``32MB``)."""
    from dask.utils import parse_bytes

    try:
        parse_bytes(value)
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(f"expected a size like 32MB, got {value!r}") from None
    return value


@contextmanager
def refusals(step: str) -> Iterator[None]:
    """Stop ``step`` with one line, not a traceback, when the lake refuses its work: an audit
    that failed (its report printed and logged to the run), the lock held by another writer, a
    silver snapshot that does not hold together, a table not built yet, raw files that do not
    look like KKBox's or lost rows."""
    from churn_transform.audit import AuditError, DataLossError, RawHeaderError
    from churn_transform.lake import LakeLockedError, TableNotFoundError
    from churn_transform.silver import InconsistentSnapshotError

    try:
        yield
    except AuditError as failed:
        mlflow.log_dict(failed.report, f"{step}/audit.json")
        print(failed.text)
        sys.exit(f"{step}: {failed.args[0].splitlines()[0]}")
    except (
        LakeLockedError,
        InconsistentSnapshotError,
        TableNotFoundError,
        RawHeaderError,
        DataLossError,
    ) as refused:
        sys.exit(f"{step}: {refused}")


PROJECT = str(Path(__file__).resolve().parent.parent)


def project_step(
    settings: Settings, entry_point: str, env_manager: str, **parameters: object
) -> str:
    """Run an entry point of the project as a nested MLflow Projects run, to its end; its run
    id. With ``env_manager`` ``local`` the step runs in this process (the same environment, so
    nothing to gain from a new one, and no interpreter and imports to start again: about ten
    such steps make a month's cycle); any other manager goes through ``mlflow.projects.run``.
    Either way the run is MLflow's own for the entry point: its parameters with the MLproject's
    defaults, the project tags, the parent run. The environment manager and the settings'
    experiment are passed explicitly: ``mlflow.projects.run`` does not inherit them."""
    log.info("step %s %s", entry_point, parameters)
    if env_manager == "local":
        return _step_in_process(settings, entry_point, parameters)
    submitted = mlflow.projects.run(
        PROJECT,
        entry_point=entry_point,
        parameters=parameters,
        env_manager=env_manager,
        experiment_name=settings.experiment_name,
        run_name=entry_point,
        synchronous=True,
    )
    return str(submitted.run_id)


def _step_in_process(settings: Settings, entry_point: str, parameters: dict[str, object]) -> str:
    """``mlflow run . -e ENTRY_POINT --env-manager local``, in this process: MLflow creates the
    run (tags, parameters, parent) and renders the entry point's command, ``python -m
    steps.NAME ...``, whose ``main`` then runs here inside that run, as ``mlflow run`` would
    hand it over (``MLFLOW_RUN_ID``). A step that fails fails its run and this caller."""
    import importlib
    import shlex

    from mlflow.projects._project_spec import load_project
    from mlflow.projects.utils import get_or_create_run
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

    spec = load_project(PROJECT).get_entry_point(entry_point)
    words = shlex.split(spec.compute_command(parameters, None))
    if words[:2] != ["python", "-m"] or not words[2].startswith("steps."):
        raise ValueError(f"entry point {entry_point!r} is not a step: {' '.join(words)}")
    experiment = mlflow.set_experiment(settings.experiment_name).experiment_id
    run = get_or_create_run(None, PROJECT, experiment, PROJECT, None, entry_point, parameters)
    run_id = run.info.run_id
    mlflow.MlflowClient().set_tag(run_id, MLFLOW_RUN_NAME, entry_point)
    outer = os.environ.get("MLFLOW_RUN_ID")
    os.environ["MLFLOW_RUN_ID"] = run_id
    try:
        importlib.import_module(words[2]).main(words[3:])
    except BaseException:
        mlflow.MlflowClient().set_terminated(run_id, "FAILED")
        raise
    finally:
        if outer is None:
            os.environ.pop("MLFLOW_RUN_ID", None)
        else:
            os.environ["MLFLOW_RUN_ID"] = outer
    return run_id
