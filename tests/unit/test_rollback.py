"""The rollback (issue #34, point 4): which version is the previous champion, from tags the
promotion gate and earlier rollbacks wrote; the rollback on a real registry, recorded on both
versions; a second one walking further back, then refused; and the step's refusals."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow
import pandas as pd
import pytest

import steps.rollback as step
from churn_transform.modelling.promotion import Floor, Gate, Judged, promote
from churn_transform.modelling.rollback import (
    ChampionEvent,
    Reign,
    RollbackRefused,
    chosen,
    events,
    mark_promoted,
    previous,
    reign_of,
    rollback,
    stamp,
)
from churn_transform.settings import Settings
from tests.conftest import tracking_store

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@dataclass
class Version:
    """A registry version as the rules read it."""

    version: str
    tags: dict[str, str] = field(default_factory=dict)


def test_a_version_reigns_from_its_latest_promotion_or_restoration() -> None:
    tags = {"promoted_at": stamp(at(1)), "restored_at": stamp(at(5))}
    assert reign_of(Version("2", tags)) == Reign("2", at(5), withdrawn=False)
    assert reign_of(Version("3")) == Reign("3", None, withdrawn=False)


@pytest.mark.parametrize(("left", "withdrawn"), [(3, True), (0.5, False)])
def test_a_version_is_withdrawn_only_by_a_rollback_after_its_reign_began(
    left: float, withdrawn: bool
) -> None:
    tags = {"promoted_at": stamp(at(1)), "rolled_back_at": stamp(at(left))}
    assert reign_of(Version("2", tags)).withdrawn is withdrawn


def test_the_previous_champion_is_the_latest_reign_but_the_current_and_withdrawn_ones() -> None:
    reigns = [
        Reign("1", at(1), False),
        Reign("2", at(2), True),
        Reign("3", at(3), False),
        Reign("4", at(4), False),
        Reign("5", None, False),
    ]
    assert previous(reigns, current="4") == "3"
    assert previous(reigns, current="3") == "4"  # the current alias was moved by hand


def test_with_no_earlier_champion_left_the_rollback_is_refused_naming_the_withdrawn() -> None:
    reigns = [Reign("1", at(1), False), Reign("2", at(2), True), Reign("3", at(3), True)]
    with pytest.raises(RollbackRefused, match=r"versions 2, 3 were rolled back from.*VERSION=N"):
        previous(reigns, current="1")
    with pytest.raises(RollbackRefused, match=r"from version 1 \(version 2 was rolled back from"):
        previous(reigns[:2], current="1")
    with pytest.raises(
        RollbackRefused, match="no earlier champion to roll back to from version 1:"
    ):
        previous([Reign("1", at(1), False)], current="1")


def test_a_named_version_must_have_been_champion_and_not_be_the_champion() -> None:
    reigns = [Reign("1", at(1), False), Reign("2", at(2), True), Reign("3", None, False)]
    assert chosen(reigns, "1", "2") == "2"  # withdrawn, but named: allowed
    assert chosen(reigns, "2", None) == "1"  # not named: the previous champion
    with pytest.raises(RollbackRefused, match="version 3 was never champion"):
        chosen(reigns, "1", "3")
    with pytest.raises(RollbackRefused, match="version 1 is the champion already"):
        chosen(reigns, "1", "1")
    with pytest.raises(RollbackRefused, match="there is no version 9"):
        chosen(reigns, "1", "9")


def test_a_rollback_is_one_event_though_both_versions_tell_it() -> None:
    versions = [
        Version("1", {"promoted_at": stamp(at(1))}),
        Version(
            "2",
            {
                "promoted_at": stamp(at(2)),
                **dict(
                    zip(
                        (
                            "rolled_back_at",
                            "rolled_back_by",
                            "rolled_back_reason",
                            "rolled_back_to",
                        ),
                        (stamp(at(3)), "ann", "AUC fell", "1"),
                        strict=True,
                    )
                ),
            },
        ),
    ]
    versions[0].tags.update(
        restored_at=stamp(at(3)), restored_by="ann", restored_reason="AUC fell", restored_from="2"
    )
    assert events(versions) == [
        ChampionEvent(at(1), "promoted", "1"),
        ChampionEvent(at(2), "promoted", "2"),
        ChampionEvent(at(3), "rolled back", "1", "2", "ann", "AUC fell"),
    ]


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A registry of the test's own holding versions 1 to 4 of the model, none champion yet."""
    uri = tracking_store(tmp_path / "mlflow.db")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    settings = Settings(tracking_uri=uri)
    client = mlflow.MlflowClient(uri)
    client.create_registered_model(settings.model_name)
    for _ in range(4):
        client.create_model_version(settings.model_name, str(tmp_path / "model"))
    yield settings
    mlflow.set_tracking_uri(None)


def _promote(settings: Settings, version: str, hours: float) -> None:
    """What the gate does to a version it promotes."""
    client = mlflow.MlflowClient(settings.tracking_uri)
    client.set_registered_model_alias(settings.model_name, settings.champion_alias, version)
    mark_promoted(client, settings.model_name, version, at(hours))


