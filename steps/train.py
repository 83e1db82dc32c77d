"""Entry point ``train``: the churn model on the training cohort(s), judged on a later cohort.

Reads: the current gold tables of ``--train-cohort`` (one month, or several separated by commas) and
``--eval-cohort`` (and the generator's oracle when present). With ``--holdout`` above 0, that share
of users (by a hash of their ``msno``) is kept out of training and only they are judged: the way to
train on the newest labelled cohort and judge on it too. Produces: an MLflow run with parameters,
data versions (gold content hashes), git commit, evaluation metrics, the oracle's scores and the gap
to them, plots, feature importance, a training sample kept as the drift reference, and the model
(transformer + LightGBM, calibrated, package code shipped, pyfunc returning probabilities),
registered as a new version of the model, with its model card. Then the promotion gate
(``churn_transform.modelling.promotion``): the ``champion`` alias moves to it only if it clears the
floor and no champion serves, or (``--shadow`` false) it beats the champion on the same evaluation
users by ``--margin`` with no segment whose bootstrap interval lies far below; with ``--shadow``
true such a candidate gets the ``challenger`` alias instead (docs/challenger.md). Otherwise it is
tagged ``behind``, or refused with its reason. The calibration in the large, and per segment ROC
AUC, calibration gap and recall at the campaign cut with their 95% intervals, are logged
(``evaluation/segments.json`` and metrics) and in the card. The gate's outcome is kept as
``promotion.json`` (what the monthly cycle reads) and as the tag ``promotion``, a sentence.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from sklearn.calibration import CalibrationDisplay
from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay, log_loss, roc_auc_score

from churn_transform.etl.gold import read_gold
from churn_transform.lake import Lake
from churn_transform.modelling import artifact
from churn_transform.modelling.campaign import gains, monthly_price, targeting_value
from churn_transform.modelling.card import CardFacts, description, model_card
from churn_transform.modelling.explanation import explain
from churn_transform.modelling.promotion import Floor, Gate, Judged, promote, record, segments_of
from churn_transform.modelling.segments import cohort_figures
from churn_transform.modelling.training import (
    Fitted,
    TrainConfig,
    evaluate,
    fit,
    model_requirements,
    split_held_out,
)
from churn_transform.schema import FEATURES, LABEL
from churn_transform.settings import PROJECT_ROOT, Settings
from churn_transform.synthetic.agreement import agreement
from churn_transform.synthetic.report import oracle_answers, oracle_terms
from steps._cli import (
    boolean,
    cohort,
    cohorts,
    lake_of,
    load_registered,
    log_gold_input,
    read_training,
    share,
    start,
    tracked_run,
)

REFERENCE_ROWS = 5000


def _git_commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "unknown"


def _plots(fitted: Fitted, gold: pd.DataFrame, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display; set here, not at import
    import matplotlib.pyplot as plt

    features, label = gold[list(FEATURES)], gold[LABEL].astype(int)
    probability = fitted.model.predict_proba(features)[:, 1]
    for name, display in (("roc", RocCurveDisplay), ("pr", PrecisionRecallDisplay)):
        display.from_predictions(label, probability)
        plt.savefig(folder / f"{name}.png", dpi=80)
        plt.close("all")
    CalibrationDisplay.from_predictions(label, probability, n_bins=15, strategy="quantile")
    plt.savefig(folder / "calibration.png", dpi=80)
    plt.close("all")
    names = fitted.model.pipeline.named_steps["features"].get_feature_names_out()
    importance = pd.Series(
        fitted.model.pipeline.named_steps["model"].booster_.feature_importance("gain"), index=names
    ).sort_values(ascending=False)
    importance.to_csv(folder / "feature_importance.csv", header=["gain"])
    importance.head(25)[::-1].plot.barh(figsize=(7, 7))
    plt.tight_layout()
    plt.savefig(folder / "feature_importance.png", dpi=80)
    plt.close("all")


def _campaign(fitted: Fitted, gold: pd.DataFrame, folder: Path, settings: Settings) -> dict:
    """Cumulative gains and lift charts on the evaluation cohort, and the value of the campaign
    the model would choose there against contacting as many users at random."""
    import matplotlib.pyplot as plt

    label = gold[LABEL].astype(int).to_numpy()
    probability = fitted.model.predict_proba(gold[list(FEATURES)])[:, 1]
    curve = gains(label, probability)
    for column, baseline in (("captured", curve["contacted"]), ("lift", 1.0 + 0 * curve["lift"])):
        axes = curve.plot(x="contacted", y=column, label="model", figsize=(6, 4))
        axes.plot(curve["contacted"], baseline, linestyle="--", label="random")
        axes.set_xlabel("share of users contacted, highest probability first")
        axes.legend()
        name = "cumulative_gains" if column == "captured" else "lift"
        plt.savefig(folder / f"{name}.png", dpi=80)
        plt.close("all")
    return targeting_value(
        label, probability, monthly_price(gold), settings.offer_cost, settings.offer_acceptance
    )


def oracle_scores(settings: Settings, cohort: str, gold: pd.DataFrame) -> dict[str, float]:
    """The generator's true probabilities on the same users, when the data is synthetic."""
    oracle = oracle_answers(settings.oracle_dir, cohort, gold["msno"])
    if oracle is None:
        return {}
    truth, p = gold[LABEL].astype(int).to_numpy(), oracle["churn_probability"].to_numpy()
    return {"oracle_roc_auc": roc_auc_score(truth, p), "oracle_log_loss": log_loss(truth, p)}


