"""Shared fixtures: real local servers started as processes on 127.0.0.1, stopped by PID."""

from __future__ import annotations

import atexit
import fcntl
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from loadtests.servers import Server, free_port, stop

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
# Two test processes share both cores with the servers and steps they start. LightGBM's OpenMP
# threads spin while they wait for a sibling that has no core: CPU burnt for nothing, and a small
# fit stalled for minutes beside another busy process. Waiting threads sleep instead, with the
# same results. Set before anything loads OpenMP; every process a test starts inherits it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
BIN = Path(sys.executable).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first: with several workers (``make test``), the last minutes are not
    one worker finishing a long test alone. The sort is stable, and every worker collects the
    same order, as pytest-xdist requires."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(autouse=True)
def _no_mlflow_environment_leaks() -> Iterator[None]:
    """In-process ``mlflow.set_tracking_uri`` and ``mlflow.set_experiment`` write
    MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_ID into ``os.environ``, which every later
    subprocess (``mlflow run``, a step) would inherit: a test's leave them as they were."""
    saved = {name: value for name, value in os.environ.items() if name.startswith("MLFLOW_")}
    yield
    for name in [name for name in os.environ if name.startswith("MLFLOW_")]:
        if name not in saved:
            del os.environ[name]
    os.environ.update(saved)