def _state(settings: Settings) -> tuple[str, dict[str, dict[str, str]]]:
    client = mlflow.MlflowClient(settings.tracking_uri)
    name = settings.model_name
    champion = client.get_model_version_by_alias(name, settings.champion_alias)
    tags = {str(v.version): dict(v.tags) for v in client.search_model_versions(f"name = '{name}'")}
    return str(champion.version), tags


def test_the_gate_stamps_the_version_it_promotes(registry: Settings) -> None:
    gate = Gate(Floor(0.6, 0.9), margin=0.005, min_segment_users=500, max_segment_auc_drop=0.05)
    candidate = Judged("1", {"roc_auc": 0.8, "log_loss": 0.3}, pd.DataFrame())
    before = datetime.now(UTC)
    assert promote(registry, candidate, pd.DataFrame(), gate, load=lambda uri: None).promoted  # type: ignore[arg-type,return-value]
    champion, tags = _state(registry)
    assert champion == "1" and before <= datetime.fromisoformat(tags["1"]["promoted_at"])


def test_rolling_back_twice_walks_back_twice_then_is_refused(registry: Settings) -> None:
    for version, hours in (("1", 1), ("2", 2), ("3", 3)):
        _promote(registry, version, hours)

    first = rollback(registry, None, "ann", " AUC fell on April ", at(4))
    assert (first.left, first.restored, first.reason) == ("3", "2", "AUC fell on April")
    champion, tags = _state(registry)
    assert champion == "2"
    assert {k: v for k, v in tags["3"].items() if k.startswith("rolled_back")} == {
        "rolled_back_at": stamp(at(4)),
        "rolled_back_by": "ann",
        "rolled_back_reason": "AUC fell on April",
        "rolled_back_to": "2",
    }
    assert (tags["2"]["restored_at"], tags["2"]["restored_by"]) == (stamp(at(4)), "ann")
    assert (tags["2"]["restored_reason"], tags["2"]["restored_from"]) == ("AUC fell on April", "3")

    second = rollback(registry, None, "bob", "still bad", at(5))
    assert (second.left, second.restored) == ("2", "1") and _state(registry)[0] == "1"
    with pytest.raises(RollbackRefused, match="versions 2, 3 were rolled back from"):
        rollback(registry, None, "bob", "worse", at(6))
    assert _state(registry)[0] == "1"

    named = rollback(registry, "3", "ann", "the fix is in", at(7))  # a withdrawn one, by name
    assert (named.left, named.restored) == ("1", "3") and _state(registry)[0] == "3"
    kinds = [
        (e.kind, e.version, e.left) for e in events(mlflow.MlflowClient().search_model_versions())
    ]
    assert kinds == [
        ("promoted", "1", ""),
        ("promoted", "2", ""),
        ("promoted", "3", ""),
        ("rolled back", "2", "3"),
        ("rolled back", "1", "2"),
        ("rolled back", "3", "1"),
    ]


@pytest.mark.parametrize(("by", "reason"), [("ann", "  "), ("", "AUC fell"), ("ann", "x" * 1001)])
def test_a_rollback_without_who_or_why_or_with_a_novel_is_refused_and_moves_nothing(
    registry: Settings, by: str, reason: str
) -> None:
    _promote(registry, "1", 1)
    _promote(registry, "2", 2)
    with pytest.raises(RollbackRefused, match="a rollback needs|more than 1000"):
        rollback(registry, None, by, reason)
    champion, tags = _state(registry)
    assert champion == "2" and "rolled_back_at" not in tags["2"]


def test_without_a_champion_the_rollback_is_refused(registry: Settings) -> None:
    with pytest.raises(RollbackRefused, match="no 'champion' version of 'kkbox-churn'"):
        rollback(registry, None, "ann", "why")


def test_the_step_refuses_a_missing_reason_naming_the_make_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stopped:
        step._arguments(["--version", "none", "--user", "none", "--reason", "none"])
    assert stopped.value.code == 2
    assert 'argument --reason: a rollback needs a reason: make rollback REASON="why"' in (
        capsys.readouterr().err
    )


def test_the_step_s_user_defaults_to_the_operating_system_s(registry: Settings) -> None:
    arguments = step._arguments(["--version", "none", "--user", "none", "--reason", "why"])
    assert (arguments.version, arguments.user) == (None, getpass.getuser())
    assert step._arguments(["--version", "2", "--user", "Ann O", "--reason", "x"]).version == "2"


def test_the_step_moves_the_alias_and_records_the_rollback_on_its_run(
    registry: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    _promote(registry, "1", 1)
    _promote(registry, "2", 2)
    step.main(["--version", "none", "--user", "ann", "--reason", "AUC fell"])
    assert "kkbox-churn@champion is version 1 again (was 2)" in capsys.readouterr().out
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.data.tags["rolled_back_to"] == "1" and run.data.tags["rolled_back_by"] == "ann"
    with pytest.raises(SystemExit, match="rollback: no earlier champion"):
        step.main(["--version", "none", "--user", "ann", "--reason", "again"])
