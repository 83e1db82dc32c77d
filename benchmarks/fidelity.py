"""Prints how closely a KKBox raw folder (the generator's or the real files) matches the real data.

    python benchmarks/fidelity.py --raw data/raw [--json report.json] [--fail-on-gap]

One line per statistic: its value, the real data's figure (from benchmarks/kkbox_reference.yaml,
with its source), the tolerance, the distance and a verdict. With --fail-on-gap the exit status
is 1 when a statistic is off (or has a reference but could not be measured).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from churn_transform.fidelity import compare, load_references, measure, table

REFERENCES = Path(__file__).with_name("kkbox_reference.yaml")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--raw", type=Path, required=True, help="folder holding the KKBox CSVs")
    parser.add_argument("--references", type=Path, default=REFERENCES)
    parser.add_argument("--json", type=Path, help="also write the findings to this JSON file")
    parser.add_argument("--fail-on-gap", action="store_true", help="exit 1 when a statistic is off")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.raw.is_dir():
        parser.error(f"--raw {args.raw} is not a folder")
    references, sources = load_references(args.references)
    findings = compare(measure(args.raw), references)
    print(table(findings, sources))
    if args.json:
        args.json.write_text(json.dumps([asdict(f) for f in findings], indent=2, default=str))
    gaps = [f for f in findings if f.verdict in ("off", "missing")]
    print(f"\n{len(gaps)} of {len(findings)} statistics off their tolerance")
    return 1 if args.fail_on_gap and gaps else 0


if __name__ == "__main__":
    sys.exit(main())
