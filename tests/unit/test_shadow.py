"""The challenger's shadow (``serving.shadow``): scored off the answer path, and the service's
answers the champion's alone whatever the challenger does (raises, or takes its time)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import service
from churn_transform.modelling.training import TrainConfig, fit
from churn_transform.schema import FEATURES
from churn_transform.serving.runtime import Champion, RequestRecord
from churn_transform.serving.shadow import Shadow
from churn_transform.serving.traffic import read_traffic
from tests.unit.test_service import RECORDS, _gold, _settings


def _champion(seed: int, version: str, model: Any = None) -> Champion:
    config = TrainConfig(n_estimators=20, min_child_samples=10, early_stopping_rounds=10)
    fitted = fit(_gold(300, seed=seed), config)
    return Champion(
        model=model or fitted.model,
        tag=f"kkbox-churn:v{version}",
        labels={"registry_version": version, "run_id": f"run-{version}", "data_version": "g"},
        about={"metrics": {"threshold": fitted.threshold}},
    )


@pytest.fixture(scope="module")
def champion() -> Champion:
    return _champion(1, "7")


@pytest.fixture(scope="module")
def challenger() -> Champion:
    return _champion(2, "8")


class Raising:
    def predict_proba(self, features: Any) -> Any:
        raise RuntimeError("the challenger is broken")


class Sleeping:
    """A model that holds the scorer until released."""

    def __init__(self, model: Any) -> None:
        self.model, self.released = model, threading.Event()

    def predict_proba(self, features: Any) -> Any:
        self.released.wait(30)
        return self.model.predict_proba(features)


def _entries(n: int, start: int = 0) -> list[dict[str, Any]]:
    features = {name: value for name, value in RECORDS[0].items() if name != "msno"}
    return [{"msno": f"m{i}", "features": dict(features)} for i in range(start, start + n)]


def _logged_by(shadow: Shadow, logged: list[dict[str, Any]], n: int, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while len(logged) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(logged) == n, f"{len(logged)} of {n} entries logged"


def test_without_a_challenger_entries_go_straight_to_the_log() -> None:
    logged: list[dict[str, Any]] = []
    shadow = Shadow(logged.extend, interval=60)
    shadow.append(_entries(3))
    assert [entry["msno"] for entry in logged] == ["m0", "m1", "m2"]  # no wait for the thread
    assert "challenger_probability" not in logged[0]
    shadow.close()


def test_a_challenger_adds_its_version_and_probability_to_every_entry(
    challenger: Champion,
) -> None:
    logged: list[dict[str, Any]] = []
    counted: list[tuple[str, int]] = []
    shadow = Shadow(logged.extend, interval=0.01, count=lambda o, n: counted.append((o, n)))
    shadow.challenger = challenger
    shadow.append(_entries(4))
    _logged_by(shadow, logged, 4)
    shadow.close()
    features = pd.DataFrame([RECORDS[0]] * 4)[list(FEATURES)]
    expected = challenger.model.predict_proba(features)[:, 1]
    np.testing.assert_allclose([e["challenger_probability"] for e in logged], expected)
    assert {e["challenger_version"] for e in logged} == {"8"}
    assert sum(n for outcome, n in counted if outcome == "scored") == 4


def test_a_failing_challenger_leaves_its_entries_logged_without_it(champion: Champion) -> None:
    logged: list[dict[str, Any]] = []
    counted: list[tuple[str, int]] = []
    shadow = Shadow(logged.extend, interval=0.01, count=lambda o, n: counted.append((o, n)))
    shadow.challenger = _champion(3, "9", model=Raising())
    shadow.append(_entries(2))
    _logged_by(shadow, logged, 2)
    shadow.close()
    assert not any("challenger_probability" in entry for entry in logged)
    assert counted == [("failed", 2)]


def test_a_slow_challenger_delays_no_append_and_what_overflows_is_logged_unscored(
    challenger: Champion,
) -> None:
    logged: list[dict[str, Any]] = []
    counted: list[tuple[str, int]] = []
    slow = Sleeping(challenger.model)
    shadow = Shadow(
        logged.extend, max_queue=5, interval=0.01, count=lambda o, n: counted.append((o, n))
    )
    shadow.challenger = _champion(4, "9", model=slow)
    shadow.append(_entries(3))
    time.sleep(0.2)  # the scorer took those three and sleeps on them
    began = time.perf_counter()
    shadow.append(_entries(8, start=3))
    assert time.perf_counter() - began < 0.05
    assert [entry["msno"] for entry in logged] == ["m8", "m9", "m10"]  # over the queue's 5
    assert counted == [("skipped", 3)]
    slow.released.set()
    _logged_by(shadow, logged, 11)
    shadow.close()
    assert sum(n for outcome, n in counted if outcome == "scored") == 8


def test_close_gives_up_on_a_stuck_challenger_and_logs_what_waits_unscored(
    challenger: Champion,
) -> None:
    logged: list[dict[str, Any]] = []
    stuck = Sleeping(challenger.model)
    shadow = Shadow(logged.extend, interval=0.01)
    shadow.challenger = _champion(5, "9", model=stuck)
    shadow.append(_entries(1))
    time.sleep(0.2)
    shadow.append(_entries(2, start=1))
    shadow.close(timeout=0.2)
    assert [entry["msno"] for entry in logged] == ["m1", "m2"]
    stuck.released.set()


# -- the service, called as a class ----------------------------------------------------------


def _served(champion: Champion, challenger: Champion, tmp_path: Path) -> list[Any]:
    served = service.ChurnService.inner(champion, _settings(tmp_path), challenger=challenger)
    try:
        return served.predict([RequestRecord.model_validate(r) for r in RECORDS])
    finally:
        served.flush_traffic_log()


def test_the_answer_is_the_champion_s_and_the_log_holds_both_models(
    champion: Champion, challenger: Champion, tmp_path: Path
) -> None:
    alone = _served(champion, None, tmp_path / "alone")  # type: ignore[arg-type]
    answers = _served(champion, challenger, tmp_path / "shadowed")
    assert answers == alone
    logged, seen = read_traffic(tmp_path / "shadowed" / "traffic", "2000-01-01", "2999-12-31")
    assert seen == 3 and logged["model_version"].eq("7").all()
    assert logged["churn_probability"].tolist() == [a.churn_probability for a in answers]
    expected = challenger.model.predict_proba(pd.DataFrame(RECORDS)[list(FEATURES)])[:, 1]
    np.testing.assert_allclose(logged["challenger_probability"], expected)
    assert logged["challenger_version"].eq("8").all()
    assert not np.allclose(logged["challenger_probability"], logged["churn_probability"])


@pytest.mark.parametrize("kind", ["raises", "sleeps"])
def test_a_failing_or_slow_challenger_neither_fails_nor_delays_an_answer(
    champion: Champion, challenger: Champion, kind: str, tmp_path: Path
) -> None:
    slow = Sleeping(challenger.model)
    model = Raising() if kind == "raises" else slow
    settings = _settings(tmp_path)
    served = service.ChurnService.inner(champion, settings, challenger=_champion(6, "9", model))
    records = [RequestRecord.model_validate(r) for r in RECORDS]
    try:
        served.predict(records)  # warmed: the first call pays for imports
        began = time.perf_counter()
        answers = [served.predict(records) for _ in range(20)]
        took = time.perf_counter() - began
    finally:
        slow.released.set()
        served.flush_traffic_log()
    assert took < 2.0  # a sleeping challenger would hold each answer 30 s
    alone = champion.model.predict_proba(pd.DataFrame(RECORDS)[list(FEATURES)])[:, 1]
    for answer in answers:
        np.testing.assert_allclose([a.churn_probability for a in answer], alone, rtol=1e-12)
    logged, seen = read_traffic(tmp_path / "traffic", "2000-01-01", "2999-12-31")
    assert seen == 63  # every answer logged, the challenger's failure or not
