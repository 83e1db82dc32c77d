"""Entry point ``main``: the whole chain, each step a nested MLflow Projects run.

generate (optional) -> ingest -> gold (training and evaluation cohorts) -> validate ->
version (DVC) -> train (MLflow registry) -> import (the champion into BentoML's store) ->
materialize (the served cohort's features into the online feature store) -> score (that cohort,
by the champion: the predictions whose realized quality a later cycle measures once its labels
land). A step that fails stops the chain (validation stops it before training); at the end,
what to do next. With ``--env-manager local``
each step runs in this process (``steps._cli.project_step``); with another manager, through
``mlflow.projects.run``, which is passed the manager and the settings' MLflow experiment
explicitly since it does not inherit them.
"""

from __future__ import annotations

import argparse

from steps._cli import (
    boolean,
    cohort,
    day,
    project_step,
    runs_url,
    size,
    start,
    tracked_run,
)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in (
        "--users",
        "--seed",
        "--shift",
        "--chunk-users",
        "--buckets",
        "--min-auc",
        "--min-oracle-share",
        "--campaign-share",
    ):
        parser.add_argument(name, required=True)
    parser.add_argument("--generate", type=boolean, required=True)
    parser.add_argument("--allow-shrink", type=boolean, required=True)
    parser.add_argument("--log-start", type=day, required=True)
    parser.add_argument("--blocksize", type=size, required=True)
    parser.add_argument(
        "--env-manager", choices=("local", "uv", "virtualenv", "conda"), required=True
    )
    parser.add_argument("--train-cohort", type=cohort, required=True)
    parser.add_argument("--eval-cohort", type=cohort, required=True)
    parser.add_argument("--materialize-cohort", type=cohort, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    settings = start("main")
    args = _arguments(argv)

    def step(entry_point: str, **parameters: object) -> None:
        project_step(settings, entry_point, args.env_manager, **parameters)

    with tracked_run(settings, "main") as run:
        if args.generate:
            step(
                "generate",
                users=args.users,
                seed=args.seed,
                shift=args.shift,
                log_start=args.log_start,
                chunk_users=args.chunk_users,
                campaign_share=args.campaign_share,
            )
        step(
            "ingest",
            buckets=args.buckets,
            blocksize=args.blocksize,
            allow_shrink=args.allow_shrink,
        )
        for cohort in (args.train_cohort, args.eval_cohort):
            step("gold", cohort=cohort)
        step("validate", cohorts=f"{args.train_cohort},{args.eval_cohort}")
        step("version", cohorts=f"{args.train_cohort},{args.eval_cohort}")
        step(
            "train",
            train_cohort=args.train_cohort,
            eval_cohort=args.eval_cohort,
            min_auc=args.min_auc,
            min_oracle_share=args.min_oracle_share,
        )
        step("import")
        step("materialize", cohort=args.materialize_cohort)
        step("score", cohort=args.materialize_cohort)
    print(what_next(run.info.experiment_id))


def what_next(experiment_id: str) -> str:
    """Five lines: the service, MLflow's UI on this experiment's runs, the dashboard, and the
    months after (the Makefile's targets and addresses)."""
    return "\n".join(
        [
            "what next:",
            "  make serve      the champion's API on http://127.0.0.1:3000",
            f"  make ui         MLflow's runs on {runs_url(experiment_id)}",
            "  make dashboard  the dashboard on http://127.0.0.1:8501",
            "  make months     two more months landed, then cycle 2017-04 and 2017-05",
        ]
    )


if __name__ == "__main__":
    main()
