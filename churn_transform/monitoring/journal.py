"""The progress of one month's cycle, kept in the lake as it goes (``cycles/journal/<M>.json``),
so that a cycle killed part way is finished by its rerun: a stage that completed is not done
again, and what the first run found before it acted (the champion it judged, its realized
quality, the decision) stays the month's facts.

Stages, in order: ``before`` (the measurements and the decision), ``challenger`` (the live
judgement of the challenger, if any: ``monitoring.challenger``), ``trained`` (the retraining's
outcome), ``imported`` (the new champion in BentoML's store), ``rescored`` (the cohorts awaiting
labels scored by it), ``done`` (the month's record written). Each is written once, whole: a
journal is replaced by one rename (local) or one PUT (S3), never left half written.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from typing import Any

from churn_transform.lake import Lake

STAGES = ("before", "challenger", "trained", "imported", "rescored", "done")


@dataclass(frozen=True)
class Journal:
    """One month's journal in ``lake``."""

    lake: Lake
    month: str

    @property
    def path(self) -> str:
        return self.lake.path_of(self.lake.url("cycles", "journal", f"{self.month}.json"))

    def stages(self) -> dict[str, dict[str, Any]]:
        """Every stage completed so far, with its facts."""
        fs = self.lake.fs
        return json.loads(fs.cat_file(self.path)) if fs.exists(self.path) else {}

    def get(self, stage: str) -> dict[str, Any] | None:
        """The facts of ``stage``, or None if it has not completed."""
        return self.stages().get(_known(stage))

    def write(self, stage: str, facts: dict[str, Any]) -> dict[str, Any]:
        """Record that ``stage`` completed with ``facts``; the facts."""
        stages = {**self.stages(), _known(stage): facts}
        self.lake.fs.makedirs(posixpath.dirname(self.path), exist_ok=True)
        self.lake.replace(self.path, json.dumps(stages, indent=1).encode())
        return facts


def _known(stage: str) -> str:
    if stage not in STAGES:
        raise ValueError(f"unknown cycle stage {stage!r}: one of {', '.join(STAGES)}")
    return stage
