"""The Model tab's timeline (issue #34, point 4): which version served each day, from a traffic
log, and the champion's promotions and rollbacks from a real registry's tags."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow
import pytest

from churn_transform.modelling.rollback import mark_promoted, rollback
from churn_transform.settings import Settings
from tests.conftest import Champion, free_port
from tests.integration.test_dashboard import _app

pytestmark = pytest.mark.integration
NAME = "kkbox-churn"


def _log(folder: Path, day: datetime, answers: list[tuple[float, str]]) -> None:
    """A traffic file of ``day`` holding one line per (hours after midnight, version)."""
    (folder / f"{day:%Y-%m-%d}").mkdir(parents=True)
    lines = [
        json.dumps({"ts": (day + timedelta(hours=h)).timestamp(), "model_version": v}) + "\n"
        for h, v in answers
    ]
    (folder / f"{day:%Y-%m-%d}" / "traffic-a-1-0.jsonl").write_text("".join(lines))


def test_the_model_tab_shows_the_versions_served_each_day_beside_the_rollback(
    champion: Champion, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = Path(champion.env["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///"))
    shutil.copy(source, tmp_path / "mlflow.db")  # a registry of this test's own
    registry = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(registry)
    client = mlflow.MlflowClient(registry)
    first = client.get_model_version_by_alias(NAME, "champion")
    second = str(client.create_model_version(NAME, first.source, run_id=first.run_id).version)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)
    client.set_registered_model_alias(NAME, "champion", second)
    mark_promoted(client, NAME, second)
    settings = Settings(tracking_uri=registry)
    rollback(settings, None, "ann", "complaints from the field")
    traffic = tmp_path / "traffic"
    _log(traffic, yesterday, [(10, "1"), (11, "1"), (11.5, "1"), (13, second), (14, second)])
    _log(traffic, today, [(0.1, second), (0.6, "1"), (0.7, "1")])
    env = {
        "MLFLOW_TRACKING_URI": registry,
        "KKBOX_LAKE_URI": champion.env["KKBOX_LAKE_URI"],
        "KKBOX_TRAFFIC_LOG_URI": str(traffic),
        "KKBOX_SERVICE_URL": f"http://127.0.0.1:{free_port()}",  # none: the registry's champion
    }

    app = _app(monkeypatch, env, "Model")

    assert not app.exception
    assert "Versions served" in [s.value for s in app.subheader]
    by_day, moved, events = (frame.value for frame in app.dataframe[-3:])
    assert list(zip(by_day["model_version"], by_day["predictions"], strict=True)) == [
        ("1", 3),
        (second, 2),
        (second, 1),
        ("1", 2),
    ]
    assert list(zip(moved["from_version"], moved["to_version"], strict=True)) == [
        ("1", second),
        (second, "1"),
    ]
    newest = events.iloc[0]
    assert (newest["kind"], newest["version"], newest["from version"]) == (
        "rolled back",
        "1",
        second,
    )
    assert (newest["by"], newest["reason"]) == ("ann", "complaints from the field")
    assert list(events["kind"]) == ["rolled back", "promoted", "promoted"]
