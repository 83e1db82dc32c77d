"""The regression guard (issue #31): ratios measured side by side in one run, never seconds.

    python benchmarks/guard.py                      # measure; exit 1 naming a ratio below its floor
    python benchmarks/guard.py --record             # measure and write benchmarks/references.json
    python benchmarks/guard.py --only etl,generator # some families only (etl, service, generator)

Each ratio divides a figure of ours by a yardstick's, both measured in this run on a small fixed
input, in turn (yardstick, ours, yardstick, ours...), so that a change of load on a shared
machine hits both sides; higher is better for every ratio:

- ``etl_convert``, ``etl_aggregate``: DuckDB's CPU seconds over ours to convert the CSVs to
  Parquet and to aggregate the listening logs (``etl.py``'s ``_duckdb`` and ``_ours``, each run
  in a child process of its own, on 20,000 users generated with seed 42), the best of each;
  ``etl_memory``: DuckDB's peak resident set over ours (each child's own high-water mark), the
  median.
- ``service``: requests answered per CPU second of the server (its process and its workers) of
  ``bentoml serve`` over that of ``loadtests/baseline.py``'s bare app, both serving one small
  model trained here on that input, under the same single-record requests from the same eight
  connections at a fixed pace (200 a second in all, a quarter of what either answers flat out),
  the median of the rounds' ratios. Flat out, the ratio moved with the machine: a saturated
  server coalesces work (BentoML's adaptive batching merges more requests, an event loop wakes
  for more at once), so how saturated each side was on the day decided the ratio (0.67 on a
  fresh machine, 0.89-1.10 here). At a fixed pace below saturation each request is served on
  its own on both sides, and the ratio held within 3% with both cores busy with other work.

CPU seconds rather than wall time: other jobs on the machine take a share of the wall time of
each side, unevenly (DuckDB's conversion runs on both cores when it can have them), but not
the work each does. The price: a change that only loses parallelism is not seen.
- ``generator``: rows per CPU second of ``generate`` (one process, 2,000 users) over those of a
  yardstick that draws a fixed frame with numpy and formats it as CSV with pyarrow, the best of
  each.

A ratio fails when it falls more than 25% below the reference recorded in ``references.json``
(its floor: the reference times 0.75). ``--record`` measures three times and writes each
ratio's median there, with the date, the commit, the load average and every figure behind it;
with ``--only`` it replaces only those families' references.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
REFERENCES = Path(__file__).with_name("references.json")
TOLERANCE = 0.25
FAMILIES = ("etl", "service", "generator")
USERS, SEED, COHORT = 20_000, 42, "2017-03"  # the ETL's input; COHORT is etl.py's
ETL_ROUNDS, SERVICE_ROUNDS, GENERATOR_ROUNDS = 3, 5, 3  # of each side, interleaved
RECORD_RUNS = 3  # whole measurements behind a reference, the median kept
GENERATOR_USERS, YARDSTICK_ROWS = 2_000, 600_000
SERVERS = ("service", "bare app")
# eight connections, each sending 25 requests a second: 200 a second, a quarter of what either
# server answers flat out on one core here
CLIENTS, PACE, WARM_UP_SECONDS, LOAD_SECONDS, PAYLOAD_ROWS = 8, 25.0, 1.0, 2.0, 500


class GuardError(RuntimeError):
    """A measurement that could not be made (a child process or a server failed)."""


@dataclass(frozen=True)
class Measured:
    """One ratio, what it divides (printed beside it) and every figure behind it (recorded)."""

    value: float
    detail: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    name: str
    value: float
    reference: float | None  # None: nothing recorded for this ratio yet

    @property
    def floor(self) -> float | None:
        return None if self.reference is None else self.reference * (1 - TOLERANCE)

    @property
    def passed(self) -> bool:
        return self.floor is not None and self.value >= self.floor


def judge(measured: dict[str, float], references: dict[str, float]) -> list[Verdict]:
    """A verdict for every ratio measured, against its reference (none fails)."""
    return [Verdict(name, value, references.get(name)) for name, value in measured.items()]


# -- the three families --------------------------------------------------------------------


def etl_ratios(raw: Path, work: Path) -> tuple[dict[str, Measured], Path]:
    """DuckDB against ours on ``raw``, interleaved; and the lake of our last run. Times are CPU
    seconds (every thread of the engine's process), the best of each engine's runs: DuckDB's
    wall time depends on whether other jobs leave it both cores, and moved the wall ratio from
    0.54 to 0.79 within minutes while the CPU ratio stayed within 0.65-0.72. Peaks, which vary
    both ways with the threads' timing, are the median."""
    runs: dict[str, list[dict[str, Any]]] = {"duckdb": [], "ours": []}
    for turn in range(ETL_ROUNDS):
        for engine, done in runs.items():
            done.append(_child("etl", engine, str(raw), str(_made(work / f"{engine}-{turn}"))))

    def ratio(key: str, unit: str, pick: Callable[[list[float]], float], how: str) -> Measured:
        duckdb, ours = (pick([run[key] for run in runs[engine]]) for engine in ("duckdb", "ours"))
        kept = {key, key.replace("_cpu", "")}  # CPU seconds, and the wall seconds beside them
        return Measured(
            duckdb / ours,
            f"DuckDB {duckdb:.2f} {unit} / ours {ours:.2f} {unit}, {how} of {ETL_ROUNDS}",
            {e: [{k: run[k] for k in sorted(kept)} for run in done] for e, done in runs.items()},
        )

    measured = {
        "etl_convert": ratio("convert_cpu_s", "CPU s", min, "best"),
        "etl_aggregate": ratio("aggregate_cpu_s", "CPU s", min, "best"),
        "etl_memory": ratio("peak_mib", "MiB", statistics.median, "median"),
    }
    return measured, work / f"ours-{ETL_ROUNDS - 1}" / "lake"


def service_ratio(lake: Path, work: Path) -> dict[str, Measured]:
    """``bentoml serve`` against the bare app, both up at once, loaded in turn."""
    from churn_transform.settings import Settings

    payloads = work / "payloads.json"
    _child("champion", str(lake), str(work / "bentoml"), str(payloads))
    bodies = [json.dumps({"records": [r]}).encode() for r in json.loads(payloads.read_text())]
    headers = {"Content-Type": "application/json", **Settings().service_headers()}
    with _servers(work) as servers:

        def load(label: str, seconds: float) -> Load:
            return _load(*servers[label], bodies, headers, seconds)

        for label in SERVERS:
            load(label, WARM_UP_SECONDS)
        rounds = [
            {label: load(label, LOAD_SECONDS) for label in SERVERS} for _ in range(SERVICE_ROUNDS)
        ]
    ratios = [r["service"].per_cpu_s / r["bare app"].per_cpu_s for r in rounds]
    cpu, wall = (
        {k: statistics.median(getattr(r[k], f) for r in rounds) for k in SERVERS}
        for f in ("per_cpu_s", "per_s")
    )
    detail = (
        f"median of {SERVICE_ROUNDS} rounds' ratios; medians: service {cpu['service']:.0f} / "
        f"bare app {cpu['bare app']:.0f} requests per server CPU s "
        f"({wall['service']:.0f} / {wall['bare app']:.0f}/s)"
    )
    figures = {label: [dataclasses.asdict(r[label]) for r in rounds] for label in SERVERS}
    return {"service": Measured(statistics.median(ratios), detail, figures)}


@contextmanager
def _servers(work: Path) -> Iterator[dict[str, tuple[str, int]]]:
    """The URL and process id of each server of the champion in ``work``'s BentoML store,
    started at once and ready; both stopped on the way out, whatever happens."""
    sys.path.insert(0, str(ROOT))
    from loadtests.run import start_server

    settings = {
        "BENTOML_HOME": str(work / "bentoml"),
        "KKBOX_TRAFFIC_LOG_URI": str(work / "traffic"),
        "KKBOX_FEATURE_REPO": str(work / "feature_store"),
        "KKBOX_CHAMPION_POLL_SECONDS": "0",
        "OMP_NUM_THREADS": "1",  # one row a call: LightGBM's threads would only spin
    }
    with ExitStack() as stack:
        servers = {}
        for label in SERVERS:
            servers[label] = server = start_server(bare=label == "bare app", **settings)
            stack.callback(server.stop)
        yield {label: (server.ready(), server.process.pid) for label, server in servers.items()}


@dataclass(frozen=True)
class Load:
    """Requests a server answered in a window, its seconds, and the CPU seconds it used."""

    answered: int
    seconds: float
    cpu_s: float

    @property
    def per_s(self) -> float:
        return self.answered / self.seconds

    @property
    def per_cpu_s(self) -> float:
        return self.answered / self.cpu_s


def _load(url: str, pid: int, bodies: list[bytes], headers: dict[str, str], seconds: float) -> Load:
    """``CLIENTS`` connections sending to ``url``'s ``/predict`` ``PACE`` times a second each,
    staggered into one even stream, for ``seconds``; the server (process ``pid`` and its
    workers) counted in CPU seconds, which other jobs on the machine do not take from it as they
    take wall time."""
    address = urlsplit(url)
    start = time.perf_counter()
    deadline = start + seconds

    def client(number: int) -> tuple[int, int]:
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        sent = answered = 0
        first, slot = 61 * number, start + number / (CLIENTS * PACE) - 1 / PACE
        while time.perf_counter() < deadline:
            slot = max(slot + 1 / PACE, time.perf_counter() - 1 / PACE)  # no burst to catch up
            time.sleep(max(0.0, slot - time.perf_counter()))
            connection.request("POST", "/predict", bodies[(first + sent) % len(bodies)], headers)
            response = connection.getresponse()
            response.read()
            sent, answered = sent + 1, answered + (response.status == 200)
        connection.close()
        return sent, answered

    cpu, began = _cpu_s(pid), time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        counts = list(pool.map(client, range(CLIENTS)))
    window, used = time.perf_counter() - began, _cpu_s(pid) - cpu
    sent, answered = (sum(column) for column in zip(*counts, strict=True))
    if answered < 0.99 * sent:
        raise GuardError(f"{url} answered {sent - answered} of {sent} requests with an error")
    return Load(answered, window, used)


def _cpu_s(pid: int) -> float:
    import psutil

    family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return sum(sum(p.cpu_times()[:2]) for p in family)


def generator_ratio(work: Path) -> dict[str, Measured]:
    """The generator against the yardstick, interleaved in one child process."""
    rates = _child("generator", str(work))
    generator, yardstick = max(rates["generator"]), max(rates["yardstick"])
    detail = (
        f"generate {generator:,.0f} rows/CPU s / yardstick {yardstick:,.0f} rows/CPU s, "
        f"best of {GENERATOR_ROUNDS}"
    )
    return {"generator": Measured(generator / yardstick, detail, rates)}


# -- child processes -------------------------------------------------------------------------


def _child(*arguments: str) -> dict[str, Any]:
    """The JSON that ``guard.py --child <arguments>`` printed last (with its ``peak_mib``)."""
    command = [sys.executable, __file__, "--child", *arguments]
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode:
        raise GuardError(f"`{' '.join(command[1:])}` exited with {result.returncode}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def _peak_mib() -> float:
    """This process's peak resident set since it started. Not ``ru_maxrss``: Linux carries the
    forking parent's peak over into a child's (exec keeps the old memory map's high-water mark),
    and this parent has generated the input."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024  # kB


def _etl_child(engine: str, raw: str, work: str) -> dict[str, Any]:
    import etl  # benchmarks/etl.py: this script's folder is first on the path

    if engine == "duckdb":
        return etl._duckdb(Path(raw), Path(work))
    return etl._ours(Path(raw), Path(work), 0, "32MB")


def _champion_child(lake: str, home: str, payloads: str) -> dict[str, Any]:
    """A small model trained on the lake's gold of ``COHORT``, in a BentoML store of its own as
    the import step would put it there, and the gold rows the load sends, as records."""
    os.environ["BENTOML_HOME"] = home  # read when bentoml is imported
    os.environ["OMP_NUM_THREADS"] = "1"  # LightGBM's threads spin for a core on a busy machine
    from churn_transform.etl.gold import read_gold
    from churn_transform.lake import Lake
    from churn_transform.modelling.training import TrainConfig, fit
    from churn_transform.serving.records import as_records

    gold, data_version = read_gold(Lake(lake), COHORT)
    fitted = fit(gold, TrainConfig(n_estimators=100, early_stopping_rounds=10))
    labels = {"registry_version": "guard", "run_id": "guard", "data_version": data_version}
    _import(fitted.model, Path(home).parent / "model", labels, fitted.threshold)
    Path(payloads).write_text(json.dumps(as_records(gold.head(PAYLOAD_ROWS))))
    return {"gold_rows": len(gold)}


def _import(model: Any, folder: Path, labels: dict[str, str], threshold: float) -> None:
    """``model`` saved as ``train`` logs it and imported as ``import`` does it, without MLflow's
    registry: the service reads it from the store exactly as it reads a champion."""
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    import bentoml
    import mlflow

    from churn_transform.modelling import artifact
    from churn_transform.modelling.training import model_requirements
    from churn_transform.settings import Settings

    # this environment has no pip, which MLflow looks for to write a conda.yaml nobody reads
    logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
    mlflow.sklearn.save_model(
        model,
        str(folder),
        serialization_format=artifact.FORMAT,
        skops_trusted_types=list(artifact.TRUSTED_TYPES),
        pip_requirements=model_requirements(),
    )
    bentoml.mlflow.import_model(
        Settings().model_name,
        str(folder),
        labels=labels,
        metadata={"metrics": {"threshold": threshold}},
        signatures={"predict": {"batchable": False}},
    )


def _generator_child(work: str) -> dict[str, list[float]]:
    """Rows per CPU second of the yardstick and of ``generate``, in turn, a few times."""
    from churn_transform.synthetic import GeneratorConfig, generate

    config = GeneratorConfig(users=GENERATOR_USERS, seed=SEED, processes=1)  # in this process
    rates: dict[str, list[float]] = {"yardstick": [], "generator": []}
    for _ in range(GENERATOR_ROUNDS):
        began = time.process_time()
        rows = _yardstick(Path(work) / "yardstick.csv")
        rates["yardstick"].append(rows / (time.process_time() - began))
        began = time.process_time()
        summary = generate(config, Path(work) / "raw", Path(work) / "oracle")
        rates["generator"].append(sum(summary.rows.values()) / (time.process_time() - began))
    return rates


def _yardstick(path: Path) -> int:
    """A fixed frame shaped like user_logs, drawn and written as CSV; its rows. Written with
    numpy, pandas and pyarrow only: the generator's own code may change, this must not."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(SEED)
    ids = np.char.add("user", np.arange(5_000).astype(str)).astype(object)
    counts = {"num_25": 3, "num_50": 1, "num_75": 1, "num_985": 1, "num_100": 20, "num_unq": 18}
    frame = pd.DataFrame(
        {
            "msno": ids[rng.integers(0, len(ids), YARDSTICK_ROWS)],
            "date": 20150101 + rng.integers(0, 800, YARDSTICK_ROWS),
            **{name: rng.poisson(mean, YARDSTICK_ROWS) for name, mean in counts.items()},
            "total_secs": rng.gamma(2.0, 2_500.0, YARDSTICK_ROWS),
        }
    ).sort_values(["msno", "date"], kind="stable")
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), str(path), options)
    return len(frame)


