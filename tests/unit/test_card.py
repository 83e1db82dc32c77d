"""The model card: every section, filled from what training measured."""

from __future__ import annotations

import pandas as pd

from churn_transform.modelling.card import DESCRIPTION_LIMIT, CardFacts, description, model_card


def _row(
    segment: str, value: str, users: int, churners: int, mean: float, auc: float
) -> dict[str, object]:
    """A row of ``segment_metrics`` with intervals 0.02 either side."""
    rate = churners / users
    figures = {"roc_auc": auc, "calibration_gap": mean - rate, "recall": 0.6}
    return {
        "segment": segment,
        "value": value,
        "users": users,
        "churners": churners,
        "churner_share": churners / 300,
        "churn_rate": rate,
        "mean_probability": mean,
        **{name: v for name, v in figures.items()},
        **{f"{name}_low": v - 0.02 for name, v in figures.items()},
        **{f"{name}_high": v + 0.02 for name, v in figures.items()},
    }


def _facts(**change: object) -> CardFacts:
    facts = {
        "name": "kkbox-churn",
        "version": "3",
        "train_cohort": "2017-02",
        "eval_cohort": "2017-03",
        "data_versions": {"train": "a" * 64, "eval": "b" * 64},
        "scores": {
            "roc_auc": 0.85,
            "log_loss": 0.2,
            "pr_auc": 0.4,
            "brier": 0.05,
            "precision": 0.5,
            "recall": 0.4,
            "oracle_roc_auc": 0.88,
            "oracle_log_loss": 0.18,
            "explanation_rank_correlation": 0.66,
        },
        "segments": pd.DataFrame(
            [
                _row("cohort", "all", 3000, 300, 0.08, 0.85),
                _row("auto_renew", "off", 900, 270, 0.25, 0.7),
                _row("city", "22", 40, 4, 0.1, 0.9),  # 1% of the churners: not listed
            ]
        ),
        "threshold": 0.31,
        "threshold_reason": "maximises F1 on the calibration slice",
        "campaign": {
            "campaign_size": 120,
            "campaign_value_model": 5000.0,
            "campaign_value_random": 100.0,
        },
    }
    return CardFacts(**{**facts, **change})  # type: ignore[arg-type]


def test_the_card_has_every_section_with_the_measured_figures() -> None:
    card = model_card(_facts())
    for section in (
        "Intended use",
        "Data",
        "Metrics on 2017-03",
        "Segments holding at least 10% of the churners",
        "Decision rule",
        "Reasons against the oracle",
        "Known limits",
    ):
        assert f"## {section}" in card
    assert "| roc_auc | 0.8500 | 0.8800 |" in card
    assert "`aaaaaaaaaaaa`" in card and "0.310" in card and "5,000 against 100" in card
    assert (
        "| auto_renew | off | 900 | 270 (90%) | 30.00% | 25.00% | -5.0 pp (-7.0 to -3.0) | "
        "0.7000 (0.6800 to 0.7200) | 60.0% (58.0 to 62.0) |" in card
    )
    assert "| city | 22 |" not in card  # too few of the churners to list
    assert "| cohort |" not in card  # the cohort's row is the calibration in the large:
    assert "mean probability 8.00% against 10.00% churned, a gap of -2.0 pp (-4.0 to " in card


def test_without_an_oracle_its_column_is_empty_and_no_agreement_is_claimed() -> None:
    scores = {k: v for k, v in _facts().scores.items() if not k.startswith(("oracle", "expl"))}
    card = model_card(_facts(scores=scores))
    assert "| roc_auc | 0.8500 |  |" in card and "Reasons against" not in card


def test_a_card_too_long_for_the_registry_keeps_its_first_sections_and_its_limits() -> None:
    sections = [f"## Section {i}\n" + "x" * 900 for i in range(8)]
    card = "# kkbox-churn version 3\n\n" + "\n\n".join([*sections, "## Known limits\n- a limit"])
    cut = description(card)
    assert len(card) > DESCRIPTION_LIMIT >= len(cut)
    assert cut.startswith(card[: card.index("## Section 4")].rstrip())
    assert "## Section 5" not in cut and "`model_card.md` in the training run" in cut
    assert cut.endswith("## Known limits\n- a limit")  # the limits are never cut
    assert description(card[:3000]) == card[:3000]  # a card that fits is whole
