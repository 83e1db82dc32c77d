"""Prints what a retention campaign saves when it targets by uplift, by churn probability (today's
rule) and at random, each beside the oracle's best: issue 35's first proof.

    python benchmarks/uplift.py                          # 100,000 users, half the campaign offered
    python benchmarks/uplift.py --users 20000 --workspace /tmp/uplift-20k   # kept; rerun reuses it

In ``--workspace`` (a temporary folder unless given; a given one keeps its lake, and a rerun with
the same size and seed reuses it) it generates ``--users`` subscribers whose March 2017 cohort
held a past campaign (``campaign_share``: the share offered, the rest the control), ingests them
and builds the gold tables of February and March 2017 (the library's ``generate``, ``ingest``
and ``build_gold``, as the ``main`` pipeline's steps call them). Then:

- the churn model (``modelling.training.fit``, the default ``TrainConfig``) is trained on
  February, as ``main`` trains the champion;
- the uplift model (``modelling.uplift``) is trained on the March campaign's users outside a
  held-out share (``--holdout``, by a hash of ``msno`` as ``train --holdout`` does);
- on the held-out users, against the oracle's true effect (``churn_probability -
  churn_probability_offered``): the Qini coefficient and uplift AUC of each model's scores, and
  the expected saves and net value (NTD: ``uplift.save_value`` per save, one month of the plan;
  ``KKBOX_OFFER_COST`` per offer) of targeting ``k`` users by uplift (the X-learner, and the
  T-learner beside it), by churn probability and at random, beside the oracle's best (the top
  ``k`` by true effect). ``k`` is the size today's campaign list picks on those users
  (``modelling.campaign.choose`` on the churn model's probabilities), then 10% of them.

With ``--track`` the figures are also logged as an MLflow run named ``uplift`` (parameters and
``uplift.as_metrics``) in the settings' tracking store and experiment.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import dask
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from churn_transform.etl.gold import build_gold, read_gold  # noqa: E402
from churn_transform.etl.ingest import ingest  # noqa: E402
from churn_transform.lake import Lake  # noqa: E402
from churn_transform.modelling.campaign import choose, monthly_price  # noqa: E402
from churn_transform.modelling.training import TrainConfig, fit, held_out  # noqa: E402
from churn_transform.modelling.uplift import (  # noqa: E402
    TREATED,
    Targeted,
    UpliftConfig,
    as_metrics,
    campaign_users,
    compare,
    fit_uplift,
    qini,
    save_value,
    uplift_auc,
)
from churn_transform.schema import FEATURES, LABEL  # noqa: E402
from churn_transform.settings import Settings  # noqa: E402
from churn_transform.synthetic import GeneratorConfig, generate  # noqa: E402
from churn_transform.synthetic.campaign import CAMPAIGN_COHORT, CAMPAIGN_FILE  # noqa: E402
from churn_transform.synthetic.report import oracle_answers  # noqa: E402

TRAIN_COHORT = "2017-02"


@dataclass(frozen=True)
class Report:
    """The benchmark's figures: the held-out users, both models' ranking scores, the table."""

    users: int
    campaign_users: int
    held_out_users: int
    mean_effect: float
    scores: dict[str, dict[str, float]]
    rows: list[Targeted]
    seconds: float


def build_lake(workspace: Path, users: int, seed: int, share: float) -> Lake:
    """The generated raw files, oracle and gold tables of ``workspace``; reused when a previous
    run with the same size, seed and campaign share finished them."""
    made = workspace / "made.json"
    wanted = {"users": users, "seed": seed, "campaign_share": share}
    lake = Lake(str(workspace / "lake"))
    if made.exists() and json.loads(made.read_text()) == wanted:
        return lake
    config = GeneratorConfig(users=users, seed=seed, campaign_share=share, processes=0)
    generate(config, workspace / "raw", workspace / "oracle")
    with dask.config.set(scheduler="threads"):
        ingest(lake, str(workspace / "raw"), {})
        for cohort in (TRAIN_COHORT, CAMPAIGN_COHORT):
            build_gold(lake, cohort)
    made.write_text(json.dumps(wanted))
    return lake


def split_campaign(
    workspace: Path, lake: Lake, holdout: float
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """The campaign's users outside the hold-out (to fit on), those in it (to judge), and the
    judged users' true effect of the offer (the oracle's churn probability without it less with
    it)."""
    log = pd.read_csv(workspace / "raw" / CAMPAIGN_FILE)
    cohort = campaign_users(read_gold(lake, CAMPAIGN_COHORT)[0], log)
    kept = held_out(cohort["msno"], holdout)
    train, judged = cohort[~kept].reset_index(drop=True), cohort[kept].reset_index(drop=True)
    oracle = oracle_answers(str(workspace / "oracle"), CAMPAIGN_COHORT, judged["msno"])
    if oracle is None or "churn_probability_offered" not in oracle:
        raise SystemExit(f"no oracle with offers for {CAMPAIGN_COHORT} in {workspace}")
    effect = (oracle["churn_probability"] - oracle["churn_probability_offered"]).to_numpy()
    return train, judged, effect


def run(workspace: Path, users: int, seed: int, share: float, holdout: float) -> Report:
    began = time.perf_counter()
    lake = build_lake(workspace, users, seed, share)
    train, judged, effect = split_campaign(workspace, lake, holdout)
    churn = fit(read_gold(lake, TRAIN_COHORT)[0], TrainConfig()).model
    features = judged[list(FEATURES)]
    scores = {
        f"uplift ({learner.upper()}-learner)": fit_uplift(
            train[list(FEATURES)],
            train[TREATED].to_numpy(),
            train[LABEL].to_numpy(),
            UpliftConfig(learner=learner),
        ).predict(features)
        for learner in ("x", "t")
    }
    scores["churn probability"] = churn.predict_proba(features)[:, 1]
    settings = Settings()
    value = save_value(judged)
    today = choose(
        scores["churn probability"],
        monthly_price(judged),
        settings.offer_cost,
        settings.offer_acceptance,
    )
    rows: list[Targeted] = []
    for size in dict.fromkeys((today[1].size, round(0.1 * len(judged)))):
        rows += compare(effect, scores, value, settings.offer_cost, size)
    return Report(
        users=users,
        campaign_users=len(train) + len(judged),
        held_out_users=len(judged),
        mean_effect=float(effect.mean()),
        scores={
            name: {"qini": qini(effect, score), "uplift_auc": uplift_auc(effect, score)}
            for name, score in {**scores, "oracle best": effect}.items()
        },
        rows=rows,
        seconds=time.perf_counter() - began,
    )


def table(report: Report) -> str:
    lines = [
        f"{report.users:,} users; campaign cohort {CAMPAIGN_COHORT}: {report.campaign_users:,} "
        f"users, {report.held_out_users:,} held out and judged; mean true effect "
        f"{report.mean_effect:.4f}; {report.seconds:.0f} s",
        "",
        f"{'ranking by':<24}{'Qini':>8}{'uplift AUC':>12}",
    ]
    for name, score in report.scores.items():
        lines.append(f"{name:<24}{score['qini']:>8.3f}{score['uplift_auc']:>12.5f}")
    lines += [
        "",
        f"{'targeting rule':<24}{'k':>7}{'saves':>8}{'net NTD':>10}"
        f"{'best saves':>12}{'best net NTD':>14}",
    ]
    best = {row.size: row for row in report.rows if row.rule == "oracle best"}
    for row in report.rows:
        if row.rule != "oracle best":
            top = best[row.size]
            lines.append(
                f"{row.rule:<24}{row.size:>7,}{row.saves:>8.1f}{row.net_value:>10,.0f}"
                f"{top.saves:>12.1f}{top.net_value:>14,.0f}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--campaign-share", type=float, default=0.5)
    parser.add_argument("--holdout", type=float, default=0.3)
    parser.add_argument("--workspace", type=Path, help="kept and reused (default: a temporary one)")
    parser.add_argument("--track", action="store_true", help="log the figures to MLflow")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        workspace = args.workspace or Path(temporary)
        workspace.mkdir(parents=True, exist_ok=True)
        report = run(workspace, args.users, args.seed, args.campaign_share, args.holdout)
    print(table(report))
    if args.track:
        track(report, vars(args))


def track(report: Report, parameters: dict[str, object]) -> None:
    """The figures as an MLflow run ``uplift`` of the settings' tracking store and experiment."""
    import mlflow

    settings = Settings()
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_experiment(settings.experiment_name)
    with mlflow.start_run(run_name="uplift"):
        mlflow.log_params({k: v for k, v in parameters.items() if k != "track"})
        mlflow.log_metrics(
            {
                **as_metrics(report.rows, report.scores),
                "held_out_users": report.held_out_users,
                "mean_true_effect": report.mean_effect,
            }
        )


if __name__ == "__main__":
    main()
