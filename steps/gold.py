"""Entry point ``gold``: the gold feature table of one cohort month, with Dask (``feature``, its
old name, is an alias in MLproject for one release).

Reads: the current silver snapshot. Produces: ``gold/features_<cohort>/<version>``, one row per
user of the cohort, from data strictly before the month, published only once it passed
validation; logs its URL, rows and content hash. Exits non-zero, saying why, when it fails.
"""

from __future__ import annotations

import argparse

import mlflow

from churn_transform.etl.gold import build_gold
from steps._cli import cohort, dask_cluster, lake_of, refusals, start, tracked_run


def main(argv: list[str] | None = None) -> None:
    settings = start("gold")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cohort", type=cohort, required=True, help="cohort month, e.g. 2017-03")
    args = parser.parse_args(argv)
    lake = lake_of(settings)
    with tracked_run(settings, "gold"), dask_cluster(settings):
        with refusals("gold"):
            url, digest, rows = build_gold(lake, args.cohort)
        mlflow.log_params({"cohort": args.cohort, "gold_url": url})
        mlflow.set_tags({"gold_hash": digest, f"gold_hash.{args.cohort}": digest})
        mlflow.log_metric("rows", rows)
    print(f"gold {args.cohort}: {rows:,} users at {url} (content hash {digest})")


if __name__ == "__main__":
    main()
