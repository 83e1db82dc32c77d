"""The ratio guard's rule and its references file (``benchmarks/guard.py``); the guard catching
a real slowdown is ``tests/integration/test_guard.py``."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from churn_transform.settings import PROJECT_ROOT


def _guard() -> ModuleType:
    spec = importlib.util.spec_from_file_location("guard", PROJECT_ROOT / "benchmarks/guard.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["guard"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


guard = _guard()


@pytest.mark.parametrize(
    ("value", "reference", "passed"),
    [
        (1.2, 1.0, True),  # above its reference
        (0.75, 1.0, True),  # exactly 25% below: the floor itself
        (0.7499, 1.0, False),
        (0.31, 0.40, True),
        (0.29, 0.40, False),
    ],
)
def test_a_ratio_fails_only_when_more_than_a_quarter_below_its_reference(
    value: float, reference: float, passed: bool
) -> None:
    (verdict,) = guard.judge({"etl_convert": value}, {"etl_convert": reference})
    assert verdict.floor == pytest.approx(reference * 0.75)
    assert verdict.passed is passed


def test_a_ratio_without_a_reference_fails_and_says_how_to_record_one() -> None:
    (verdict,) = guard.judge({"service": 1.1}, {"generator": 0.2})
    assert not verdict.passed and verdict.floor is None
    assert "--record" in guard._why(verdict)


def test_the_reason_names_the_ratio_its_value_and_its_floor() -> None:
    (verdict,) = guard.judge({"etl_convert": 0.2}, {"etl_convert": 0.4})
    assert guard._why(verdict) == (
        "etl_convert 0.200 is more than 25% below its reference 0.400 (floor 0.300)"
    )


def test_recording_some_ratios_keeps_the_others_and_stamps_each(tmp_path: Path) -> None:
    path = tmp_path / "references.json"
    old = guard.Measured(0.5, "DuckDB 1 s / ours 2 s", {"duckdb": [1.0], "ours": [2.0]})
    guard.record({"etl_convert": old, "generator": guard.Measured(0.2, "g")}, path)
    guard.record({"generator": guard.Measured(0.3, "g", {"generator": [3.0]})}, path)
    ratios = json.loads(path.read_text())["ratios"]
    assert ratios["etl_convert"]["reference"] == 0.5
    assert ratios["etl_convert"]["figures"] == {"duckdb": [1.0], "ours": [2.0]}
    assert ratios["generator"]["reference"] == 0.3
    for entry in ratios.values():
        assert {"recorded", "commit", "cores", "load_average", "detail"} <= set(entry)
    assert {n: e["reference"] for n, e in guard.load_references(path).items()} == {
        "etl_convert": 0.5,
        "generator": 0.3,
    }


def test_a_reference_is_the_median_run_s_with_every_run_s_value() -> None:
    runs = [{"service": guard.Measured(v, f"run {v}", {"rounds": [v]})} for v in (1.3, 0.9, 1.0)]
    typical = guard.typical(runs)["service"]
    assert (typical.value, typical.detail) == (1.0, "run 1.0")
    assert typical.figures == {"rounds": [1.0], "runs": [1.3, 0.9, 1.0]}


def test_no_references_file_means_no_references(tmp_path: Path) -> None:
    assert guard.load_references(tmp_path / "absent.json") == {}


def test_the_recorded_references_cover_every_ratio_the_guard_measures() -> None:
    recorded = guard.load_references()
    assert set(recorded) == {
        "etl_convert",
        "etl_aggregate",
        "etl_memory",
        "service",
        "generator",
    }
    assert all(entry["reference"] > 0 for entry in recorded.values())
