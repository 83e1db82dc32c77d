"""Each measured statistic beside the real data's figure, its tolerance, the distance, a verdict.

Tolerance kinds (the ``tolerance`` of a reference):

- ``share``: within 2 percentage points or 20% of the reference, whichever is larger.
- ``rare``: a share of a rare quirk, within a factor of 3 of the reference; judged only when the
  reference predicts at least 10 rows in the measured file (verdict ``n/a`` below that).
- ``absent``: the real data never has it; the value must be exactly 0.
- ``relative``: a number within ``within`` (a fraction, 0.2 by default) of the reference.
- ``rank``: a rank among values by frequency, within ``within`` places (1 by default).
- ``at_most``: a rank no larger than the reference.
- ``info``: printed beside the value, no verdict (row counts: a generated folder is smaller).

A statistic with no reference is printed without a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from churn_transform.fidelity.statistic import Statistic

KINDS = ("share", "rare", "absent", "relative", "rank", "at_most", "info")
_RARE_MIN_ROWS = 10


@dataclass(frozen=True)
class Reference:
    """The real data's figure of one statistic, how close is close enough, and who says so."""

    file: str
    statistic: str
    value: float
    tolerance: str
    source: str
    within: float | None = None

    def __post_init__(self) -> None:
        if self.tolerance not in KINDS:
            raise ValueError(
                f"{self.file} {self.statistic}: tolerance {self.tolerance!r} is not one of {KINDS}"
            )


@dataclass(frozen=True)
class Finding:
    """One row of the report; ``verdict`` is ok, off, n/a or empty (nothing to judge against)."""

    statistic: Statistic
    reference: Reference | None
    allowed: str
    distance: float
    verdict: str


def load_references(path: Path) -> tuple[list[Reference], dict[str, str]]:
    """The references and the sources they cite (key -> citation) of a reference YAML file."""
    document = yaml.safe_load(path.read_text())
    sources = {str(k): str(v) for k, v in document["sources"].items()}
    references = [Reference(**entry) for entry in document["references"]]
    for reference in references:
        if reference.source not in sources:
            raise ValueError(
                f"{reference.file} {reference.statistic}: source {reference.source!r} is not "
                f"listed under sources in {path}"
            )
    return references, sources


def judge(statistic: Statistic, reference: Reference) -> Finding:
    """The verdict on one statistic against its reference."""
    value, real, kind = statistic.value, reference.value, reference.tolerance
    distance, ok = _distance(kind, value, real, reference.within)
    verdict = "ok" if ok else "off"
    if kind == "info":
        verdict = ""
    elif math.isnan(value):
        verdict = "off"
    elif kind == "rare" and real * statistic.count < _RARE_MIN_ROWS:
        verdict = "n/a"
    return Finding(statistic, reference, _allowed(reference), distance, verdict)


def _distance(kind: str, value: float, real: float, within: float | None) -> tuple[float, bool]:
    """How far the value is from the reference (in the kind's own unit), and if that is close."""
    gap = abs(value - real)
    if kind == "share":
        return gap, gap <= max(0.02, 0.2 * abs(real))
    if kind == "relative":
        relative = gap / abs(real) if real else math.inf
        return relative, relative <= (within or 0.2)
    if kind == "rare":
        ratio = value / real if real else math.inf
        return ratio, 1 / 3 <= ratio <= 3
    if kind == "rank":
        return gap, gap <= (within or 1)
    if kind == "at_most":
        return max(value - real, 0.0), value <= real
    return gap, kind == "info" or value == 0  # absent


def _allowed(reference: Reference) -> str:
    real, within = reference.value, reference.within
    return {
        "share": f"±{100 * max(0.02, 0.2 * abs(real)):.1f}pp",
        "rare": "x1/3..x3",
        "absent": "= 0",
        "relative": f"±{100 * (within or 0.2):.0f}%",
        "rank": f"±{within or 1:g}",
        "at_most": f"<= {real:g}",
        "info": "-",
    }[reference.tolerance]


def compare(statistics: Iterable[Statistic], references: Iterable[Reference]) -> list[Finding]:
    """A finding per statistic, in their order; a reference nothing measured is reported off."""
    by_key = {(r.file, r.statistic): r for r in references}
    findings = []
    for statistic in statistics:
        reference = by_key.pop((statistic.file, statistic.name), None)
        if reference is None:
            findings.append(Finding(statistic, None, "", math.nan, ""))
        else:
            findings.append(judge(statistic, reference))
    for (file, name), reference in by_key.items():
        missing = Statistic(file, name, math.nan, 0)
        findings.append(Finding(missing, reference, _allowed(reference), math.nan, "missing"))
    return findings


def _figure(value: float, share: bool) -> str:
    if math.isnan(value):
        return "-"
    if share:
        return f"{100 * value:.2f}%" if abs(value) >= 0.001 or value == 0 else f"{100 * value:.2g}%"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.3g}"


def _distance_text(finding: Finding) -> str:
    if finding.reference is None or math.isnan(finding.distance):
        return ""
    kind = finding.reference.tolerance
    if kind == "share":
        return f"{100 * finding.distance:.1f}pp"
    if kind == "relative":
        return f"{100 * finding.distance:.0f}%"
    if kind == "rare":
        return f"x{finding.distance:.2g}"
    return "" if kind == "info" else f"{finding.distance:g}"


def _row(finding: Finding) -> tuple[str, ...]:
    stat, ref = finding.statistic, finding.reference
    real = "-"
    if ref is not None:
        ranked = ref.tolerance in ("rank", "at_most")
        real = f"{ref.value:g}" if ranked else _figure(ref.value, stat.share)
    value = _figure(stat.value, stat.share)
    distance = _distance_text(finding)
    source = ref.source if ref else ""
    return (
        stat.file,
        stat.name,
        value,
        real,
        finding.allowed or "-",
        distance,
        finding.verdict or "-",
        source,
    )


_HEADER = ("file", "statistic", "value", "reference", "tolerance", "distance", "verdict", "source")


def table(findings: Iterable[Finding], sources: dict[str, str]) -> str:
    """The report as text: one line per finding, then the sources its lines cite."""
    rows = [_HEADER, *(_row(f) for f in findings)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    cited = dict.fromkeys(row[-1] for row in rows[1:] if row[-1])
    lines += [
        "",
        "verdict '-': no reference figure to judge against (printed for information only).",
        "verdict 'n/a': too few rows for the expected count of a rare quirk to be judged.",
        "",
        "Sources:",
        *(f"  [{key}] {sources.get(key, '?')}" for key in cited),
    ]
    return "\n".join(lines)
