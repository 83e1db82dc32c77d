"""A cycle killed part way is finished by its rerun, each stage once (issue #30, finding 7: a
cycle killed after train moved the alias and before import was rerun as if the new version had
always been champion: never imported, never re-scored, its record's facts rewritten).

The cycle's own orchestration (``steps.cycle``) over a real journal in a real lake; the steps
are stand-ins that record their calls and move the registry's alias as ``train`` does."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

import steps.cycle as cycle
from churn_transform.lake import Lake
from churn_transform.modelling.promotion import Outcome, PromotionOutcome
from churn_transform.monitoring.journal import Journal

BEFORE = {
    "month": "2017-05",
    "scored": "2017-06",
    "labelled": "2017-04",
    "champion_before": "1",
    "realized_roc_auc": 0.71,
    "oracle_roc_auc": 0.8,
    "drift_share": None,
    "decision": "retrain: realized ROC AUC 0.7100 on 2017-04 ...",
    "retrained": True,
}
ARGS = argparse.Namespace(
    month="2017-05",
    train_months=2,
    holdout=0.3,
    min_segment_users=100,
    margin=0.005,
    min_auc=0.6,
    min_oracle_share=0.9,
    max_segment_auc_drop=0.05,
    shadow=True,
    min_live_users=300,
)


class Killed(BaseException):
    """The cycle's process killed at a point."""


class Platform:
    """The registry's champion alias and the steps, as the cycle sees them."""

    def __init__(self, kill_at: str | None = None) -> None:
        self.champion, self.versions = "1", ["1"]
        self.calls: list[str] = []
        self.kill_at = kill_at

    def _point(self, name: str) -> None:
        if self.kill_at == name:
            self.kill_at = None  # the rerun runs on
            raise Killed(name)

    def step(self, entry_point: str, **parameters: Any) -> str:
        self.calls.append(f"{entry_point} {parameters.get('cohort', '')}".strip())
        if entry_point == "train":
            self.versions.append(str(len(self.versions) + 1))
            self._point("after register")
            self.champion = self.versions[-1]  # the gate promotes it
            self._point("after the alias moved")
        elif entry_point == "import":
            self._point("after import")
        elif entry_point == "score":
            self._point("after score")
        return f"run-of-{entry_point}-{len(self.calls)}"

    def outcome(self, settings: object, run_id: str) -> PromotionOutcome:
        return PromotionOutcome(Outcome.PROMOTED, self.versions[-1], "champion", "1")


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    lake = Lake(str(tmp_path / "lake"))
    (tmp_path / "lake" / "gold" / "features_2017-05").mkdir(parents=True)  # M was built
    (tmp_path / "lake" / "gold" / "features_2017-05" / "CURRENT").write_text("v1")
    return lake


