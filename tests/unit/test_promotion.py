"""The registry's promotion rule."""

import pytest

from churn_transform.modelling.promotion import Floor, beats, refusal

CHAMPION = {"roc_auc": 0.90, "log_loss": 0.15}


@pytest.mark.parametrize(
    ("candidate", "champion", "promoted"),
    [
        ({"roc_auc": 0.70, "log_loss": 0.30}, None, True),  # the first model is promoted
        ({"roc_auc": 0.91, "log_loss": 0.14}, CHAMPION, True),  # better by the margin
        ({"roc_auc": 0.904, "log_loss": 0.14}, CHAMPION, False),  # better, but not by enough
        ({"roc_auc": 0.89, "log_loss": 0.14}, CHAMPION, False),  # worse
        ({"roc_auc": 0.93, "log_loss": 0.16}, CHAMPION, False),  # ranks better, calibrated worse
    ],
)
def test_promotion(candidate: dict, champion: dict | None, promoted: bool) -> None:
    assert beats(candidate, champion, margin=0.005) is promoted


FLOOR = Floor(min_roc_auc=0.6, min_oracle_share=0.9)


@pytest.mark.parametrize(
    ("scores", "reason"),
    [
        ({"roc_auc": 0.5}, "ROC AUC 0.5000 is not above the floor of 0.6"),  # a constant model
        ({"roc_auc": 0.6}, "not above the floor"),
        ({"roc_auc": 0.80, "oracle_roc_auc": 0.93}, "below 90% of the oracle's 0.9300"),
    ],
)
def test_a_model_below_the_floor_is_refused_with_its_reason(scores: dict, reason: str) -> None:
    assert reason in (refusal(scores, FLOOR) or "")


@pytest.mark.parametrize("scores", [{"roc_auc": 0.61}, {"roc_auc": 0.85, "oracle_roc_auc": 0.93}])
def test_a_model_above_the_floor_is_not_refused(scores: dict) -> None:
    assert refusal(scores, FLOOR) is None