CHILDREN = {"etl": _etl_child, "champion": _champion_child, "generator": _generator_child}


# -- measuring, judging, recording ---------------------------------------------------------


def measure(families: list[str]) -> tuple[dict[str, Measured], dict[str, float]]:
    """Every ratio of ``families``, measured in a temporary folder; the seconds of each part."""
    measured: dict[str, Measured] = {}
    seconds: dict[str, float] = {}
    began = time.perf_counter()

    def lap(part: str) -> None:
        nonlocal began
        seconds[part], began = time.perf_counter() - began, time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="kkbox-guard-") as folder:
        work = Path(folder)
        if "generator" in families:
            measured.update(generator_ratio(_made(work / "generator")))
            lap("generator")
        if "etl" in families or "service" in families:
            raw, lake = _input(work / "input"), None
            lap("input")
            if "etl" in families:
                ratios, lake = etl_ratios(raw, work / "etl")
                measured.update(ratios)
                lap("etl")
            if "service" in families:
                if lake is None:  # our conversion, untimed, for the champion's gold
                    _child("etl", "ours", str(raw), str(_made(work / "lake")))
                    lake = work / "lake" / "lake"
                measured.update(service_ratio(lake, _made(work / "service")))
                lap("service")
    return measured, seconds


def _input(folder: Path) -> Path:
    """The ETL's raw files: ``USERS`` users of seed ``SEED``, on every core."""
    from churn_transform.synthetic import GeneratorConfig, generate

    generate(GeneratorConfig(users=USERS, seed=SEED, processes=0), folder / "raw", folder / "o")
    return folder / "raw"


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True)
    return folder