def _cycle(platform: Platform, lake: Lake, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(cycle, "_champion", lambda settings: (platform.champion, {}, {}))
    monkeypatch.setattr(cycle, "_outcome", platform.outcome)
    journal = Journal(lake, "2017-05")
    before = journal.get("before") or journal.write("before", dict(BEFORE))
    return cycle._act(platform.step, None, ARGS, journal, before)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "point", ["after register", "after the alias moved", "after import", "after score"]
)
def test_a_cycle_killed_at_any_point_is_finished_by_its_rerun(
    point: str, lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = Platform(kill_at=point)
    with pytest.raises(Killed):
        _cycle(platform, lake, monkeypatch)
    outcome = _cycle(platform, lake, monkeypatch)
    assert outcome["action"] == "promoted" and outcome["candidate"] == platform.champion
    # the promoted champion is imported and scores both cohorts awaiting labels: once, or once
    # more where the kill fell between the step and its journal line (both steps are idempotent:
    # "already in the store", "already scored")
    assert platform.calls.count("import") == (2 if point == "after import" else 1)
    finished = platform.calls[platform.calls.index("import") :]
    assert finished.count("score 2017-05") == (2 if point == "after score" else 1)
    assert finished.count("score 2017-06") == 1
    # training is run again only where the kill came before the alias moved
    assert platform.calls.count("train") == (2 if point == "after register" else 1)
    stages = Journal(lake, "2017-05").stages()
    assert set(stages) >= {"before", "trained", "imported", "rescored"}
    assert stages["before"] == BEFORE  # the month's facts are the first run's


def test_a_finished_month_run_again_does_nothing_again(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = Platform()
    first = _cycle(platform, lake, monkeypatch)
    calls = list(platform.calls)
    assert _cycle(platform, lake, monkeypatch) == first
    assert platform.calls == calls


def test_a_refused_candidate_is_not_imported_and_its_outcome_stays(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = Platform()
    refused = PromotionOutcome(Outcome.BELOW_FLOOR, "2", "champion", "1", ("...",))
    platform.outcome = lambda settings, run_id: refused  # type: ignore[method-assign]
    platform.step = _refusing(platform.step, platform)  # type: ignore[method-assign]
    assert _cycle(platform, lake, monkeypatch) == {"action": "refused", "candidate": "2"}
    assert _cycle(platform, lake, monkeypatch) == {"action": "refused", "candidate": "2"}
    assert platform.calls.count("train") == 1 and "import" not in platform.calls


def _refusing(step: Any, platform: Platform) -> Any:
    def refused(entry_point: str, **parameters: Any) -> str:
        champion = platform.champion
        run = step(entry_point, **parameters)
        platform.champion = champion  # the gate refused: the alias stays
        return run

    return refused


def test_a_month_recorded_before_journals_is_not_retrained_again(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = {**BEFORE, "champion_after": "2", "action": "promoted", "candidate": "2"}
    path = Path(lake.path_of(lake.url("cycles", "2017-05.json")))
    path.parent.mkdir(parents=True)
    path.write_text(__import__("json").dumps(record))
    journal = cycle._journal(lake, "2017-05")
    assert journal.get("before") == BEFORE
    assert journal.get("trained") == {"action": "promoted", "candidate": "2"}
    platform = Platform()
    platform.champion = "2"
    assert _cycle(platform, lake, monkeypatch)["candidate"] == "2"
    assert platform.calls == []


def test_a_journal_is_replaced_whole_and_names_only_known_stages(lake: Lake) -> None:
    journal = Journal(lake, "2017-05")
    journal.write("before", {"a": 1})
    journal.write("trained", {"b": 2})
    assert journal.stages() == {"before": {"a": 1}, "trained": {"b": 2}}
    assert not list(Path(journal.path).parent.glob("*.new"))
    with pytest.raises(ValueError, match="unknown cycle stage 'bought'"):
        journal.write("bought", {})


def _challenged(
    platform: Platform, lake: Lake, monkeypatch: pytest.MonkeyPatch, verdict: str | None
) -> dict[str, Any]:
    """The cycle's acts after a live judgement of ``verdict`` (None: no challenger named)."""
    judged: list[str] = []

    def live(settings: object, args: object, before: dict[str, Any]) -> dict[str, Any]:
        judged.append(verdict or "none")
        if verdict == "promoted":
            platform.champion = "2"  # what settling a promotion does to the registry
        return {"verdict": verdict, "challenger_version": "2"}

    monkeypatch.setattr(cycle, "_live", live)
    monkeypatch.setattr(cycle, "_champion", lambda settings: (platform.champion, {}, {}))
    monkeypatch.setattr(cycle, "_outcome", platform.outcome)
    journal = Journal(lake, "2017-05")
    before = journal.get("before") or journal.write("before", dict(BEFORE))
    acted = cycle._challenged(platform.step, None, ARGS, journal, before)  # type: ignore[arg-type]
    assert len(judged) <= 1
    return acted


def test_a_challenger_promoted_on_live_traffic_is_served_instead_of_a_retraining(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = Platform()
    acted = _challenged(platform, lake, monkeypatch, "promoted")
    assert (acted["action"], acted["candidate"]) == ("promoted", "2")
    assert acted["challenger"]["verdict"] == "promoted"
    assert "train" not in platform.calls and platform.calls.count("import") == 1
    assert {"score 2017-05", "score 2017-06"} <= set(platform.calls)
    again = _challenged(platform, lake, monkeypatch, "promoted")  # journaled: not judged again
    assert again == acted and platform.calls.count("import") == 1


@pytest.mark.parametrize("verdict", ["retired", "waiting", None])
def test_a_challenger_not_promoted_leaves_the_policy_s_retraining_to_run(
    verdict: str | None, lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = Platform()
    acted = _challenged(platform, lake, monkeypatch, verdict)
    assert acted["challenger"]["verdict"] == verdict
    assert platform.calls.count("train") == 1  # BEFORE's decision: retrain


def test_the_summary_says_the_campaign_verdict_when_quality_made_one() -> None:
    record = {**BEFORE, "champion_after": "1", "candidate": None, "challenger": {}}
    assert "campaign verdict" not in cycle._said(record)  # a record from before verdicts
    said = "Campaign retention-2017-04: the control group is too small to tell (9 ...)."
    lines = cycle._said({**record, "campaign_verdict": said}).splitlines()
    assert f"  campaign verdict: {said}" in lines
