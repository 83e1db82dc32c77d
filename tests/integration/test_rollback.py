"""A rollback through a running ``bentoml serve`` (issue #34, point 4): a version is promoted as
the gate does it, the service switches to it, the ``rollback`` step runs (in the test's
process), and the service answers with the previous champion again, without a failed request;
the traffic log's timeline shows both switches."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from churn_transform.modelling.rollback import mark_promoted
from churn_transform.monitoring.timeline import served_by_day, switches
from churn_transform.serving.traffic import read_served
from steps import rollback
from tests.conftest import Champion, records_of, serve, stop
from tests.integration.test_follow_champion import Traffic

pytestmark = pytest.mark.integration
NAME = "kkbox-churn"


def test_the_service_answers_with_the_previous_champion_after_a_rollback(
    champion: Champion,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry, traffic, env = champion.own_registry(tmp_path)  # other tests keep version 1
    mlflow.set_tracking_uri(registry)  # the registry store resolves sources through it
    client = mlflow.MlflowClient(registry)
    first = client.get_model_version_by_alias(NAME, "champion")
    assert "promoted_at" in first.tags  # the train step's gate stamped it
    process, url = serve(env, log=tmp_path / "serve.log")
    sender = Traffic(url, records_of(champion.gold("2017-04"), slice(0, 50)))
    try:
        sender.start()
        sender.wait_for("1")
        second = str(client.create_model_version(NAME, first.source, run_id=first.run_id).version)
        client.set_registered_model_alias(NAME, "champion", second)
        mark_promoted(client, NAME, second)
        sender.wait_for(second)
        # in this process (a new interpreter would take as long as the rest of the test)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", registry)
        rollback.main(
            ["--version", "none", "--user", "ann", "--reason", "complaints from the field"]
        )
        said = capsys.readouterr().out
        sender.wait_for("1")
    finally:
        sender.done.set()
        sender.join(timeout=30)
        stop(process)  # SIGTERM: the traffic log is flushed

    assert f"{NAME}@champion is version 1 again (was {second}), rolled back by ann" in said
    assert {status for status, _ in sender.answers} == {200}, sender.answers[-5:]
    versions = [version for _, version in sender.answers]
    back = versions.index(second) + versions[versions.index(second) :].index("1")
    assert set(versions[back:]) == {"1"}
    tags = client.get_model_version(NAME, second).tags
    assert (tags["rolled_back_by"], tags["rolled_back_to"]) == ("ann", "1")
    assert client.get_model_version(NAME, "1").tags["restored_reason"] == (
        "complaints from the field"
    )
    logged = read_served(traffic, "2000-01-01", "2999-12-31")
    assert len(logged) == len(sender.answers)
    moved = switches(logged, settle=0.5)
    assert list(zip(moved["from_version"], moved["to_version"], strict=True)) == [
        ("1", second),
        (second, "1"),
    ]
    assert served_by_day(logged)["predictions"].sum() == len(sender.answers)