def wait_until_up(process: subprocess.Popen[bytes], url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


S3_CREDENTIALS = {"key": "testing", "secret": "testing"}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible server (moto) on 127.0.0.1, in memory, for the whole session."""
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(process, url)
        yield url
    finally:
        stop(process)


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A fresh bucket of its own for one test: ``s3://NAME``."""
    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture
def s3_options(s3_endpoint: str) -> dict[str, object]:
    return {**S3_CREDENTIALS, "client_kwargs": {"endpoint_url": s3_endpoint}}


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A Redis server (Debian's ``redis-server``) on 127.0.0.1, in memory: Feast's connection
    string ``host:port``."""
    import shutil

    port = free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        stop(process)


@pytest.fixture
def dask_scheduler() -> Iterator[str]:
    """A Dask scheduler and two single-threaded workers, as separate processes on 127.0.0.1,
    for one test: idle, the scheduler and the workers with their nannies keep half a core busy
    (15 CPU s in 30 s here), so one kept for the session cost minutes of CPU after its test."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen(
        [
            str(BIN / "dask"),
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dashboard-address",
            "127.0.0.1:0",
            "--no-show",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers = [
        subprocess.Popen(
            [
                str(BIN / "dask"),
                "worker",
                address,
                "--host",
                "127.0.0.1",
                "--nthreads",
                "1",
                "--nworkers",
                "1",
                "--memory-limit",
                "2GiB",
                "--dashboard-address",
                "127.0.0.1:0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for process in [*workers, scheduler]:
            stop(process)


@functools.cache
def _migrated_store() -> Path:
    """An empty MLflow SQLite store with every migration applied, made once per test process."""
    from mlflow import MlflowClient

    folder = Path(tempfile.mkdtemp(prefix="kkbox-mlflow-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    return folder / "mlflow.db"


def tracking_store(path: Path) -> str:
    """The tracking URI of a new, empty MLflow store at ``path`` (kept if it exists): a copy of
    a migrated one, because migrating a new SQLite store takes MLflow about two seconds."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_migrated_store(), path)
    return f"sqlite:///{path}"


def step_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """Environment for running steps as a user does: this venv first on PATH, own stores."""
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": tracking_store(tmp_path / "mlflow.db"),
        "KKBOX_DATA_DIR": str(tmp_path / "data"),
        "KKBOX_LAKE_URI": str(tmp_path / "lake"),
        "KKBOX_FEATURE_REPO": str(tmp_path / "feature_store"),
        **settings,
    }


def _postgres_bin() -> Path:
    """The newest installed PostgreSQL server (Debian's layout); `make test` installs one."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise RuntimeError("no PostgreSQL server: run `make system-deps` (apt package postgresql)")
    return found[-1].parent


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1 (run as user postgres, which it insists on)."""
    import shutil as _shutil

    pg_bin = _postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="kkbox-pg-"))  # /tmp: traversable by postgres
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    _shutil.chown(root, "postgres")
    _shutil.chown(sockets, "postgres")
    port = free_port()

    def as_postgres(*command: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True
        )

    as_postgres(str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust")
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    as_postgres(
        str(pg_bin / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(root / "log"),
        "-w",
        "-o",
        options,
        "start",
    )
    try:
        as_postgres(str(pg_bin / "createdb"), "-h", "127.0.0.1", "-p", str(port), "mlflow")
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mlflow"
    finally:
        as_postgres(str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        _shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def mlflow_server(postgres: str, s3_endpoint: str) -> Iterator[str]:
    """An MLflow tracking server on PostgreSQL with its artifacts in the S3 server."""
    import boto3

    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket="mlflow-artifacts")
    port = free_port()
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    process = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            postgres,
            "--artifacts-destination",
            "s3://mlflow-artifacts/artifacts",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(process, f"{url}/health", timeout=120)
        yield url
    finally:
        stop(process)


def run_step(env: dict[str, str], *command: str, expect: int = 0) -> str:
    """Run a command as a user would, in the project root; its stdout, after checking its exit."""
    from churn_transform.settings import PROJECT_ROOT

    result = subprocess.run(
        command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == expect, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


@dataclass
class Champion:
    """A trained, registered and imported champion, the environment that finds it (own MLflow,
    lake and BentoML store), and the gold tables of its data."""

    env: dict[str, str]
    lake: Any

    def gold(self, cohort: str) -> Any:
        import pandas as pd

        return pd.read_parquet(self.lake.current("gold", f"features_{cohort}"))

    def own_registry(self, folder: Path) -> tuple[str, Path, dict[str, str]]:
        """A copy of the champion's registry in ``folder``, so a test may move its aliases while
        other tests keep version 1: its URI, the traffic-log folder, and the environment of a
        service that follows it (polling every 0.5 s) and logs there."""
        source = Path(self.env["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///"))
        shutil.copy(source, folder / "mlflow.db")
        registry = f"sqlite:///{folder / 'mlflow.db'}"
        traffic = folder / "traffic"
        env = {
            **self.env,
            "MLFLOW_TRACKING_URI": registry,
            "KKBOX_TRAFFIC_LOG_URI": str(traffic),
            "KKBOX_CHAMPION_POLL_SECONDS": "0.5",
        }
        return registry, traffic, env


def drift_command(**change: str) -> list[str]:
    """``python -m steps.drift`` over today and yesterday, as the tests that send a few hundred
    predictions run it; ``change`` overrides a parameter (``**{"min-rows": "200"}``)."""
    arguments = {
        "end": "today",
        "days": "2",
        "max-rows": "50000",
        "min-rows": "100",
        "auc-drop": "0.02",
        "fail-on-drift": "false",
        **change,
    }
    flags = [part for name, value in arguments.items() for part in (f"--{name}", value)]
    return [sys.executable, "-m", "steps.drift", *flags]


def train_arguments(
    config: Any,
    margin: float = 0.005,
    min_auc: float = 0.6,
    max_segment_auc_drop: float = 0.05,
    train_cohort: str = "2017-02",
    eval_cohort: str = "2017-03",
    holdout: float = 0.0,
    min_oracle_share: float = 0.9,
    shadow: bool = True,
) -> list[str]:
    """``steps.train``'s arguments for a TrainConfig, by default trained on February and judged
    on March."""
    from dataclasses import asdict

    arguments = [
        "--train-cohort",
        train_cohort,
        "--eval-cohort",
        eval_cohort,
        "--holdout",
        str(holdout),
        "--margin",
        str(margin),
        "--min-auc",
        str(min_auc),
        "--min-oracle-share",
        str(min_oracle_share),
        "--max-segment-auc-drop",
        str(max_segment_auc_drop),
        "--shadow",
        str(shadow).lower(),
    ]
    for name, value in asdict(config).items():
        arguments += [f"--{name.replace('_', '-')}", str(value)]
    return arguments


def built_once(request: pytest.FixtureRequest, name: str, build: Callable[[Path], None]) -> Path:
    """The folder ``name``, filled by ``build`` once per test run. With several test processes
    (pytest-xdist) it lies in the folder the run's processes share: the first process to ask
    builds it while the others wait on a lock, then all read it. Callers that change what they
    find there work on a copy."""
    factory = request.getfixturevalue("tmp_path_factory")
    if not hasattr(request.config, "workerinput"):  # one test process
        folder = factory.mktemp(name)
        build(folder)
        return folder
    shared = factory.getbasetemp().parent  # pytest-N/, above each process's popen-gwN/
    folder, done = shared / name, shared / f"{name}.built"
    with (shared / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed in another process
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


def _generate_raw(root: Path) -> None:
    from churn_transform.synthetic import GeneratorConfig, generate

    config = GeneratorConfig(users=2500, seed=21, log_start="2016-10-01")
    generate(config, root / "raw", root / "oracle")


@pytest.fixture(scope="session")
def raw(request: pytest.FixtureRequest) -> Path:
    """A small generated raw folder (2,500 users), built once per run; read only (a test that
    changes it works on a copy)."""
    return built_once(request, "raw", _generate_raw) / "raw"


@pytest.fixture(scope="session")
def reference_gold(raw: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """Gold content hashes of ``raw`` on the embedded default (local lake, local threads), built
    once per run: what every other way of running the pipeline must give."""
    import dask

    from churn_transform.etl.gold import build_gold
    from churn_transform.etl.ingest import ingest
    from churn_transform.lake import Lake

    def build(root: Path) -> None:
        lake = Lake(str(root / "lake"))
        with dask.config.set(scheduler="threads"):
            ingest(lake, str(raw), {}, buckets=2)
            digests = {c: build_gold(lake, c)[1] for c in ("2017-02", "2017-03")}
        (root / "digests.json").write_text(json.dumps(digests))

    return json.loads((built_once(request, "reference-gold", build) / "digests.json").read_text())


def _build_champion(root: Path) -> None:
    import dask

    from churn_transform.etl.gold import build_gold
    from churn_transform.etl.ingest import ingest
    from churn_transform.lake import Lake
    from churn_transform.modelling.training import TrainConfig
    from churn_transform.synthetic import GeneratorConfig, generate

    config = GeneratorConfig(users=8000, seed=11, log_start="2016-10-01", shift=1.0)
    generate(config, root / "data" / "raw", root / "data" / "oracle")
    lake = Lake(str(root / "lake"))
    with dask.config.set(scheduler="threads"):
        ingest(lake, str(root / "data" / "raw"), {}, buckets=1)
        for cohort in ("2017-02", "2017-03", "2017-04"):
            build_gold(lake, cohort)
    env = _champion_env(root)
    arguments = train_arguments(TrainConfig(n_estimators=150, min_child_samples=50))
    run_step(env, sys.executable, "-m", "steps.train", *arguments)
    assert "imported kkbox-churn:" in run_step(env, sys.executable, "-m", "steps.import_champion")


def _champion_env(root: Path) -> dict[str, str]:
    return step_env(
        root,
        BENTOML_HOME=str(root / "bentoml"),
        BENTOML_DO_NOT_TRACK="True",
        KKBOX_TRAFFIC_LOG_URI=str(root / "traffic"),
    )


#: What the champion's build leaves, and tests write into (scores, reports, registry versions).
CHAMPION_STORES = ("data", "lake", "bentoml", "mlflow.db")


@pytest.fixture(scope="session")
def champion(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Champion:
    """Data generated with the shift knob on: February and March (the model's cohorts) are the
    unshifted past; April's features carry March's shift. Trained and imported once per run;
    each test process works on its own copy of the stores (the registry's artifacts, which
    nothing changes, stay where the training wrote them)."""
    from churn_transform.lake import Lake

    built = built_once(request, "champion", _build_champion)
    root = tmp_path_factory.mktemp("champion")
    for name in CHAMPION_STORES:
        source = built / name
        if source.is_dir():
            shutil.copytree(source, root / name, symlinks=True)
        else:
            shutil.copyfile(source, root / name)
    return Champion(_champion_env(root), Lake(str(root / "lake")))


def serve(
    env: dict[str, str], log: Path | None = None, port: int | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """``bentoml serve`` of the project's service on ``port`` (a free one by default), once it is
    ready; in a session of its own, so its process group can be signalled as a whole; its output
    appended to ``log`` when given."""
    server = Server(env=env, log=log, port=port, session=True)
    return server.process, server.ready()


@pytest.fixture(scope="module")
def service(champion: Champion) -> Iterator[str]:
    """The champion under ``bentoml serve``, for the tests of one module."""
    process, url = serve(champion.env)
    yield url
    stop(process)


def records_of(gold: Any, rows: slice = slice(None)) -> list[dict[str, Any]]:
    """Gold rows as the service's JSON records (nulls as None)."""
    from churn_transform.serving.records import as_records

    return as_records(gold.iloc[rows])


def start_pushgateway() -> tuple[subprocess.Popen[bytes], str]:
    """Debian's real Prometheus Pushgateway on a free port, once it answers; its URL."""
    import shutil

    port = free_port()
    process = subprocess.Popen(
        [
            shutil.which("prometheus-pushgateway") or "/usr/bin/prometheus-pushgateway",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_up(process, f"{url}/-/ready")
    return process, url


def start_alertmanager(
    root: Path, webhook: str, **route: str
) -> tuple[subprocess.Popen[bytes], str]:
    """Debian's real Alertmanager started as the containers start it (deploy/alertmanager/
    start.sh, which writes ``webhook`` into its config) on a free port, without peers, once it
    answers; its URL. ``route`` overrides the config's route timings (group_wait=...)."""
    import shutil

    import yaml

    from churn_transform.settings import PROJECT_ROOT

    deploy = PROJECT_ROOT / "deploy" / "alertmanager"
    folder, data = root / "alertmanager", root / "alertmanager-data"
    folder.mkdir()
    data.mkdir()
    shutil.copy(deploy / "start.sh", folder)
    config = yaml.safe_load((deploy / "alertmanager.yml").read_text())
    config["route"].update(route)
    (folder / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [
            "/bin/sh",
            str(folder / "start.sh"),
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        env={
            **os.environ,
            "ALERT_WEBHOOK_URL": webhook,
            "ALERTMANAGER": shutil.which("prometheus-alertmanager")
            or "/usr/bin/prometheus-alertmanager",
            "ALERTMANAGER_DATA": str(data),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_up(process, f"{url}/-/ready")
    return process, url


def start_prometheus(
    target: str | None,
    root: Path,
    pushgateway: str | None = None,
    alertmanager: str | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """The real Prometheus with the repository's config and rules, scraping the service at
    ``target`` (host:port) and, when given, the Pushgateway at ``pushgateway`` (host:port)
    every second, evaluating the rules every second and sending its alerts to the
    Alertmanager at ``alertmanager`` (host:port) when given; its URL (it may take a moment to
    answer). Without ``target``, no service is scraped."""
    import shutil

    import yaml

    from churn_transform.settings import PROJECT_ROOT

    deploy = PROJECT_ROOT / "deploy" / "prometheus"
    config = yaml.safe_load((deploy / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(deploy / "alerts.yml")]
    service_job, gateway_job = config["scrape_configs"]
    service_job["static_configs"] = [{"targets": [target]}]
    gateway_job["static_configs"] = [{"targets": [pushgateway]}]
    config["scrape_configs"] = [
        j for j, on in ((service_job, target), (gateway_job, pushgateway)) if on
    ]
    if alertmanager:
        config["alerting"]["alertmanagers"][0]["static_configs"] = [{"targets": [alertmanager]}]
    else:
        del config["alerting"]
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [
            shutil.which("prometheus") or "/usr/bin/prometheus",
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, f"http://127.0.0.1:{port}"


def prometheus_query(prometheus: str, expr: str, timeout: float = 30) -> list[dict[str, Any]]:
    """The first non-empty answer to ``expr`` within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            answer = requests.get(
                f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10
            ).json()
            if answer["data"]["result"]:
                return answer["data"]["result"]
        except (requests.ConnectionError, ValueError):  # not listening, or not ready, yet
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{expr} returned nothing in {timeout} s")


#: Debian's chromium (what `make system-deps` installs); KKBOX_TEST_BROWSER=playwright takes
#: the browser `playwright install chromium` downloaded (GitHub's runners: apt's is a snap).
BROWSER = os.environ.get("KKBOX_TEST_BROWSER") or shutil.which("chromium") or "/usr/bin/chromium"
#: Headless, and none of the background connections this machine's closed network refuses.
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium driven by playwright (never ``playwright install``: see BROWSER)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=None if BROWSER == "playwright" else BROWSER, args=BROWSER_FLAGS
        )
        try:
            yield browser
        finally:
            browser.close()
