"""The model card of a registered version: what it is for, what it was trained and judged on,
how good it is beside the oracle, how well calibrated, per segment, how it decides, and what it
cannot do. Figures measured on the judged users come with bootstrap 95% intervals
(``bootstrap``); every segment holding a tenth of the churners is listed, whatever its size.

Pure text from what ``train`` measured; ``train`` attaches it to the version in MLflow (its
description, cut by ``description`` to what every registry backend stores, and ``model_card.md``
in the run, whole), and the service's ``/metadata`` returns the description.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from churn_transform.modelling.segments import ALL, COHORT, MATERIAL_SHARE, interval, material

INTENDED_USE = (
    "Ranks the KKBox subscribers whose plan expires in a month by their probability of not "
    "renewing within 30 days, so that the retention team can choose whom to make an offer "
    "(the campaign list of `score`) and see why (`/explain`). It is not for judging a single "
    "person's intent, pricing, or any decision about a subscriber without a human in the loop."
)
LIMITS = (
    "Trained on one month of one service's subscribers: behaviour that changes (new payment "
    "methods, a new price) moves it away from what it learned; the drift report watches for it.",
    "Probabilities are calibrated on the training month; a month with another churn rate shifts "
    "them, while the ranking holds better.",
    "Reasons are exact shares of the model's log-odds, not causes: correlated features share "
    "credit, and a derived feature's share is split equally among the features it comes from.",
    "A segment's figures are as sure as its interval is narrow: few users or churners give a "
    "wide one, which the gate does not refuse on.",
    "Users with no profile (city, age, gender unknown) are scored from behaviour alone.",
)
SHOWN = ("roc_auc", "log_loss", "pr_auc", "brier", "precision", "recall")


@dataclass(frozen=True)
class CardFacts:
    name: str
    version: str
    train_cohort: str
    eval_cohort: str
    data_versions: dict[str, str]
    scores: dict[str, float]  # the model's, and the oracle's as oracle_roc_auc, oracle_log_loss
    segments: pd.DataFrame  # segments.segment_metrics: the cohort's row, then each segment's
    threshold: float
    threshold_reason: str
    campaign: dict[str, float]
    holdout: float = 0.0  # the share of users kept out of training and judged


def _metrics(scores: dict[str, float]) -> list[str]:
    lines = ["| metric | model | oracle |", "|---|---|---|"]
    for name in SHOWN:
        oracle = scores.get(f"oracle_{name}")
        lines.append(
            f"| {name} | {scores[name]:.4f} | {'' if oracle is None else f'{oracle:.4f}'} |"
        )
    return lines


def _calibration(segments: pd.DataFrame) -> list[str]:
    cohort = segments[(segments["segment"] == COHORT) & (segments["value"] == ALL)]
    if cohort.empty:
        return []
    row = next(cohort.itertuples())
    return [
        f"Calibration in the large: mean probability {row.mean_probability:.2%} against "
        f"{row.churn_rate:.2%} churned, a gap of "
        f"{interval(row, 'calibration_gap').text(percent=True, signed=True)}; ROC AUC "
        f"{interval(row, 'roc_auc').text()}; recall at the campaign cut "
        f"{interval(row, 'recall').text(percent=True)} (95% bootstrap intervals).",
        "",
    ]


def _segments(segments: pd.DataFrame) -> list[str]:
    shown = material(segments[segments["segment"] != COHORT])
    shown = shown.sort_values(["segment", "churner_share"], ascending=[True, False])
    lines = [
        "| segment | value | users | churners | churn rate | mean probability | calibration gap "
        "| ROC AUC | recall at the cut |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in shown.itertuples():
        lines.append(
            f"| {row.segment} | {row.value} | {row.users:,} | {row.churners:,} "
            f"({row.churner_share:.0%}) | {row.churn_rate:.2%} | {row.mean_probability:.2%} | "
            f"{interval(row, 'calibration_gap').text(percent=True, signed=True)} | "
            f"{interval(row, 'roc_auc').text()} | {interval(row, 'recall').text(percent=True)} |"
        )
    return lines


def _judged(facts: CardFacts) -> str:
    if facts.holdout:
        return (
            f"the {facts.holdout:.0%} of cohort {facts.eval_cohort}'s users kept out of training "
            "(chosen by a hash of their msno)"
        )
    return f"the later cohort {facts.eval_cohort}"


def model_card(facts: CardFacts) -> str:
    """The card as Markdown."""
    versions = ", ".join(f"{k} `{v[:12]}`" for k, v in facts.data_versions.items())
    agreement = {k: v for k, v in facts.scores.items() if k.startswith("explanation_")}
    lines = [
        f"# {facts.name} version {facts.version}",
        "",
        "## Intended use",
        INTENDED_USE,
        "",
        "## Data",
        f"Trained on cohort {facts.train_cohort}, judged on {_judged(facts)}. "
        f"Gold content hashes: {versions}.",
        "",
        f"## Metrics on {facts.eval_cohort}, beside the oracle (synthetic data only)",
        *_metrics(facts.scores),
        "",
        *_calibration(facts.segments),
        f"## Segments holding at least {MATERIAL_SHARE:.0%} of the churners",
        "Each figure with its 95% bootstrap interval; the gap is the mean probability less the "
        "churn rate, in percentage points; recall is the share of the segment's churners the "
        "campaign below targets. Every segment: `evaluation/segments.json`.",
        "",
        *_segments(facts.segments),
        "",
        "## Decision rule",
        f"Churn when the probability reaches {facts.threshold:.3f}: the cut that "
        f"{facts.threshold_reason}. The campaign size is chosen separately, by expected value: "
        f"on {facts.eval_cohort} it would contact {facts.campaign.get('campaign_size', 0):,.0f} "
        f"users for {facts.campaign.get('campaign_value_model', 0):,.0f} against "
        f"{facts.campaign.get('campaign_value_random', 0):,.0f} at random.",
    ]
    if agreement:
        lines += [
            "",
            "## Reasons against the oracle's",
            *(f"- {k.removeprefix('explanation_')}: {v:.3f}" for k, v in agreement.items()),
        ]
    lines += ["", "## Known limits", *(f"- {limit}" for limit in LIMITS)]
    return "\n".join(lines) + "\n"


#: The longest version description every MLflow backend stores (PostgreSQL's column is
#: ``varchar(5000)``; SQLite does not check).
DESCRIPTION_LIMIT = 5000
_CUT = (
    "\n\n_Sections cut here to fit the registry: the whole card is `model_card.md` in the "
    "training run._\n"
)


def description(card: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """The card as a registry description: whole when it fits in ``limit`` characters; else its
    sections in order as far as they fit, a note saying where the whole card is, and always the
    last section (the known limits); cut by lines if even that does not fit."""
    if len(card) <= limit:
        return card
    head, *sections = card.split("\n## ")
    last = "\n## " + sections.pop() if sections else ""
    kept = head.rstrip()
    for section in sections:
        piece = "\n\n## " + section.rstrip()
        if len(kept) + len(piece) + len(_CUT) + len(last) > limit:
            break
        kept += piece
    cut = kept + _CUT + "\n" + last.lstrip("\n")
    if len(cut) <= limit:
        return cut
    room = card[: limit - len(_CUT)]
    return room[: max(room.rfind("\n"), 0)].rstrip() + _CUT
