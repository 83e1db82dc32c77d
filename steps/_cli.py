"""What every step does at its edge: logging, settings read once, and its MLflow run."""

from __future__ import annotations

import argparse
import datetime
import logging
import math
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities import Experiment
from pydantic import ValidationError

from churn_transform.lake import Lake, lake_of  # noqa: F401 (lake_of: the steps' way to their lake)
from churn_transform.modelling.artifact import UntrustedModelError, load_model
from churn_transform.modelling.model import ChurnModel
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


#: The experiment tag by which MLflow's UI (3.x) knows what an experiment holds: classic model
#: training here, not GenAI traces. (3.17's UI reads it only where its own GenAI / model-training
#: toggle is off, hence the mode in ``runs_url``.)
EXPERIMENT_KIND = "mlflow.experimentKind"
CLASSIC_ML = "custom_model_development"


def start(step: str) -> Settings:
    """Configure a step's output, read the settings (exiting with a clear message if bad) and
    name the run ``mlflow run`` opened for it after its entry point ``step``, before anything
    can fail: MLflow gives such a run a random name ("smiling-fish-187")."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {step} %(levelname)s %(message)s")
    # Feast says at INFO whenever it reloads its registry ("Registry cache expired")
    logging.getLogger("feast").setLevel(logging.WARNING)
    # one progress bar per file of a downloaded artifact: 73 for a model with its code
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        settings = Settings()
    except ValidationError as err:
        problems = "; ".join(
            f"KKBOX_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in err.errors()
        )
        sys.exit(f"{step}: invalid configuration: {problems}")
    if run_id := os.environ.get("MLFLOW_RUN_ID"):
        mlflow.MlflowClient(settings.tracking_uri).update_run(run_id, name=step)
    return settings


@contextmanager
def tracked_run(settings: Settings, step: str) -> Iterator[mlflow.ActiveRun]:
    """The step's MLflow run: the one ``mlflow run`` opened for it, or a new one named ``step``
    (its entry point) in the settings' experiment, which is marked as one of classic ML runs.
    Whatever stops the step inside it (an exception, a refusal's exit) fails the run."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    if os.environ.get("MLFLOW_RUN_ID"):
        # nested when a step runs inside its caller's process (project_step, env "local")
        with mlflow.start_run(nested=mlflow.active_run() is not None) as run, _killable():
            experiment = _warn_if_elsewhere(run, settings.experiment_name)
            mark_classic_ml(experiment)
            yield run
        return
    mark_classic_ml(mlflow.set_experiment(settings.experiment_name))
    nested = mlflow.active_run() is not None
    with mlflow.start_run(run_name=step, nested=nested) as run, _killable():
        yield run


class StepKilled(SystemExit):
    """A step stopped by SIGTERM (a scheduler's timeout, ``kill``, a pod evicted); exits with
    the shell's code for it, 128 + 15."""


def _raise_killed(signum: int, frame: object) -> None:
    raise StepKilled(128 + signum)


@contextmanager
def _killable() -> Iterator[None]:
    """End the active run KILLED when SIGTERM or SIGINT stops the step inside it: SIGTERM's
    default action ends the process at once, leaving its runs RUNNING for ever in MLflow."""
    if threading.current_thread() is not threading.main_thread():  # signals reach main only
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_killed)
    try:
        yield
    except (StepKilled, KeyboardInterrupt):
        mlflow.end_run("KILLED")
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


#: Where ``make ui`` serves MLflow's UI.
UI_URL = "http://127.0.0.1:5000"


def runs_url(experiment_id: str, ui: str = UI_URL) -> str:
    """The page of MLflow's UI that lists an experiment's runs. MLflow 3.17's UI takes its mode
    from a global toggle (GenAI by default, whatever the experiment's kind), which opens an
    experiment on a GenAI overview: ``workflowType`` picks its "Model training" mode instead."""
    return f"{ui}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def mark_classic_ml(experiment: Experiment) -> None:
    """Tag ``experiment`` as one of classic ML runs, unless its kind was already said."""
    if EXPERIMENT_KIND not in experiment.tags:
        mlflow.MlflowClient().set_experiment_tag(
            experiment.experiment_id, EXPERIMENT_KIND, CLASSIC_ML
        )


def _warn_if_elsewhere(run: mlflow.ActiveRun, experiment: str) -> Experiment:
    # `mlflow run` creates the run before the step starts, in the experiment of its
    # --experiment-name or MLFLOW_EXPERIMENT_NAME (else Default): the step cannot move it.
    opened = mlflow.MlflowClient().get_experiment(run.info.experiment_id)
    found = opened.name
    if found != experiment:
        logging.getLogger(__name__).warning(
            "this run is in the MLflow experiment %r, not %r: export MLFLOW_EXPERIMENT_NAME=%s "
            "(the Makefile does) or pass --experiment-name %s to `mlflow run`",
            found,
            experiment,
            experiment,
            experiment,
        )
    return opened


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


