"""Issue 32: no private API of another library where a public one exists. Where none exists, one
module owns the workaround, and the library as installed is checked here to still behave as the
workaround assumes, so the upgrade that breaks one fails here by name:

- the logger on which BentoML reports a failed request (``service.BENTOML_REQUEST_ERRORS``), which
  the service quiets for requests it refuses on purpose;
- Feast imported without typeguard's instrumentation (``churn_transform.etl._feast``).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

from churn_transform.settings import PROJECT_ROOT

OURS = {"churn_transform", "steps", "service", "dashboard", "loadtests", "benchmarks", "tests"}
SOURCES = sorted(
    path
    for folder in ("steps", "churn_transform", "dashboard", "loadtests", "benchmarks")
    for path in (PROJECT_ROOT / folder).rglob("*.py")
) + [PROJECT_ROOT / "service.py"]
#: A private name of a library written as text: ``bentoml._internal...``, ``mlflow.x._y``.
PRIVATE_NAME = re.compile(r"^(bentoml|_bentoml_\w+|mlflow|feast)(\.\w+)*\._\w")


def _imported(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def _private(module: str) -> bool:
    top, *_ = parts = module.split(".")
    if top in OURS or top in sys.stdlib_module_names or top == "__future__":
        return False
    return any(part.startswith("_") for part in parts)


def test_no_module_imports_a_private_module_of_another_library() -> None:
    found = [
        f"{path.relative_to(PROJECT_ROOT)}: {module}"
        for path in SOURCES
        for module in _imported(ast.parse(path.read_text(), str(path)))
        if _private(module)
    ]
    assert found == []


def test_the_only_private_name_written_out_is_bentoml_s_request_error_logger() -> None:
    found = [
        (path.relative_to(PROJECT_ROOT).as_posix(), node.value)
        for path in SOURCES
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and PRIVATE_NAME.match(node.value)
    ]
    assert found == [("service.py", "bentoml._internal.server.http_app")]


def _run(code: str, tmp_path: Path) -> str:
    """What ``code`` prints, run in a new interpreter (given ``tmp_path``)."""
    script = tmp_path / "check.py"  # typeguard reads the source of what it instruments
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},  # service.py is not installed
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


# In a process of its own: BentoML registers its request metrics with Prometheus once an app
# handles a request, and test_service.py's app may already have in this one.
BENTOML_LOGGER = """
import logging, sys
import service
from starlette.testclient import TestClient
from churn_transform.serving.guards import QuietRefusals
from churn_transform.serving.runtime import Champion
from churn_transform.settings import Settings

tracebacks = []
class Tracebacks(logging.Handler):
    def emit(self, record):
        if record.exc_info:
            tracebacks.append(record.name)
logging.getLogger().addHandler(Tracebacks())

folder = sys.argv[1]
service.SETTINGS = Settings(
    traffic_log_uri=folder + "/traffic", champion_poll_seconds=0, feature_repo=folder + "/fs"
)
labels = {"registry_version": "1", "run_id": "run", "data_version": "gold"}
service.load_champion = lambda reference: Champion(None, "m:1", labels, {})
with TestClient(service.ChurnService.to_asgi()) as client:
    quiet = logging.getLogger(service.BENTOML_REQUEST_ERRORS)
    assert [type(f) for f in quiet.filters] == [QuietRefusals], quiet.filters
    assert client.post("/predict", json={"records": [{}]}).status_code == 400
    assert tracebacks == [], tracebacks  # quieted
    quiet.filters.clear()
    assert client.post("/predict", json={"records": [{}]}).status_code == 400
print(*tracebacks)
"""


def test_bentoml_reports_a_failed_request_on_the_logger_the_service_quiets(tmp_path: Path) -> None:
    """Without the service's filter, BentoML's traceback of a refused request is on the logger
    named in ``service.py``; on any other, every refusal would log its input again."""
    import service

    assert _run(BENTOML_LOGGER, tmp_path) == service.BENTOML_REQUEST_ERRORS


FEAST = """
import sys
from churn_transform.etl import _feast, feature_store
takers = {
    name: module.typechecked
    for name, module in list(sys.modules.items())
    if name.startswith("feast.") and hasattr(module, "typechecked")
}
assert all(taken is _feast._unchecked for taken in takers.values()), takers
print(len(takers))
"""


def test_feast_still_takes_typeguard_s_decorator_while_the_patch_is_on(tmp_path: Path) -> None:
    """Every Feast module that takes ``typechecked`` took the patch's, so none was imported
    before it; and some still do: once none does, ``_feast`` has nothing left to do."""
    assert int(_run(FEAST, tmp_path)) > 0


def test_feast_is_imported_only_through_the_patch() -> None:
    """Imported anywhere else first, Feast's classes would be instrumented after all."""
    importers = [
        path.relative_to(PROJECT_ROOT).as_posix()
        for path in SOURCES
        for name in _imported(ast.parse(path.read_text(), str(path)))
        if name == "feast" or name.startswith("feast.")
    ]
    assert set(importers) <= {"churn_transform/etl/_feast.py"}
