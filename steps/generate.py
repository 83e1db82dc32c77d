"""Entry point ``generate``: writes a synthetic KKBox dataset and prints its summary.

Reads: nothing. Produces: the eight raw CSVs in ``Settings.raw_dir`` (and, with ``--months``,
the further months in its ``increments/`` folder, and with ``--campaign-share`` the past
campaign's log ``campaigns.csv``) and the oracle's answers in ``Settings.oracle_dir``; logs the
summary to an MLflow run named ``generate``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import mlflow

from churn_transform.settings import Settings
from churn_transform.synthetic import GeneratorConfig, Summary, generate
from churn_transform.synthetic.report import describe
from steps._cli import cohort, count, day, positive, share, start, tracked_run

log = logging.getLogger(__name__)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    # Defaults live in MLproject; these are required so that they cannot disagree with it.
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=positive, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--shift", type=float, required=True)
    parser.add_argument("--log-start", type=day, required=True)
    parser.add_argument("--chunk-users", type=positive, required=True)
    parser.add_argument("--months", type=count, required=True)
    parser.add_argument("--shift-start", type=cohort, required=True)
    parser.add_argument("--processes", type=count, required=True)
    parser.add_argument("--campaign-share", type=share, required=True)
    return parser.parse_args(argv)


def run(config: GeneratorConfig, settings: Settings) -> Summary:
    """Generate into the settings' local raw and oracle folders, tracked as an MLflow run."""
    raw, oracle = Path(settings.raw_dir), Path(settings.oracle_dir)
    if "://" in settings.raw_dir:
        raise SystemExit(f"generate writes a local folder; KKBOX_RAW_URI is {settings.raw_dir}")
    with tracked_run(settings, "generate") as active:
        # `mlflow run` has logged its -P values as typed (shift=1): log only the rest, since
        # MLflow refuses a parameter logged again with another spelling (1.0)
        given = active.data.params
        mlflow.log_params({k: v for k, v in vars(config).items() if k not in given})
        summary = generate(config, raw, oracle)
        report = describe(raw, oracle)
        mlflow.log_metrics({f"rows_{k.removesuffix('.csv')}": v for k, v in summary.rows.items()})
        mlflow.log_metrics({f"churn_rate_{k}": v for k, v in summary.cohort_churn.items()})
        mlflow.log_metrics(report.oracle_metrics())
        mlflow.log_text(report.text(), "generate/summary.txt")
    print(report.text())
    return summary


def main(argv: list[str] | None = None) -> None:
    settings = start("generate")
    args = _arguments(argv)
    config = GeneratorConfig(
        users=args.users,
        seed=args.seed,
        shift=args.shift,
        log_start=args.log_start,
        chunk_users=args.chunk_users,
        months=args.months,
        shift_start=args.shift_start,
        processes=args.processes,
        campaign_share=args.campaign_share,
    )
    run(config, settings)


if __name__ == "__main__":
    main()
