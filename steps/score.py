"""Entry point ``score``: batch churn probabilities for a cohort with no labels, with Dask.

Reads: the champion (the version ``models:/<name>@<alias>`` names now) and the gold table of
``--cohort`` (built first if missing, from the current silver). Produces, in the lake under
``predictions/<cohort>/<run id>/`` (the layout: ``churn_transform.monitoring.predictions``):
``submission.csv`` in the competition's format; ``scores.parquet``, every user's probability
and decision with the model version that made them (what ``quality`` measures once the labels
arrive; a cohort already scored by the same version from the same gold, its plan made with
the same settings and ranking rule, is not scored again),
with ``gold.json``, the gold table's version and content hash; ``estimate.json``, the ROC AUC,
precision, recall and campaign value the probabilities let one expect before the labels, for
the cohort and each segment (``monitoring.estimation``, CBPE; its overall figures logged as
``estimated_*`` metrics); ``campaign.csv``, the campaign list as an action plan
(``modelling.plan``: ranked by the uplift champion's expected incremental value when there is
one, else by churn probability; whom to target and contact, the control group, action, call-by
date, the top three reasons) with ``campaign.json``, its totals in NTD (``plan.PlanSummary``,
also logged); on synthetic data, the AUC and log loss against the cohort's hidden labels.
"""

from __future__ import annotations

import argparse
import sys

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from sklearn.metrics import log_loss, roc_auc_score

from churn_transform.etl.gold import build_gold, table_name
from churn_transform.lake import Lake
from churn_transform.modelling.plan import (
    CHURN_PROBABILITY,
    UPLIFT,
    PlanSummary,
    action_plan,
    planned_alike,
)
from churn_transform.modelling.segments import SEGMENTS
from churn_transform.modelling.uplift_registry import load_uplift_champion
from churn_transform.monitoring.estimation import (
    CohortEstimate,
    estimate_metrics,
    estimate_scores,
    write_estimate,
)
from churn_transform.monitoring.predictions import (
    CAMPAIGN_SUMMARY,
    GoldRead,
    scored_by,
    write_beside,
    write_campaign,
    write_predictions,
)
from churn_transform.monitoring.scoring import score
from churn_transform.schema import LABEL
from churn_transform.serving.registry import aliased
from churn_transform.settings import Settings
from churn_transform.synthetic.report import oracle_answers
from steps._cli import (
    cohort,
    dask_cluster,
    lake_of,
    load_registered,
    log_gold_input,
    refusals,
    start,
    tracked_run,
)


def campaign_by_segment(ranked: pd.DataFrame) -> pd.DataFrame:
    """Per segment and value: users, how many the campaign targets and contacts, their mean
    probability and revenue at risk (the same segments as training's metrics)."""
    parts = []
    for name in SEGMENTS:
        groups = ranked.groupby(name, sort=True)
        part = groups.agg(
            users=("msno", "size"),
            targeted=("target", "sum"),
            contacted=("contact", "sum"),
            mean_probability=("churn_probability", "mean"),
            revenue_at_risk=("revenue_at_risk", "sum"),
        )
        parts.append(part.rename_axis("value").reset_index().assign(segment=name))
    table = pd.concat(parts, ignore_index=True)
    columns = ["users", "targeted", "contacted", "mean_probability", "revenue_at_risk"]
    return table[["segment", "value", *columns]]


def hidden_label_quality(settings: Settings, cohort: str, scores: pd.DataFrame) -> dict[str, float]:
    """AUC and log loss against the generator's hidden labels of the cohort, when there are."""
    hidden = oracle_answers(settings.oracle_dir, cohort, scores["msno"])
    if hidden is None or hidden[LABEL].nunique() < 2:
        return {}
    labels, probability = hidden[LABEL], scores["churn_probability"]
    return {
        "hidden_label_roc_auc": roc_auc_score(labels, probability),
        "hidden_label_log_loss": log_loss(labels, probability),
    }


