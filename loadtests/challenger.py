"""``python loadtests/run.py challenger``: the service's latency without and with a challenger.

The same load (``--rps``, ``--users``, ``--duration``) is sent to ``bentoml serve`` twice per
round (``--rounds``), once with no ``challenger`` alias and once with one, the order turning
each round; both serve the same champion and poll the registry as often
(``KKBOX_CHAMPION_POLL_SECONDS=1``). The challenger is ``--challenger-version``
(default: the champion's own version, a challenger exactly as costly to score). The alias is set
on a copy of the SQLite registry, never on the registry itself, so nothing that follows the real
registry starts shadowing. Each row adds what the challenger did during the run (entries scored,
failed, skipped: ``kkbox_challenger_scores_total``), read from ``/metrics``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import requests
from prometheus_client.parser import text_string_to_metric_families

from churn_transform.settings import Settings

Runner = Callable[..., dict[str, Any]]
Starter = Callable[..., Any]


@contextmanager
def registry_copy(settings: Settings) -> Iterator[str]:
    """The tracking URI of a copy of the settings' SQLite registry, removed afterwards."""
    uri = settings.tracking_uri
    if not uri.startswith("sqlite:///"):
        raise SystemExit(f"challenger: needs a SQLite registry to copy, not {uri}")
    folder = Path(tempfile.mkdtemp(prefix="challenger-registry-"))
    try:
        shutil.copy(uri.removeprefix("sqlite:///"), folder / "mlflow.db")
        yield f"sqlite:///{folder / 'mlflow.db'}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _challenger_counts(host: str) -> dict[str, float]:
    """The service's ``kkbox_challenger_*`` counters, summed over labels, by name and outcome."""
    text = requests.get(f"{host}/metrics", headers=Settings().service_headers(), timeout=5).text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("kkbox_challenger") and sample.name.endswith("_total"):
                key = f"{sample.name}:{sample.labels.get('outcome', '')}"
                counts[key] = counts.get(key, 0.0) + sample.value
    return counts


def _loaded(host: str, workers: int, timeout: float = 120.0) -> None:
    """Wait until every worker has loaded the challenger."""
    deadline = time.monotonic() + timeout
    key = "kkbox_challenger_switches_total:switched"
    while _challenger_counts(host).get(key, 0.0) < workers:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{host} did not load the challenger in {timeout:g} s")
        time.sleep(0.5)


def compare(args: argparse.Namespace, run: Runner, start: Starter) -> list[dict[str, Any]]:
    """The paced load without and with a challenger, ``--rounds`` times; the rows."""
    settings = Settings()
    rows: list[dict[str, Any]] = []
    with registry_copy(settings) as registry:
        client = mlflow.MlflowClient(registry)
        name = settings.model_name
        champion = client.get_model_version_by_alias(name, settings.champion_alias)
        version = args.challenger_version or str(champion.version)
        environment = {"MLFLOW_TRACKING_URI": registry, "KKBOX_CHAMPION_POLL_SECONDS": "1"}
        for round_ in range(args.rounds):
            # the order turns each round: neither kind always runs second, on a warmer machine
            for shadowed in (False, True) if round_ % 2 == 0 else (True, False):
                if shadowed:
                    client.set_registered_model_alias(name, settings.challenger_alias, version)
                else:
                    _remove_alias(client, name, settings.challenger_alias)
                with start(**environment) as host:
                    if shadowed:
                        _loaded(host, settings.workers)
                    before = _challenger_counts(host)
                    figures = run(host, args.users, args.rps)
                    time.sleep(1)  # the records of the last answers reach the challenger
                    after = _challenger_counts(host)
                label = f"with v{version}" if shadowed else "no challenger"
                rows.append({"label": label, **figures, **_delta(before, after)})
    return rows


def _remove_alias(client: Any, name: str, alias: str) -> None:
    if alias in client.get_registered_model(name).aliases:
        client.delete_registered_model_alias(name, alias)


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    outcomes = ("scored", "failed", "skipped")
    key = "kkbox_challenger_scores_total:{}"
    return {
        f"challenger_{o}": after.get(key.format(o), 0.0) - before.get(key.format(o), 0.0)
        for o in outcomes
    }


def summary(rows: list[dict[str, Any]]) -> str:
    """Each kind's mean p50 and p95 over the rounds, and their differences."""
    mean: dict[str, dict[str, float]] = {}
    for shadowed in (False, True):
        chosen = [r for r in rows if r["label"].startswith("with") == shadowed]
        mean[str(shadowed)] = {
            figure: sum(r[figure] for r in chosen) / len(chosen) for figure in ("p50_ms", "p95_ms")
        }
    alone, shadow = mean["False"], mean["True"]
    scored = sum(r["challenger_scored"] for r in rows)
    return (
        f"mean p50 {alone['p50_ms']:.1f} ms without, {shadow['p50_ms']:.1f} ms with a challenger "
        f"({shadow['p50_ms'] - alone['p50_ms']:+.1f} ms); mean p95 {alone['p95_ms']:.1f} ms "
        f"without, {shadow['p95_ms']:.1f} ms with ({shadow['p95_ms'] - alone['p95_ms']:+.1f} ms);"
        f" the challenger scored {scored:.0f} records"
    )
