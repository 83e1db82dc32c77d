"""Calibration where it matters on real-format files (issue #33, points 4 and 5): the champion
trained by ``steps.train`` from raw files in KKBox's layout (the ``champion`` fixture: generated
CSVs, ingested, gold) logs the calibration in the large and the segment figures with their
intervals, lists every segment holding a tenth of the churners in its card, and records the
gate's notes."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest

from churn_transform.modelling.bootstrap import Interval
from churn_transform.modelling.promotion import recorded
from churn_transform.modelling.segments import COHORT, FIGURES, MATERIAL_SHARE, interval
from tests.conftest import Champion

pytestmark = pytest.mark.integration


def test_the_champion_reports_its_calibration_with_intervals(
    champion: Champion, tmp_path: object
) -> None:
    uri = champion.env["MLFLOW_TRACKING_URI"]
    client = mlflow.MlflowClient(uri)
    version = client.get_model_version("kkbox-churn", "1")
    run = client.get_run(str(version.run_id))
    metrics = run.data.metrics
    # the calibration in the large, from the same users as the overall metrics
    gap = Interval(
        metrics["calibration_gap"], metrics["calibration_gap_low"], metrics["calibration_gap_high"]
    )
    assert gap.estimate == pytest.approx(metrics["mean_probability"] - metrics["churn_rate"])
    assert gap.low < gap.estimate < gap.high and gap.high - gap.low < 0.1
    assert metrics["roc_auc_low"] < metrics["roc_auc"] < metrics["roc_auc_high"]
    assert 0 <= metrics["campaign_recall_low"] <= metrics["campaign_recall_high"] <= 1

    path = client.download_artifacts(run.info.run_id, "evaluation/segments.json", str(tmp_path))
    segments = pd.read_json(path, orient="split")
    for figure in FIGURES:  # every interval holds its estimate where the group gives one
        known = segments[segments[figure].notna()]
        assert (known[f"{figure}_low"] <= known[figure] + 1e-12).all()
        assert (known[figure] <= known[f"{figure}_high"] + 1e-12).all()
    material = segments[(segments["churner_share"] >= MATERIAL_SHARE)]
    material = material[material["segment"] != COHORT]
    assert len(material) >= 8  # each segment's largest value at least
    card = version.description
    for row in material.itertuples():
        line = next(
            x for x in card.splitlines() if x.startswith(f"| {row.segment} | {row.value} |")
        )
        assert interval(row, "calibration_gap").text(percent=True, signed=True) in line
        assert interval(row, "recall").text(percent=True) in line
    assert "Calibration in the large: mean probability " in card

    outcome = recorded(uri, run.info.run_id)
    assert outcome is not None and outcome.promoted
    # the shift knob turned auto-renew-off, which holds most churners: below the floor there, and
    # under-predicted (docs/calibration.md)
    named = [note for note in outcome.notes if note.startswith("auto_renew=off")]
    assert any("at or below the floor" in n for n in named)
    assert any("is under-predicted" in n for n in named)
    written = client.download_artifacts(run.info.run_id, "promotion.json", str(tmp_path))
    with open(written) as record:
        assert list(json.load(record)["notes"]) == list(outcome.notes)