def main(argv: list[str] | None = None) -> None:
    settings = start("score")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cohort", type=cohort, required=True)
    args = parser.parse_args(argv)
    lake = lake_of(settings)
    with tracked_run(settings, "score") as run, dask_cluster(settings):
        version = _champion(settings)
        uri = f"models:/{settings.model_name}/{version}"  # the alias, pinned
        mlflow.log_params({"cohort": args.cohort, "model_uri": uri})
        model = load_registered(uri)  # a tampered model stops the step before any work
        uplift = load_uplift_champion(settings)
        with refusals("score"):
            _, gold_hash, _ = build_gold(lake, args.cohort)
        rule = UPLIFT if uplift is not None else CHURN_PROBABILITY
        made = (settings.offer_cost, settings.offer_acceptance, settings.control_share, rule)
        if scored_by(
            lake, args.cohort, version, gold_hash, lambda plan: planned_alike(plan, *made)
        ):
            said = f"already scored by version {version}"
            mlflow.set_tag("skipped", f"{said} from gold {gold_hash}")
            print(
                f"{args.cohort} is {said}: nothing to do (gold {gold_hash[:12]} and the plan's "
                "settings unchanged)"
            )
            return
        with refusals("score"):
            scores = score(lake, args.cohort, model, uplift)
        log_gold_input(lake, args.cohort, "scoring")
        estimate = _estimate(
            settings, lake, args.cohort, run.info.run_id, scores, version, model.threshold_
        )
        read = GoldRead(lake.current_version("gold", table_name(args.cohort)), gold_hash)
        target = write_predictions(lake, args.cohort, run.info.run_id, scores, version, read)
        campaign, plan = _campaign(settings, lake, args.cohort, run.info.run_id, scores)
        mlflow.log_params(
            {"submission": target, "campaign": campaign, "campaign_size": plan.targets}
        )
        mlflow.log_metrics(
            {"rows": len(scores), "mean_probability": scores["churn_probability"].mean()}
        )
        quality = hidden_label_quality(settings, args.cohort, scores)
        if quality:
            mlflow.log_metrics(quality)
            print(", ".join(f"{name} {value:.4f}" for name, value in quality.items()))
    print(f"scored {len(scores):,} users of {args.cohort} with {uri}: {target}")
    print(_said(estimate))
    print(f"campaign list: {campaign}; {plan.said}")


def _estimate(
    settings: Settings,
    lake: Lake,
    cohort: str,
    run_id: str,
    scores: pd.DataFrame,
    version: str,
    threshold: float,
) -> CohortEstimate:
    """The performance the scores let one expect before the labels, in the lake first (scores
    never stand without it) and logged."""
    estimate = estimate_scores(
        scores, cohort, version, threshold, settings.offer_cost, settings.offer_acceptance
    )
    write_estimate(lake, run_id, estimate)
    mlflow.log_metrics(estimate_metrics(estimate.overall))
    mlflow.log_text(estimate.to_json(), "estimate.json")
    return estimate


def _said(estimate: CohortEstimate) -> str:
    overall = estimate.overall
    return (
        f"estimated before the labels (CBPE): ROC AUC {overall.roc_auc:.4f} "
        f"(± {overall.roc_auc_standard_error:.4f}), precision {overall.precision:.4f}, recall "
        f"{overall.recall:.4f} at threshold {estimate.threshold:.3f}"
    )


def _champion(settings: Settings) -> str:
    """The version the champion alias names now; stops the step, saying so, when none does."""
    try:
        return aliased(settings.tracking_uri, settings.model_name, settings.champion_alias).version
    except MlflowException as error:
        sys.exit(
            f"score: no {settings.champion_alias!r} version of {settings.model_name!r} to "
            f"score with ({str(error).splitlines()[0]}); train one first (`make demo`)"
        )


def _campaign(
    settings: Settings, lake: Lake, cohort: str, run_id: str, scores: pd.DataFrame
) -> tuple[str, PlanSummary]:
    """The campaign list in the lake (its URL) with its totals beside it, logged with the
    figures per segment."""
    ranked, plan = action_plan(
        scores, cohort, settings.offer_cost, settings.offer_acceptance, settings.control_share
    )
    campaign = write_campaign(lake, cohort, run_id, ranked)
    write_beside(lake, cohort, run_id, CAMPAIGN_SUMMARY, plan.to_json().encode())
    mlflow.log_text(plan.to_json(), CAMPAIGN_SUMMARY)
    mlflow.set_tags({"campaign_ranked_by": plan.ranked_by, "campaign_reason": plan.said})
    mlflow.log_metrics(
        {
            "campaign_expected_value": plan.expected_net_value,
            "campaign_expected_saves": plan.expected_saves,
            "campaign_cost": plan.cost,
            "campaign_contacted": plan.contacted,
            "campaign_control": plan.control,
        }
    )
    mlflow.log_table(campaign_by_segment(ranked), "campaign_segments.json")
    return campaign, plan


if __name__ == "__main__":
    main()
