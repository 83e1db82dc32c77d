"""Feast imported without typeguard's instrumentation (``churn_transform.etl._feast``): Feast's
classes are left as written, and typeguard is as it was for everything imported afterwards."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHECK = """
import typeguard
checked = typeguard.typechecked
from churn_transform.etl import feature_store
import feast.feature_view
assert typeguard.typechecked is checked, "typeguard.typechecked was not restored"
# typeguard's instrumentation recompiles a method: its code object is no longer Feast's own
init = feast.feature_view.FeatureView.__init__
assert init.__code__.co_filename == feast.feature_view.__file__, init.__code__.co_filename
assert "typeguard" not in init.__code__.co_names, "FeatureView.__init__ was instrumented"
@typeguard.typechecked
def half(x: int) -> int:
    return x // 2
try:
    half("1")
except typeguard.TypeCheckError:
    print("still checked")
"""


def test_feast_s_classes_are_not_instrumented_and_typeguard_is_restored(tmp_path: Path) -> None:
    script = tmp_path / "check.py"  # typeguard reads the source of what it instruments
    script.write_text(CHECK)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "still checked"
