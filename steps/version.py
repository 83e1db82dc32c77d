"""Entry point ``version``: DVC versions what training depends on, the raw snapshot and gold.

Reads: the current gold tables of the cohorts (and the raw folder when it is local). Produces:
a DVC repository in ``Settings.data_dir`` (no git needed: ``dvc init --no-scm``) with
``raw.dvc`` and ``gold/features_<cohort>.dvc``, pushed to the DVC remote (the lake's bucket
under ``dvc/`` for an S3 lake, else ``<data_dir>/dvc-remote``). Logs the .dvc files and their
md5 to MLflow: a model trained on these tables leads back to them, and ``dvc checkout`` of those
files (``dvc pull`` on another machine) restores the exact data.
"""

from __future__ import annotations

import argparse
import os
import posixpath
import shutil
import subprocess
from pathlib import Path

import mlflow
import yaml

from churn_transform.etl.gold import table_name
from churn_transform.lake import Lake
from churn_transform.settings import Settings
from steps._cli import cohorts, lake_of, start, tracked_run

REMOTE = "lake"


def _dvc(folder: Path, *args: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run(["dvc", *args], cwd=folder, env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"dvc {' '.join(args)} failed in {folder}: {result.stderr.strip()}")
    return result.stdout


def remote_url(settings: Settings) -> str:
    if settings.lake_uri.startswith("s3://"):
        return f"{settings.lake_uri}/dvc"
    return str(Path(settings.data_dir) / "dvc-remote")


def ensure_repository(settings: Settings) -> Path:
    """A DVC repository in the data folder with the settings' remote as default."""
    folder = Path(settings.data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / ".dvc").exists():
        _dvc(folder, "init", "--no-scm", "--quiet")
    _dvc(folder, "remote", "add", "--default", "--force", REMOTE, remote_url(settings))
    if settings.s3_endpoint_url and settings.lake_uri.startswith("s3://"):
        _dvc(folder, "remote", "modify", REMOTE, "endpointurl", settings.s3_endpoint_url)
    return folder


def materialize_gold(lake: Lake, cohort: str, folder: Path) -> Path:
    """Copy the current gold table of ``cohort`` into the DVC workspace (replacing what was)."""
    target = folder / "gold" / table_name(cohort)
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    source = lake.path_of(lake.current("gold", table_name(cohort)))
    for path in sorted(lake.fs.glob(posixpath.join(source, "part-*.parquet"))):
        lake.fs.get_file(path, str(target / posixpath.basename(path)))
    return target


def track(folder: Path, target: Path) -> tuple[Path, str]:
    """``dvc add`` a folder; returns its .dvc file and the md5 DVC gave it."""
    relative = target.relative_to(folder)
    _dvc(folder, "add", "--quiet", str(relative))
    dvc_file = target.with_name(target.name + ".dvc")
    md5 = yaml.safe_load(dvc_file.read_text())["outs"][0]["md5"]
    return dvc_file, md5


def main(argv: list[str] | None = None) -> None:
    settings = start("version")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--cohorts", type=cohorts, required=True, help="comma-separated, e.g. 2017-02,2017-03"
    )
    args = parser.parse_args(argv)
    lake = lake_of(settings)
    with tracked_run(settings, "version"):
        folder = ensure_repository(settings)
        targets = [materialize_gold(lake, c, folder) for c in args.cohorts]
        raw = Path(settings.raw_dir)
        if "://" not in settings.raw_dir and raw.resolve().parent == folder.resolve():
            targets.append(raw)
        for target in targets:
            dvc_file, md5 = track(folder, target)
            mlflow.set_tag(f"dvc.{target.name}", md5)
            mlflow.log_artifact(str(dvc_file), "dvc")
            print(f"{target.relative_to(folder)}: dvc md5 {md5}")
        _dvc(folder, "push", "--quiet")
        mlflow.log_param("dvc_remote", remote_url(settings))
    print(f"pushed to {remote_url(settings)}")


if __name__ == "__main__":
    main()