def log_gold_input(lake: Lake, cohort: str, context: str, gold: pd.DataFrame | None = None) -> None:
    """Record on the active run the gold table of ``cohort`` that the step read, as an MLflow
    dataset (the run page's "Datasets used"): named like the table, its source the URL of the
    version read, its digest the content hash that lineage uses elsewhere (``gold_hash`` tags,
    DVC); its schema and rows from ``gold`` when the step holds the table, else the schema of its
    files. ``context`` says what the step did with it (training, evaluation, scoring, ...)."""
    import warnings

    import pyarrow.parquet as pq
    from mlflow.data.dataset import Dataset
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.models import infer_signature

    from churn_transform.etl.gold import gold_summary, table_name
    from churn_transform.schema import LABEL

    table = table_name(cohort)
    url = lake.current("gold", table)
    summary = gold_summary(lake, url)
    digest = str(summary["hash"])
    version = lake.current_version("gold", table)
    tags = {"cohort": cohort, "version": version, "rows": str(summary["rows"])}
    dataset: Dataset
    with warnings.catch_warnings():
        # MLflow registers its local file source twice, then warns that a path is ambiguous; its
        # schema inference (when logged) warns of integer columns, which matters to model
        # signatures only
        warnings.simplefilter("ignore", UserWarning)
        if gold is not None:
            dataset = from_pandas(gold, url, LABEL, table, digest)
        else:
            parts = sorted(lake.fs.glob(f"{lake.path_of(url)}/part-*.parquet"))
            columns = pq.read_schema(parts[0], filesystem=lake.fs).empty_table().to_pandas()
            schema = infer_signature(columns).inputs
            source = resolve_dataset_source(url)
            # metadata only, no profile: MLflow's class has none, which mypy takes as abstract
            dataset = MetaDataset(source, table, digest, schema)  # type: ignore[abstract]
        mlflow.log_input(dataset, context=context, tags=tags)


def read_training(lake: Lake, cohorts: list[str]) -> tuple[pd.DataFrame, str]:
    """The current gold tables of the training ``cohorts``, one after the other, each logged as
    a ``training`` input of the active run; and their content hashes, joined by commas."""
    from churn_transform.etl.gold import read_gold

    tables = [read_gold(lake, each) for each in cohorts]
    for each, (table, _) in zip(cohorts, tables, strict=True):
        log_gold_input(lake, each, "training", table)
    train = pd.concat([table for table, _ in tables], ignore_index=True)
    return train, ",".join(hash_ for _, hash_ in tables)


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


def count(value: str) -> int:
    """argparse type of a count (users, months, buckets, days, ...): a whole number from 0. A
    negative one is refused naming the flag, before it can reach a step (``-P buckets=-1`` ended
    in an OverflowError traceback)."""
    try:
        number = int(value)
    except ValueError:
        number = -1  # refused below, as any number out of range
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0, got {value!r}")
    return number


def positive(value: str) -> int:
    """argparse type of a count that must be at least 1 (processes, training months)."""
    number = count(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1, got {value!r}")
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
    from churn_transform.etl.audit import AuditError, DataLossError, RawHeaderError
    from churn_transform.etl.silver import InconsistentSnapshotError
    from churn_transform.lake import LakeLockedError, TableNotFoundError

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


PROJECT = Path(__file__).resolve().parent.parent


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
    given = ", ".join(f"{name}={value}" for name, value in parameters.items())
    log.info("step %s%s", entry_point, f" ({given})" if given else "")
    if env_manager == "local":
        return _step_in_process(settings, entry_point, parameters)
    submitted = mlflow.projects.run(
        str(PROJECT),
        entry_point=entry_point,
        parameters=parameters,
        env_manager=env_manager,
        experiment_name=settings.experiment_name,
        run_name=entry_point,
        synchronous=True,
    )
    return str(submitted.run_id)


def _step_in_process(settings: Settings, entry_point: str, parameters: dict[str, object]) -> str:
    """``mlflow run . -e ENTRY_POINT --env-manager local``, in this process: the run is opened as
    MLflow opens it (tags, parameters, parent: ``_mlproject``) and the entry point's command,
    ``python -m steps.NAME ...``, has its ``main`` run here inside that run, as ``mlflow run``
    would hand it over (``MLFLOW_RUN_ID``). A step that fails fails its run and this caller; one
    that ends without having opened its run (nothing to do) finishes it, as ``mlflow run`` would."""
    import importlib

    from steps import _mlproject

    spec = _mlproject.entry_point(PROJECT, entry_point)
    values = spec.values(parameters)
    words = spec.argv(values)
    if words[:2] != ["python", "-m"] or not words[2].startswith("steps."):
        raise ValueError(f"entry point {entry_point!r} is not a step: {' '.join(words)}")
    experiment = mlflow.set_experiment(settings.experiment_name).experiment_id
    run_id = _mlproject.open_run(PROJECT, spec, values, experiment)
    outer = os.environ.get("MLFLOW_RUN_ID")
    os.environ["MLFLOW_RUN_ID"] = run_id
    client = mlflow.MlflowClient()
    try:
        importlib.import_module(words[2]).main(words[3:])
    except BaseException:
        if client.get_run(run_id).info.status == "RUNNING":  # else KILLED, by _killable
            client.set_terminated(run_id, "FAILED")
        raise
    else:
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, "FINISHED")
    finally:
        if outer is None:
            os.environ.pop("MLFLOW_RUN_ID", None)
        else:
            os.environ["MLFLOW_RUN_ID"] = outer
    return run_id