def explanation_agreement(
    settings: Settings, cohort: str, gold: pd.DataFrame, fitted: Fitted
) -> dict[str, float]:
    """How far the model's reasons agree with the oracle's terms, when the data is synthetic."""
    terms = oracle_terms(settings.oracle_dir, cohort, gold["msno"])
    if terms is None:
        return {}
    return agreement(explain(fitted.model, gold[list(FEATURES)]).contributions, terms).as_metrics()


def log_model(
    fitted: Fitted, train: pd.DataFrame, settings: Settings
) -> mlflow.entities.model_registry.ModelVersion:
    """Log the calibrated pipeline in skops format, which rebuilds only the trusted types named
    (a pickle would run any code its file names when loaded), and register it. Nothing loads it
    meanwhile: its requirements are given (``model_requirements``), and no input example is
    saved, since MLflow checks one by loading the model and predicting it."""
    example = train[list(FEATURES)].head(5)
    signature = infer_signature(example, fitted.model.predict_proba(example))
    info = mlflow.sklearn.log_model(
        fitted.model,
        name="model",
        serialization_format=artifact.FORMAT,
        skops_trusted_types=list(artifact.TRUSTED_TYPES),
        code_paths=[str(PROJECT_ROOT / "churn_transform")],
        pip_requirements=model_requirements(),
        signature=signature,
        pyfunc_predict_fn="predict_proba",
        registered_model_name=settings.model_name,
        metadata={"threshold": fitted.threshold},
    )
    return mlflow.MlflowClient().get_model_version(
        settings.model_name, info.registered_model_version
    )


def attach_card(settings: Settings, version: str, card: str) -> None:
    """The model card as ``model_card.md`` and as the version's description in the registry (cut
    to what every backend stores)."""
    mlflow.log_text(card, "model_card.md")
    client = mlflow.MlflowClient()
    client.update_model_version(settings.model_name, version, description=description(card))


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train-cohort", type=cohorts, required=True)
    parser.add_argument("--eval-cohort", type=cohort, required=True)
    parser.add_argument("--holdout", type=share, required=True)
    parser.add_argument("--margin", type=float, required=True)
    parser.add_argument("--min-auc", type=float, required=True)
    parser.add_argument("--min-oracle-share", type=float, required=True)
    parser.add_argument("--max-segment-auc-drop", type=float, required=True)
    parser.add_argument("--shadow", type=boolean, required=True)
    for name, default in asdict(TrainConfig()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), required=True)
    args = parser.parse_args(argv)
    if args.eval_cohort in args.train_cohort and args.holdout == 0:
        parser.error(
            f"--eval-cohort {args.eval_cohort} is also a training cohort: give --holdout, the "
            "share of users kept out of training and judged"
        )
    return args


