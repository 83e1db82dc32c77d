"""Entry point ``gc``: keep the lake's size, without losing what a model or DVC was built on.

Reads: the lake, the registered versions of ``Settings.model_name`` (their runs' ``gold_hash.*``
tags) and the gold tables in DVC's workspace (``<data_dir>/gold``). Produces: a lake without
unpublished versions and scratch files, and with at most ``KKBOX_KEEP_VERSIONS`` versions of each
table besides the gold ones those reference (and the silver and bronze they came from); logs
what it removed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from churn_transform.etl.gold import content_hash
from churn_transform.etl.retention import collect_garbage
from churn_transform.lake import Lake, LakeLockedError
from churn_transform.settings import Settings
from steps._cli import lake_of, start, tracked_run


def registered_hashes(settings: Settings) -> set[str]:
    """Gold content hashes the registered model versions were trained and evaluated on."""
    client = mlflow.MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{settings.model_name}'")
    except MlflowException:
        return set()
    hashes = set()
    for version in versions:
        if version.run_id:
            tags = client.get_run(version.run_id).data.tags
            hashes |= {tags[t] for t in ("gold_hash.train", "gold_hash.eval") if t in tags}
    return hashes


def dvc_hashes(settings: Settings) -> set[str]:
    """Content hashes of the gold tables DVC's workspace tracks (``steps.version`` copies them)."""
    gold = Path(settings.data_dir) / "gold"
    folders = sorted(p for p in gold.glob("features_*") if p.is_dir()) if gold.is_dir() else []
    return {content_hash(Lake(str(folder)), str(folder)) for folder in folders}


def main(argv: list[str] | None = None) -> None:
    settings = start("gc")
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    lake = lake_of(settings)
    with tracked_run(settings, "gc"):
        referenced = registered_hashes(settings) | dvc_hashes(settings)
        try:
            report = collect_garbage(lake, settings.keep_versions, referenced)
        except LakeLockedError as refused:
            raise SystemExit(f"gc: {refused}") from None
        mlflow.log_metrics({"removed": len(report.removed), "bytes_freed": report.bytes_freed})
        mlflow.log_dict({"removed": report.removed, "kept": report.kept}, "gc/report.json")
    print(f"gc: {report.text()}")


if __name__ == "__main__":
    main()
