"""Entry point ``feature``: the gold feature table of one cohort month, with Dask.

Reads: the current silver snapshot. Produces: ``gold/features_<cohort>/<version>``, one row per
user of the cohort, from data strictly before the month, published only once it passed
validation; logs its URL, rows and content hash. Exits non-zero, saying why, when it fails.
"""

from __future__ import annotations

import argparse
import sys

import mlflow

from churn_transform.audit import AuditError
from churn_transform.gold import build_gold
from churn_transform.lake import LakeLockedError, TableNotFoundError
from churn_transform.silver import InconsistentSnapshotError
from steps._cli import cohort, dask_cluster, lake_of, start, tracked_run


def main(argv: list[str] | None = None) -> None:
    settings = start("feature")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cohort", type=cohort, required=True, help="cohort month, e.g. 2017-03")
    args = parser.parse_args(argv)
    lake = lake_of(settings)
    with tracked_run(settings, f"feature-{args.cohort}"), dask_cluster(settings):
        try:
            url, digest, rows = build_gold(lake, args.cohort)
        except AuditError as failed:
            mlflow.log_dict(failed.report, "feature/audit.json")
            print(failed.text)
            sys.exit(f"feature: {failed.args[0].splitlines()[0]}")
        except (LakeLockedError, InconsistentSnapshotError, TableNotFoundError) as refused:
            sys.exit(f"feature: {refused}")
        mlflow.log_params({"cohort": args.cohort, "gold_url": url})
        mlflow.set_tags({"gold_hash": digest, f"gold_hash.{args.cohort}": digest})
        mlflow.log_metric("rows", rows)
    print(f"gold {args.cohort}: {rows:,} users at {url} (content hash {digest})")


if __name__ == "__main__":
    main()
