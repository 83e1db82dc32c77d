"""The library's wings keep their import rules (``churn_transform/__init__.py``): a wing imports
the root and the wings before it, the import graph has no cycle, and the service loads neither
the ETL nor monitoring, which its Bento therefore leaves out."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "churn_transform"
#: Each wing and the wings it may import (besides the root, which every wing may).
MAY_IMPORT = {
    "root": set(),
    "synthetic": set(),
    "fidelity": {"synthetic"},
    "etl": {"serving.online_store"},  # feature_store writes the map the service reads
    "modelling": set(),
    "serving": {"modelling"},
    "monitoring": {"etl", "modelling", "serving"},
}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Each library module and the library modules it imports, at any depth of its code."""
    graph = {}
    for path in LIBRARY.rglob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(LIBRARY.name):
                found.add(str(node.module))
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith(LIBRARY.name)}
        graph[_module(path)] = found
    return graph


def _wing(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in MAY_IMPORT else "root"


def test_each_wing_imports_only_the_root_and_the_wings_it_may() -> None:
    broken = []
    for module, imported in _imports().items():
        wing = _wing(module)
        for target in imported:
            other = _wing(target)
            allowed = MAY_IMPORT[wing]
            inner = target.removeprefix(f"{LIBRARY.name}.")
            if other in ("root", wing) or other in allowed or inner in allowed:
                continue
            broken.append(f"{module} imports {target}")
    assert broken == []


def test_the_import_graph_has_no_cycle() -> None:
    graph = {m: {t for t in ts if t != m} for m, ts in _imports().items()}
    # a package's __init__ importing its own modules is how a package exports them
    graph = {m: {t for t in ts if not t.startswith(f"{m}.")} for m, ts in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_service_loads_no_etl_and_no_monitoring_and_its_bento_packs_neither() -> None:
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys, service; print(json.dumps(sorted(sys.modules)))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    modules = json.loads(loaded.strip().splitlines()[-1])
    assert "churn_transform.serving.runtime" in modules  # the service was imported
    wings = {_wing(m) for m in modules if m.startswith(f"{LIBRARY.name}.")}
    assert wings <= {"root", "modelling", "serving"}
    excluded = yaml.safe_load((ROOT / "bentofile.yaml").read_text())["exclude"]
    for wing in ("etl", "monitoring", "synthetic"):
        assert f"churn_transform/{wing}/" in excluded


def test_the_root_keeps_only_what_every_wing_shares() -> None:
    at_root = sorted(p.stem for p in LIBRARY.glob("*.py") if p.stem != "__init__")
    assert at_root == ["dates", "labels", "lake", "schema", "settings"]
