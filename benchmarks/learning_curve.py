"""The model's distance to the oracle by size: issue #33's learning curve.

    python benchmarks/learning_curve.py                            # 20k, 100k, 300k, 1M users
    python benchmarks/learning_curve.py --users 20000 100000 --workspace /tmp/curve

For each size it runs the platform's own ``main`` (``mlflow run . -e main --env-manager local
-P users=N``: generate, ingest, gold, train on February, judge on March) in a workspace of its
own (``<workspace>/<N>``: data folder, SQLite registry, BentoML store, feature store), reads the
``train`` run's metrics from that registry (the figures ``train`` logged, not its printout) and
prints one row per size: users, February's and March's cohort sizes, the model's and the
oracle's ROC AUC and log loss on March, the gap, and main's wall time. A size whose workspace
already holds a finished ``train`` run is read again, not rerun.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow

ROOT = Path(__file__).resolve().parents[1]
SIZES = (20_000, 100_000, 300_000, 1_000_000)
SHOWN = ("roc_auc", "oracle_roc_auc", "auc_gap_to_oracle", "log_loss", "oracle_log_loss")


def _environment(folder: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "KKBOX_DATA_DIR": str(folder / "data"),
        "KKBOX_FEATURE_REPO": str(folder / "feature_store"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "MLFLOW_EXPERIMENT_NAME": "kkbox-churn",
        "BENTOML_HOME": str(folder / "bentoml"),
    }


def _train_metrics(folder: Path) -> dict[str, float] | None:
    """The metrics of the finished ``train`` run in the workspace's registry, None without one."""
    if not (folder / "mlflow.db").exists():
        return None
    client = mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("kkbox-churn")
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        "tags.`mlflow.project.entryPoint` = 'train' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return dict(runs[0].data.metrics) if runs else None


def measure(users: int, workspace: Path) -> dict[str, float]:
    """``main`` at ``users`` in ``<workspace>/<users>`` (unless done there before): its train
    run's metrics and, when it ran now, its wall time in seconds (``wall_s``)."""
    folder = workspace / str(users)
    found = _train_metrics(folder)
    if found is not None:
        return found
    folder.mkdir(parents=True, exist_ok=True)
    command = ["mlflow", "run", str(ROOT), "-e", "main", "--env-manager", "local"]
    start = time.perf_counter()
    with open(folder / "main.log", "w") as log:
        subprocess.run(
            [*command, "-P", f"users={users}"],
            cwd=ROOT,
            env=_environment(folder),
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )
    metrics = _train_metrics(folder)
    if metrics is None:
        raise SystemExit(f"main at {users:,} users finished without a train run: {folder}")
    return {**metrics, "wall_s": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--workspace", type=Path, default=Path("/tmp/kkbox-learning-curve"))
    args = parser.parse_args()
    print("| users | " + " | ".join(SHOWN) + " | log loss vs oracle's | main wall s |")
    print("|---" * (len(SHOWN) + 3) + "|")
    for users in args.users:
        found = measure(users, args.workspace)
        excess = found["log_loss"] / found["oracle_log_loss"] - 1
        wall = f"{found['wall_s']:.0f}" if "wall_s" in found else "(earlier run)"
        row = " | ".join(f"{found[name]:.4f}" for name in SHOWN)
        print(f"| {users:,} | {row} | {excess:+.1%} | {wall} |", flush=True)


if __name__ == "__main__":
    main()
