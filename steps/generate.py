"""Entry point ``generate``: writes a synthetic KKBox dataset and prints its summary.

Reads: with ``--campaign-log``, a campaign log to play (``GeneratorConfig.campaign_log``); with
``--play-campaign YYYY-MM``, the newest campaign list of that cohort in the lake
(``monitoring.predictions.newest_plan``), played as a retention team would: its contacted
targets get the offer, its control group does not (``modelling.plan.contact_log``). Produces:
the eight raw CSVs in ``Settings.raw_dir`` (and, with ``--months``, the further months in its
``increments/`` folder, a played campaign's log in its month's; and with ``--campaign-share`` the
past campaign's log ``campaigns.csv``) and the oracle's answers in ``Settings.oracle_dir``; logs
the summary to an MLflow run named ``generate``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
from pathlib import Path

import mlflow
import pandas as pd

from churn_transform.modelling.plan import contact_log
from churn_transform.monitoring.predictions import newest_plan
from churn_transform.settings import Settings
from churn_transform.synthetic import GeneratorConfig, Summary, generate
from churn_transform.synthetic.campaign import CampaignLogError
from churn_transform.synthetic.months import further_months
from churn_transform.synthetic.report import describe
from steps._cli import (
    cohort,
    count,
    day,
    lake_of,
    optional,
    positive,
    share,
    start,
    tracked_run,
)

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
    parser.add_argument("--campaign-log", type=_campaign_file, required=True)
    parser.add_argument("--play-campaign", type=optional(cohort), required=True)
    args = parser.parse_args(argv)
    if args.campaign_log and args.play_campaign:
        parser.error("give --campaign-log or --play-campaign, not both")
    if args.play_campaign and args.play_campaign not in further_months(args.months):
        parser.error(
            f"--play-campaign {args.play_campaign}: its log is handed over with the increment of "
            f"{args.play_campaign}, which --months {args.months} does not write"
        )
    return args


def _campaign_file(value: str) -> str | None:
    """argparse type of a campaign log to play: an existing CSV file, or ``none``."""
    if value.lower() == "none":
        return None
    if not value.endswith(".csv") or not Path(value).is_file():
        raise argparse.ArgumentTypeError(f"expected an existing .csv file or none, got {value!r}")
    return value


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
        try:
            summary = generate(config, raw, oracle)
        except CampaignLogError as refused:
            raise SystemExit(f"generate: {refused}") from None
        report = describe(raw, oracle)
        mlflow.log_metrics({f"rows_{k.removesuffix('.csv')}": v for k, v in summary.rows.items()})
        mlflow.log_metrics({f"churn_rate_{k}": v for k, v in summary.cohort_churn.items()})
        mlflow.log_metrics(report.oracle_metrics())
        mlflow.log_metrics({f"played_offers_{k}": v for k, v in summary.played_offers.items()})
        mlflow.log_text(report.text(), "generate/summary.txt")
    print(report.text())
    for month, offered in summary.played_offers.items():
        print(f"played the campaign of {month}: {offered:,} users offered")
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
        campaign_log=args.campaign_log or "",
    )
    if not args.play_campaign:
        run(config, settings)
        return
    with tempfile.TemporaryDirectory(prefix="play-campaign-") as folder:
        log_path = Path(folder) / f"retention-{args.play_campaign}.csv"
        _plan_log(settings, args.play_campaign).to_csv(log_path, index=False)
        run(dataclasses.replace(config, campaign_log=str(log_path)), settings)


def _plan_log(settings: Settings, month: str) -> pd.DataFrame:
    """The log of the newest plan of the cohort ``month`` played as planned; stops the step,
    saying what to run, when the cohort has none."""
    found = newest_plan(lake_of(settings), month)
    if found is None:
        raise SystemExit(
            f"generate: no campaign plan of cohort {month} in the lake ({settings.lake_uri}): "
            f"run `make score COHORT={month}` first"
        )
    listed, plan = found
    print(f"playing the plan of {month}: {plan.said}")
    return contact_log(listed, plan.cohort)


if __name__ == "__main__":
    main()