def main(argv: list[str] | None = None) -> None:
    settings = start("train")
    args = _arguments(argv)
    config = TrainConfig(**{k: getattr(args, k) for k in asdict(TrainConfig())})
    with tracked_run(settings, "train"):
        train, held_out, hashes = _read(lake_of(settings), args)
        fitted = fit(train, config)
        scores, agreement, segments = _judge(settings, args.eval_cohort, fitted, held_out)
        campaign = _log_evaluation(settings, fitted, train, held_out)
        version = str(log_model(fitted, train, settings).version)
        card = CardFacts(
            name=settings.model_name,
            version=version,
            train_cohort=",".join(args.train_cohort),
            eval_cohort=args.eval_cohort,
            data_versions=hashes,
            scores={**scores, **agreement},
            segments=segments,
            threshold=fitted.threshold,
            threshold_reason=fitted.threshold_reason,
            campaign=campaign,
            holdout=args.holdout,
        )
        attach_card(settings, version, model_card(card))
        floor = Floor(args.min_auc, args.min_oracle_share)
        gate = Gate(floor, args.margin, args.max_segment_auc_drop, shadow=args.shadow)
        candidate = Judged(version, scores, segments)
        outcome = promote(settings, candidate, held_out, gate, load_registered)
        record(outcome)
    shown = ", ".join(f"{name} {value:.4f}" for name, value in scores.items())
    print(f"judged on {args.eval_cohort}: {shown}")
    print(outcome.text())


def _read(
    lake: Lake, args: argparse.Namespace
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """The training rows, the evaluation rows (the held-out users only, with ``--holdout``) and
    the content hashes of the gold tables read, each logged as an input and tagged."""
    train, train_hash = read_training(lake, args.train_cohort)
    held_out, eval_hash = read_gold(lake, args.eval_cohort)
    log_gold_input(lake, args.eval_cohort, "evaluation", held_out)
    if args.holdout > 0:
        train, held_out = split_held_out(train, held_out, args.holdout)
    mlflow.set_tags(
        {
            "gold_hash.train": train_hash,
            "gold_hash.eval": eval_hash,
            "git_commit": _git_commit(),
            # the cycle's policy reads how old the champion's evaluation is
            "train_cohort": ",".join(args.train_cohort),
            "eval_cohort": args.eval_cohort,
            "holdout": str(args.holdout),
        }
    )
    return train, held_out, {"train": train_hash, "eval": eval_hash}


def _judge(
    settings: Settings, cohort: str, fitted: Fitted, held_out: pd.DataFrame
) -> tuple[dict[str, float], dict[str, float], pd.DataFrame]:
    """The candidate on the evaluation users, logged: its scores (with the oracle's and the gaps
    to them, on synthetic data), how far its reasons agree with the oracle's, and its metrics
    per segment."""
    scores = evaluate(fitted.model, held_out, fitted.threshold)
    oracle = oracle_scores(settings, cohort, held_out)
    if oracle:
        scores["auc_gap_to_oracle"] = oracle["oracle_roc_auc"] - scores["roc_auc"]
        scores["log_loss_gap_to_oracle"] = scores["log_loss"] / oracle["oracle_log_loss"] - 1
    segments = segments_of(fitted.model, held_out, settings.offer_cost, settings.offer_acceptance)
    mlflow.log_table(segments, "evaluation/segments.json")
    mlflow.log_metrics(cohort_figures(segments))
    agreement = explanation_agreement(settings, cohort, held_out, fitted)
    mlflow.log_metrics(
        {
            **scores,
            **oracle,
            **agreement,
            "threshold": fitted.threshold,
            "best_iteration": fitted.best_iteration,
            **{f"out_of_fold_{k}": v for k, v in fitted.validation.items()},
        }
    )
    mlflow.set_tag("threshold_reason", fitted.threshold_reason)
    return {**scores, **oracle}, agreement, segments


def _log_evaluation(
    settings: Settings, fitted: Fitted, train: pd.DataFrame, held_out: pd.DataFrame
) -> dict[str, float]:
    """Plots, the campaign's value (logged; returned) and a training sample kept as the drift
    reference, under ``evaluation/``."""
    with tempfile.TemporaryDirectory() as folder:
        _plots(fitted, held_out, Path(folder))
        campaign = _campaign(fitted, held_out, Path(folder), settings)
        mlflow.log_metrics(campaign)
        train[list(FEATURES)].sample(min(REFERENCE_ROWS, len(train)), random_state=0).to_parquet(
            Path(folder) / "reference.parquet"
        )
        mlflow.log_artifacts(folder, "evaluation")
    return campaign


if __name__ == "__main__":
    main()
