"""The registry's promotion rule."""

import pytest

from churn_transform.training import beats

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
