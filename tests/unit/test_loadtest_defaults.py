"""The load-test harness and the Locust users send the same load by default."""

from __future__ import annotations

import json
import subprocess
import sys

from churn_transform.settings import PROJECT_ROOT
from loadtests import defaults
from loadtests.run import _arguments

# Importing locust monkey-patches the interpreter (gevent): the locustfile's options are read
# in a process of their own, the way `locust -f` reads them.
_LOCUST_OPTIONS = """
import json
from locust.argument_parser import get_parser
import loadtests.locustfile
options = get_parser().parse_args(["-f", "loadtests/locustfile.py", "--payloads", "unused.json"])
print(json.dumps({"rps": options.rps, "batch_share": options.batch_share}))
"""


def test_the_harness_defaults_are_the_shared_ones() -> None:
    harness = _arguments(["run"])
    assert (harness.rps, harness.batch_share) == (defaults.RPS, defaults.BATCH_SHARE)


def test_the_locustfile_defaults_are_the_shared_ones() -> None:
    printed = subprocess.run(
        [sys.executable, "-c", _LOCUST_OPTIONS],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(printed) == {"rps": defaults.RPS, "batch_share": defaults.BATCH_SHARE}
