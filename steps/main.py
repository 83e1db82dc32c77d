"""Entry point ``main``: the whole chain, each step a nested MLflow Projects run.

For now: generate a synthetic dataset and print its summary. Later steps (ingest, feature,
validate, train, import, drift) join the same chain. The environment manager is passed to every
nested run explicitly, since ``mlflow.projects.run`` does not inherit it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mlflow

from steps._cli import start, tracked_run

PROJECT = str(Path(__file__).resolve().parent.parent)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("--users", "--seed", "--drift", "--log-start", "--chunk-users", "--env-manager"):
        parser.add_argument(name, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    settings = start("main")
    args = _arguments(argv)
    with tracked_run(settings, "main"):
        mlflow.projects.run(
            PROJECT,
            entry_point="generate",
            parameters={
                "users": args.users,
                "seed": args.seed,
                "drift": args.drift,
                "log_start": args.log_start,
                "chunk_users": args.chunk_users,
            },
            env_manager=args.env_manager,
            run_name="generate",
            synchronous=True,
        )


if __name__ == "__main__":
    main()
