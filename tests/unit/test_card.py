"""The model card: every section, filled from what training measured."""

from __future__ import annotations

import pandas as pd

from churn_transform.modelling.card import CardFacts, model_card


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
                {
                    "segment": "auto_renew",
                    "value": "off",
                    "users": 900,
                    "churn_rate": 0.3,
                    "roc_auc": 0.7,
                },
                {"segment": "city", "value": "22", "users": 40, "churn_rate": 0.1, "roc_auc": 0.9},
            ]
        ),
        "threshold": 0.31,
        "threshold_reason": "maximises F1 on the calibration slice",
        "campaign": {
            "campaign_size": 120,
            "campaign_value_model": 5000.0,
            "campaign_value_random": 100.0,
        },
        "min_segment_users": 500,
    }
    return CardFacts(**{**facts, **change})  # type: ignore[arg-type]


def test_the_card_has_every_section_with_the_measured_figures() -> None:
    card = model_card(_facts())
    for section in (
        "Intended use",
        "Data",
        "Metrics on 2017-03",
        "Metrics per segment",
        "Decision rule",
        "Reasons against the oracle",
        "Known limits",
    ):
        assert f"## {section}" in card
    assert "| roc_auc | 0.8500 | 0.8800 |" in card
    assert "`aaaaaaaaaaaa`" in card and "0.310" in card and "5,000 against 100" in card
    assert "| auto_renew | off | 900 | 30.00% | 0.7000 |" in card
    assert "| city | 22 |" not in card  # too few users to judge


def test_without_an_oracle_its_column_is_empty_and_no_agreement_is_claimed() -> None:
    scores = {k: v for k, v in _facts().scores.items() if not k.startswith(("oracle", "expl"))}
    card = model_card(_facts(scores=scores))
    assert "| roc_auc | 0.8500 |  |" in card and "Reasons against" not in card
