"""``make ui``: MLflow's UI over the steps' tracking store, opened on the experiment's runs.

Not an entry point of MLproject: a server, not a run. Marks the settings' experiment as one of
classic ML runs (every step does too; a store made before they did is marked here), so MLflow
3's UI lists its runs rather than opening on GenAI views, prints the address of that list, then
becomes ``mlflow server`` with one worker on the address given.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import mlflow

from steps._cli import mark_classic_ml, runs_url, start


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    settings = start("ui")
    args = _arguments(argv)
    ui = f"http://{args.host}:{args.port}"
    if settings.tracking_uri.startswith(("http://", "https://")):
        sys.exit(f"ui: the tracking server {settings.tracking_uri} serves its own UI")
    experiment = mlflow.MlflowClient(settings.tracking_uri).get_experiment_by_name(
        settings.experiment_name
    )
    if experiment is None:
        print(f"no experiment {settings.experiment_name!r} yet (`make demo` makes it): {ui}")
    else:
        mlflow.set_tracking_uri(settings.tracking_uri)
        mark_classic_ml(experiment)
        print(f"the runs of {experiment.name!r}: {runs_url(experiment.experiment_id, ui)}")
    sys.stdout.flush()
    server = Path(sys.executable).parent / "mlflow"
    # its GenAI job runner (a pool of worker processes) has no use here
    os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    os.execv(
        server,
        [
            str(server),
            "server",
            "--backend-store-uri",
            settings.tracking_uri,
            "--host",
            args.host,
            "--port",
            str(args.port),
            "--workers",
            "1",
        ],
    )


if __name__ == "__main__":
    main()