def typical(runs: list[dict[str, Measured]]) -> dict[str, Measured]:
    """Each ratio of its median run, with that run's figures and every run's value: a reference
    is a typical run's, not a lucky one's."""
    chosen = {}
    for name in runs[0]:
        values = [run[name].value for run in runs]
        middle = sorted(runs, key=lambda run: run[name].value)[len(runs) // 2][name]
        chosen[name] = dataclasses.replace(middle, figures={**middle.figures, "runs": values})
    return chosen


def load_references(path: Path = REFERENCES) -> dict[str, dict[str, Any]]:
    return json.loads(path.read_text())["ratios"] if path.exists() else {}


def record(measured: dict[str, Measured], path: Path = REFERENCES) -> None:
    """``measured`` as the references of their ratios; the others' are kept."""
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    stamp = {
        "recorded": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit,
        "cores": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 2),
    }
    ratios = load_references(path)
    for name, ratio in measured.items():
        ratios[name] = {"reference": ratio.value, **stamp, "detail": ratio.detail}
        ratios[name]["figures"] = ratio.figures
    about = "benchmarks/guard.py's references; refresh: python benchmarks/guard.py --record"
    path.write_text(json.dumps({"about": about, "ratios": ratios}, indent=1) + "\n")


def show(verdicts: list[Verdict], measured: dict[str, Measured]) -> None:
    print(f"{'ratio':<15}{'measured':>9}{'reference':>10}{'floor':>7}  verdict  figures")
    for v in verdicts:
        reference, floor = (f"{x:.3f}" if x is not None else "-" for x in (v.reference, v.floor))
        verdict = "PASS" if v.passed else "FAIL"
        print(
            f"{v.name:<15}{v.value:>9.3f}{reference:>10}{floor:>7}  {verdict:<7}  "
            f"{measured[v.name].detail}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--record", action="store_true", help="write the references measured")
    parser.add_argument("--only", default=",".join(FAMILIES), help="families, comma-separated")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = CHILDREN[args.child[0]](*args.child[1:])
        print(json.dumps({**result, "peak_mib": _peak_mib(), "cpu_s": time.process_time()}))
        return
    families = args.only.split(",")
    if unknown := set(families) - set(FAMILIES):
        parser.error(f"--only: unknown {sorted(unknown)}; the families are {', '.join(FAMILIES)}")
    began = time.perf_counter()
    runs = [measure(families) for _ in range(RECORD_RUNS if args.record else 1)]
    measured, parts = typical([ratios for ratios, _ in runs]), runs[-1][1]
    if args.record:
        record(measured)
    references = {name: entry["reference"] for name, entry in load_references().items()}
    verdicts = judge({name: m.value for name, m in measured.items()}, references)
    show(verdicts, measured)
    load = os.getloadavg()[0]
    seconds = time.perf_counter() - began
    spent = ", ".join(f"{part} {lap:.0f} s" for part, lap in parts.items())
    last = f"{len(runs)} runs, the last: " if len(runs) > 1 else ""
    print(f"guard: {len(verdicts)} ratios in {seconds:.0f} s ({last}{spent}), load {load:.1f}")
    sys.stdout.flush()  # the table before the failure's line on a shared terminal
    if failed := [v for v in verdicts if not v.passed]:
        sys.exit("guard: FAIL " + "; ".join(_why(v) for v in failed))


def _why(verdict: Verdict) -> str:
    if verdict.reference is None:
        return f"{verdict.name}: no reference recorded (python benchmarks/guard.py --record)"
    return (
        f"{verdict.name} {verdict.value:.3f} is more than {TOLERANCE:.0%} below its reference "
        f"{verdict.reference:.3f} (floor {verdict.floor:.3f})"
    )


if __name__ == "__main__":
    main()
