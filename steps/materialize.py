"""Entry point ``materialize``: one cohort's gold features into the online feature store, so the
service can answer by subscriber id.

Reads: the gold table of ``--cohort`` (built first if missing, from the current silver).
Produces: Feast's offline source, ``feature_store/<cohort>/<gold hash>.parquet`` in the lake; the
feature view of that gold version in Feast's registry, its rows in the online store (SQLite or
Redis, ``KKBOX_ONLINE_STORE``), and the feature service ``churn_<cohort>`` pointed at it once
every row is loaded. Running it again on the same gold changes nothing; a run that fails leaves
the previous version served (``churn_transform.etl.feature_store``).
"""

from __future__ import annotations

import argparse

import mlflow

from churn_transform.etl.feature_store import feature_store, offline_frame, publish_cohort
from churn_transform.etl.gold import build_gold, read_gold
from churn_transform.lake import Lake
from churn_transform.serving.online_store import online_store
from steps._cli import cohort, dask_cluster, lake_of, log_gold_input, refusals, start, tracked_run


def offline_source(lake: Lake, cohort: str) -> tuple[str, str, int]:
    """Write the cohort's current gold as Feast's offline source; its URL, gold hash and rows."""
    build_gold(lake, cohort)
    gold, digest = read_gold(lake, cohort)
    log_gold_input(lake, cohort, "serving", gold)
    url = lake.url("feature_store", cohort, f"{digest}.parquet")
    lake.fs.makedirs(lake.path_of(lake.url("feature_store", cohort)), exist_ok=True)
    with lake.fs.open(lake.path_of(url), "wb") as out:
        offline_frame(gold, cohort).to_parquet(out, index=False)
    return url, digest, len(gold)


def main(argv: list[str] | None = None) -> None:
    settings = start("materialize")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cohort", type=cohort, required=True, help="cohort month, e.g. 2017-04")
    args = parser.parse_args(argv)
    lake = lake_of(settings)
    with tracked_run(settings, "materialize"):
        with refusals("materialize"), dask_cluster(settings):
            url, digest, rows = offline_source(lake, args.cohort)
        # Feast reads its offline source with Dask in this process: not on the settings' cluster
        store = feature_store(settings)
        online = online_store(settings)
        published = publish_cohort(
            store, online, args.cohort, digest, url, rows, s3_endpoint=settings.s3_endpoint_url
        )
        mlflow.log_params(
            {"cohort": args.cohort, "offline_source": url, "feature_view": published.view}
        )
        mlflow.set_tags({"gold_hash": digest, "online_store": settings.online_store})
        mlflow.log_metrics({"rows": rows, "changed": int(published.changed)})
    verb = "loaded" if published.changed else "already served"
    print(f"{verb} {rows:,} users of {args.cohort} as {published.view} ({settings.online_store})")


if __name__ == "__main__":
    main()
