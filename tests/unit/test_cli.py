"""What every step shares at its edge: boolean run parameters, parsed in one place."""

from __future__ import annotations

import argparse
import importlib

import pytest

from steps._cli import boolean

DRIFT = ["--end", "today", "--days", "7", "--max-rows", "10", "--min-rows", "1",
         "--drift-share", "0.5"]  # fmt: skip
MAIN = ["--users", "10", "--seed", "1", "--shift", "0", "--log-start", "2016-11-01",
        "--chunk-users", "10", "--env-manager", "local", "--buckets", "0", "--blocksize", "32MB",
        "--train-cohort", "2017-02", "--eval-cohort", "2017-03"]  # fmt: skip


@pytest.mark.parametrize(
    ("value", "parsed"),
    [("true", True), ("True", True), ("TRUE", True), ("1", True), ("yes", True), (" true", True),
     ("false", False), ("False", False), ("0", False), ("no", False)],
)  # fmt: skip
def test_boolean_reads_the_usual_spellings(value: str, parsed: bool) -> None:
    assert boolean(value) is parsed


@pytest.mark.parametrize("value", ["", "flase", "ja", "2", "none"])
def test_boolean_refuses_anything_else(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=f"expected true or false, got {value!r}"):
        boolean(value)


@pytest.mark.parametrize(
    ("module", "flag", "others"),
    [("steps.main", "--generate", MAIN), ("steps.drift", "--fail-on-drift", DRIFT)],
)
def test_a_step_parses_its_flag_with_it_and_names_the_flag_when_bad(
    module: str, flag: str, others: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = importlib.import_module(module)._arguments
    assert getattr(arguments([*others, flag, "False"]), flag[2:].replace("-", "_")) is False
    assert getattr(arguments([*others, flag, "true"]), flag[2:].replace("-", "_")) is True
    with pytest.raises(SystemExit):
        arguments([*others, flag, "flase"])
    assert f"argument {flag}: expected true or false, got 'flase'" in capsys.readouterr().err
