"""Entry point ``main``: the whole chain, each step a nested MLflow Projects run.

generate (optional) -> ingest -> feature (training and evaluation cohorts) -> validate ->
version (DVC) -> train (MLflow registry) -> import (the champion into BentoML's store). A step
that fails stops the chain (validation stops it before training). The environment manager is
passed to every nested run explicitly, since ``mlflow.projects.run`` does not inherit it.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import mlflow

from steps._cli import start, tracked_run

PROJECT = str(Path(__file__).resolve().parent.parent)
log = logging.getLogger(__name__)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in (
        "--users",
        "--seed",
        "--drift",
        "--log-start",
        "--chunk-users",
        "--env-manager",
        "--generate",
        "--buckets",
        "--blocksize",
        "--train-cohort",
        "--eval-cohort",
        "--allow-shrink",
    ):
        parser.add_argument(name, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    settings = start("main")
    args = _arguments(argv)

    def step(entry_point: str, **parameters: object) -> None:
        log.info("step %s %s", entry_point, parameters)
        mlflow.projects.run(
            PROJECT,
            entry_point=entry_point,
            parameters=parameters,
            env_manager=args.env_manager,
            run_name=entry_point,
            synchronous=True,
        )

    with tracked_run(settings, "main"):
        if args.generate.lower() in ("true", "1", "yes"):
            step(
                "generate",
                users=args.users,
                seed=args.seed,
                drift=args.drift,
                log_start=args.log_start,
                chunk_users=args.chunk_users,
            )
        step(
            "ingest",
            buckets=args.buckets,
            blocksize=args.blocksize,
            allow_shrink=args.allow_shrink,
        )
        for cohort in (args.train_cohort, args.eval_cohort):
            step("feature", cohort=cohort)
        step("validate", cohorts=f"{args.train_cohort},{args.eval_cohort}")
        step("version", cohorts=f"{args.train_cohort},{args.eval_cohort}")
        step("train", train_cohort=args.train_cohort, eval_cohort=args.eval_cohort)
        step("import")


if __name__ == "__main__":
    main()
