"""Entry point ``uplift``: the uplift model (whose churn a retention offer prevents) learnt from
the newest past campaign, registered, and promoted by its own gate.

Reads: the campaign log (``campaigns.csv``) at ``Settings.raw_dir`` (a folder or an s3://
prefix), its newest campaign, the current gold table of that campaign's cohort (and the
generator's oracle when present). With no campaign log (the real KKBox files, or data generated
with ``campaign_share`` 0) it says so and exits 0, training and registering nothing. Produces: an
MLflow run ``uplift`` with the model's parameters, the observed Qini (with its bootstrap 95%
interval) and uplift AUC of the held-out campaign users (``--holdout``, by a hash of ``msno``),
and on synthetic data the Qini and uplift AUC against the oracle's true effect; the model in
skops format, registered as a new version of ``Settings.uplift_model_name``. Then its gate
(``churn_transform.modelling.uplift_gate``): the champion alias moves to it only if its observed
Qini's interval lies above 0 and it is not below the current champion's on the same users by
more than ``--margin``; else it is tagged ``refused`` or ``behind``. The outcome is kept as
``promotion.json`` and the tag ``promotion``, as ``train`` keeps the churn model's.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

import mlflow
import numpy as np
import pandas as pd

from churn_transform.etl.campaign_log import latest_campaign, read_campaign_log
from churn_transform.etl.gold import read_gold
from churn_transform.modelling.artifact import UntrustedModelError
from churn_transform.modelling.promotion import record
from churn_transform.modelling.uplift import UpliftConfig, campaign_users
from churn_transform.modelling.uplift_gate import QiniEstimate, UpliftGate, decide
from churn_transform.modelling.uplift_registry import (
    apply,
    champion_version,
    load_version,
    log_uplift_model,
)
from churn_transform.modelling.uplift_training import fit_campaign, judge, split_campaign
from churn_transform.schema import CAMPAIGN_FILE, FEATURES
from churn_transform.settings import Settings
from churn_transform.synthetic.report import oracle_answers
from steps._cli import count, lake_of, log_gold_input, refusals, share, start, tracked_run


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--holdout", type=share, required=True)
    parser.add_argument("--margin", type=float, required=True)
    parser.add_argument("--draws", type=count, required=True)
    parser.add_argument("--learner", choices=("x", "t"), required=True)
    parser.add_argument("--n-estimators", type=count, required=True)
    parser.add_argument("--seed", type=int, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    settings = start("uplift")
    args = _arguments(argv)
    log = read_campaign_log(settings.raw_dir, settings.storage_options(settings.raw_dir))
    if log is None:
        print(
            f"uplift: no campaign log ({CAMPAIGN_FILE}) at {settings.raw_dir}: no past campaign "
            "to learn from, so no uplift model is trained or registered"
        )
        return
    campaign, cohort, rows = latest_campaign(log)
    config = UpliftConfig(learner=args.learner, n_estimators=args.n_estimators, seed=args.seed)
    with tracked_run(settings, "uplift"), refusals("uplift"):
        lake = lake_of(settings)
        gold, gold_hash = read_gold(lake, cohort)
        log_gold_input(lake, cohort, "training", gold)
        split = split_campaign(campaign_users(gold, rows), args.holdout)
        fixed = {
            k: v for k, v in asdict(config).items() if k not in ("learner", "n_estimators", "seed")
        }
        mlflow.log_params({"campaign": campaign, "cohort": cohort, **fixed})
        mlflow.log_metric("train_users", len(split.train))
        mlflow.set_tags({"gold_hash.train": gold_hash, "campaign": campaign})
        model = fit_campaign(split.train, config)
        effect = _true_effect(settings, cohort, split.held_out)
        found, metrics = judge(
            model.predict(split.held_out[list(FEATURES)]), split.held_out, effect, args.draws
        )
        mlflow.log_metrics(metrics)
        version = log_uplift_model(model, split.train[list(FEATURES)].head(5), settings)
        champion = _champion(settings, split.held_out, args.draws)
        gate = UpliftGate(args.margin)
        outcome = decide(version, found, champion, gate, settings.champion_alias)
        apply(settings, outcome)
        record(outcome)
    print(f"{campaign} ({cohort}): {found.text()}")
    print(f"{settings.uplift_model_name} {outcome.text()}")


def _true_effect(settings: Settings, cohort: str, judged: pd.DataFrame) -> np.ndarray | None:
    """Each held-out user's true effect from the generator's oracle (churn probability without
    the offer minus with it); None on real data."""
    answers = oracle_answers(settings.oracle_dir, cohort, judged["msno"])
    if answers is None or "churn_probability_offered" not in answers:
        return None
    return (answers["churn_probability"] - answers["churn_probability_offered"]).to_numpy()


def _champion(
    settings: Settings, judged: pd.DataFrame, draws: int
) -> tuple[str, QiniEstimate] | None:
    """The current uplift champion's version and observed Qini on the same held-out users;
    None when there is none."""
    version = champion_version(settings)
    if version is None:
        return None
    try:
        champion = load_version(settings, version)
    except UntrustedModelError as error:
        sys.exit(f"uplift: refusing the uplift champion, version {version}: {error}")
    score = champion.predict(judged[list(FEATURES)])
    found, metrics = judge(score, judged, draws=draws)
    mlflow.log_metrics({f"champion_{name}": value for name, value in metrics.items()})
    return version, found


if __name__ == "__main__":
    main()
