"""Entry point ``validate``: Pandera checks of every silver table and of the cohorts' gold tables.

Reads: the current silver and gold tables. Produces: a report of every broken rule with counts
and example rows, as an MLflow artifact and in the lake (``reports/validation/``). Exits
non-zero, naming the rules, when any rule is broken, which stops the chain before training.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import mlflow

from churn_transform.etl.gold import validate_lake
from churn_transform.etl.silver import InconsistentSnapshotError
from steps._cli import cohorts, dask_cluster, lake_of, log_gold_input, start, tracked_run


def main(argv: list[str] | None = None) -> None:
    settings = start("validate")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--cohorts", type=cohorts, required=True, help="comma-separated, e.g. 2017-02,2017-03"
    )
    args = parser.parse_args(argv)
    lake = lake_of(settings)
    with tracked_run(settings, "validate") as run, dask_cluster(settings):
        try:
            report = validate_lake(lake, args.cohorts)
        except InconsistentSnapshotError as refused:
            sys.exit(f"validate: {refused}")
        for each in args.cohorts:
            log_gold_input(lake, each, "validation")
        mlflow.log_dict(report.as_dict(), "validate/report.json")
        mlflow.log_metric("failed_rules", len(report.failures))
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{run.info.run_id}.json"
        lake.write_bytes(
            json.dumps(report.as_dict(), indent=1).encode(), "reports", "validation", name
        )
    print(report.text())
    if not report.ok:
        sys.exit(f"validate: {len(report.failures)} rule(s) broken; see the report above")


if __name__ == "__main__":
    main()
