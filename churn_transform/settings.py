"""The one typed Settings object: the only code in the platform that reads the environment.

Every endpoint and path a step, the service or the dashboard uses is named here. Variables carry
the ``KKBOX_`` prefix; MLflow's and AWS's own variables (``MLFLOW_TRACKING_URI``,
``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``...) are honoured as they are.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The repository root; embedded defaults (local lake, SQLite MLflow) live under it.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


#: A URI in running text: a scheme, ``://``, then up to a space, a quote or an angle bracket.
_URI = re.compile(r"[a-z][\w+.-]*://[^\s\"'<>`]*", re.IGNORECASE)
_SECRET_PARAMETER = re.compile(
    r"(?P<name>[?&][^=&\s]*(?:password|secret|token|key|signature|credential)[^=&\s]*=)[^&\s]*",
    re.IGNORECASE,
)


def _without_userinfo(uri: str) -> str:
    """``uri`` with its user part masked: ``user:***`` with a password, ``***`` alone (a token
    written as the user, ``https://ghp_...@host``). The user part ends at the authority's last
    ``@``, as urllib reads it, so a password holding ``@`` is masked whole."""
    scheme, _, rest = uri.partition("://")
    try:
        authority = urlsplit(uri).netloc
    except ValueError:  # a malformed authority (an unclosed IPv6 bracket): up to the path
        authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    user, at, host = authority.rpartition("@")
    if not at or not rest.startswith(authority):
        return uri
    name, colon, _ = user.partition(":")
    return f"{scheme}://{name + ':***' if colon else '***'}@{host}{rest[len(authority) :]}"


def masked(text: str) -> str:
    """``text`` fit to show: in every URI it holds, the user part (``postgresql://mlflow:***@db``,
    ``https://***@host`` for a token) and the values of secret-looking query parameters become
    ``***``."""
    return _SECRET_PARAMETER.sub(
        r"\g<name>***", _URI.sub(lambda found: _without_userinfo(found.group()), text)
    )


def replica_token(name: str) -> str:
    """``name`` (a host or pod name) fit for a file name: letters, digits, ``.``, ``_`` and
    ``-`` kept, any other run of characters made one ``_``, no leading dot."""
    token = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".")
    if not token:
        raise ValueError(f"replica id {name!r} holds no letter or digit for a file name")
    return token


def _under_root(relative: str) -> str:
    return str(PROJECT_ROOT / relative)


def _local_beside_data(fields: dict[str, Any], name: str) -> str:
    """``<data_dir>/<name>`` for a local data folder, so one KKBOX_DATA_DIR moves a whole
    workspace; under the project's ``data/`` when the data lie in object storage (these
    folders are written by one machine's processes)."""
    data_dir = str(fields["data_dir"])
    return f"{data_dir}/{name}" if "://" not in data_dir else _under_root(f"data/{name}")


class Settings(BaseSettings):
    """What differs between a laptop, the compose stack and CI.

    Build it once at each edge (a step's ``main``, the service constructor, the dashboard) and
    pass it down. Tests build it with explicit values.
    """

    model_config = SettingsConfigDict(
        env_prefix="KKBOX_", extra="ignore", frozen=True, populate_by_name=True
    )

    data_dir: str = Field(
        default_factory=lambda: _under_root("data"),
        description="Root of the embedded data: raw/ CSVs and oracle/ answers of the generator.",
    )
    raw_uri: str | None = Field(
        default=None,
        description="Folder or s3:// prefix of the raw KKBox CSVs; default <data_dir>/raw.",
    )
    lake_uri: str = Field(
        # data_dir is validated first (fields validate in order): the lake follows it
        default_factory=lambda fields: f"{fields['data_dir']}/lake",
        description="Local folder or s3://bucket/prefix of the lake (bronze/silver/gold); "
        "default <data_dir>/lake.",
    )
    tracking_uri: str = Field(
        default_factory=lambda: f"sqlite:///{_under_root('mlflow.db')}",
        validation_alias=AliasChoices("KKBOX_TRACKING_URI", "MLFLOW_TRACKING_URI"),
    )
    experiment_name: str = Field(
        default="kkbox-churn",
        validation_alias=AliasChoices("KKBOX_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_NAME"),
        description="MLflow experiment of the steps' runs.",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "KKBOX_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "MLFLOW_S3_ENDPOINT_URL"
        ),
    )
    aws_access_key_id: str | None = Field(
        default=None, validation_alias=AliasChoices("KKBOX_AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID")
    )
    aws_secret_access_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("KKBOX_AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
    )
    dask_scheduler: str | None = Field(
        default=None, description="tcp://host:port of a Dask scheduler; none = local threads."
    )
    model_name: str = "kkbox-churn"
    uplift_model_name: str = Field(
        default="kkbox-uplift",
        description="The registered model of the uplift model (whose churn an offer prevents), "
        "trained by `mlflow run . -e uplift` from a past campaign; its own champion alias.",
    )
    champion_alias: str = "champion"
    challenger_alias: str = Field(
        default="challenger",
        description="The registry alias of the model the service scores every request with "
        "beside the champion, off the answer path (docs/challenger.md).",
    )
    traffic_log_uri: str = Field(
        default_factory=lambda fields: _local_beside_data(fields, "traffic"),
        description="Local folder where each service process writes its traffic log; default "
        "<data_dir>/traffic (the project's data/traffic when data_dir is in object storage).",
    )
    traffic_ship_uri: str | None = Field(
        default=None,
        description="s3://bucket/prefix or folder every replica copies its closed traffic-log "
        "files to, and the drift job and dashboard read; none: files stay in traffic_log_uri.",
    )
    replica_id: str = Field(
        default_factory=socket.gethostname,
        validate_default=True,
        description="This replica's name in its traffic-log files (the pod or container name); "
        "characters unfit for a file name become _.",
    )
    service_url: str = "http://127.0.0.1:3000"
    max_batch_size: int = Field(default=256, ge=1, le=100_000)
    max_latency_ms: int = Field(default=1000, ge=1)
    max_request_records: int = Field(default=1000, ge=1, description="Records per request.")
    max_shrink: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Share of its raw rows a table (and of its bytes a raw file) may lose between "
        "two snapshots before ingest stops (unless run with allow_shrink=true).",
    )
    keep_versions: int = Field(
        default=3,
        ge=1,
        description="Versions of each lake table gc keeps (the current one included), besides "
        "those a registered model or DVC's workspace was built on.",
    )
    max_body_bytes: int = Field(
        default=4 * 2**20,
        ge=1024,
        description="Largest request body the service reads (413 beyond); a full request of "
        "1000 records is about 1 MB.",
    )
    max_concurrency: int = Field(
        default=64,
        ge=1,
        description="Requests one service worker handles at once; more are answered 503 with "
        "Retry-After.",
    )
    api_keys: SecretStr | None = Field(
        default=None,
        description="The service's API keys, comma-separated: name:<sha256 hex of the key> (a "
        "value that is not 64 hex digits is a plain key, hashed at start). None and no "
        "api_keys_file: the API is open, which the service allows on a loopback address only.",
    )
    api_keys_file: Path | None = Field(
        default=None, description="A mounted secret with more keys, one entry a line."
    )
    metrics_need_key: bool = Field(default=False, description="Whether /metrics needs a key.")
    rate_limit: float = Field(
        default=0.0, ge=0, description="Requests/s each key may send to one worker; 0: no limit."
    )
    rate_burst: int = Field(default=20, ge=1, description="Requests a key may send at once.")
    workers: int = Field(default=1, ge=1, le=64, description="Worker processes of the service.")
    server_pid: int | None = Field(
        default=None,
        ge=1,
        description="Set by `bentoml serve` for its workers: the process a worker must not "
        "outlive. Never set by hand.",
    )
    access_log: bool = Field(
        default=False,
        description="BentoML's access log, one line per request; refused requests are logged "
        "and every prediction is in the traffic log either way.",
    )
    tracing: bool = Field(
        default=False,
        description="BentoML's OpenTelemetry spans on the service's routes, as its own tracing "
        "configuration says (exporter, sample rate); off, the routes skip that middleware, which "
        "samples nothing by default and cost about a third of the throughput, and request ids "
        "are drawn at random.",
    )
    pushgateway_url: str | None = Field(
        default=None,
        description="Prometheus Pushgateway the quality step pushes realized quality to; none: "
        "no push.",
    )
    champion_poll_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How often the service checks the registry's champion alias and switches to "
        "a newly promoted version; 0: serve the model it started with (image-bound).",
    )
    api_key: SecretStr | None = Field(
        default=None, description="The key the dashboard and the load tests send to the service."
    )
    feature_repo: str = Field(
        default_factory=lambda fields: _local_beside_data(fields, "feature_store"),
        description="Local folder of the Feast feature store (its registry and SQLite online "
        "store by default); default <data_dir>/feature_store (the project's data/feature_store "
        "when data_dir is in object storage).",
    )
    feature_registry: str | None = Field(
        default=None,
        description="Feast's registry file, a path or s3:// URI; default "
        "<feature_repo>/registry.db.",
    )
    feature_project: str = Field(default="kkbox_churn", description="The Feast project.")
    feature_registry_ttl: int = Field(
        default=60,
        ge=0,
        description="Seconds Feast caches its registry, and the service its map of the cohorts "
        "served (a newly loaded cohort is served after at most this long).",
    )
    online_store: Literal["sqlite", "redis"] = Field(
        default="sqlite", description="Feast's online store: embedded SQLite, or Redis."
    )
    online_store_path: str | None = Field(
        default=None,
        description="The SQLite online store's file; default <feature_repo>/online.db.",
    )
    redis_connection: str = Field(
        default="127.0.0.1:6379",
        description="Feast's Redis connection string: host:port[,password=...][,ssl=true].",
    )
    offer_cost: float = Field(default=10.0, ge=0, description="Cost of one retention offer.")
    offer_acceptance: float = Field(
        default=0.3, ge=0, le=1, description="Share of offered churners the offer keeps."
    )
    control_share: float = Field(
        default=0.1,
        ge=0,
        lt=1,
        description="Share of each campaign's subscribers held out as its control group, never "
        "contacted (drawn by a hash of msno and the campaign id: the same on every run).",
    )

    @field_validator("lake_uri", "traffic_log_uri", "traffic_ship_uri", "data_dir")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if "://" in value and not value.startswith(("s3://", "file://")):
            raise ValueError(f"only local paths, file:// and s3:// are supported, got {value!r}")
        return value.rstrip("/")

    @field_validator(
        "dask_scheduler",
        "s3_endpoint_url",
        "api_keys",
        "api_keys_file",
        "api_key",
        "traffic_ship_uri",
        "pushgateway_url",
        "feature_registry",
        "online_store_path",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("replica_id", mode="before")
    @classmethod
    def _file_name_token(cls, value: str) -> str:
        return replica_token(value or socket.gethostname())

    @field_validator("experiment_name", mode="before")
    @classmethod
    def _empty_is_the_default(cls, value: str) -> str:
        # as for `mlflow run`, whose option reads MLFLOW_EXPERIMENT_NAME: empty is unset
        return value or str(cls.model_fields["experiment_name"].default)

    @property
    def registry_path(self) -> str:
        """Feast's registry file."""
        return self.feature_registry or f"{self.feature_repo}/registry.db"

    @property
    def online_path(self) -> str:
        """The SQLite online store's file."""
        return self.online_store_path or f"{self.feature_repo}/online.db"

    @property
    def raw_dir(self) -> str:
        """Where the raw KKBox CSVs are read from (the generator writes there too)."""
        return (self.raw_uri or f"{self.data_dir}/raw").rstrip("/")

    @property
    def traffic_uri(self) -> str:
        """Where readers (the drift job, the dashboard) find the traffic log: every replica's
        shipped files under ``traffic_ship_uri`` when set, else the local ``traffic_log_uri``."""
        return self.traffic_ship_uri or self.traffic_log_uri

    @property
    def oracle_dir(self) -> str:
        """The generator's answers (true probabilities, hidden labels), kept outside raw/."""
        return f"{self.data_dir}/oracle"

    def service_headers(self) -> dict[str, str]:
        """The headers a client of the service sends: its key (``KKBOX_API_KEY``), if any."""
        return (
            {"Authorization": f"Bearer {self.api_key.get_secret_value()}"} if self.api_key else {}
        )

    def storage_options(self, uri: str | None = None) -> dict[str, object]:
        """fsspec/s3fs options for S3 URIs; empty for ``uri`` when it is a local path.

        AWS variables may be set for MLflow's artifacts while the lake is a local folder: local
        filesystems must not receive S3 credentials.
        """
        if uri is not None and not uri.startswith("s3://"):
            return {}
        options: dict[str, object] = {}
        if self.s3_endpoint_url:
            options["client_kwargs"] = {"endpoint_url": self.s3_endpoint_url}
        if self.aws_access_key_id:
            options["key"] = self.aws_access_key_id
        if self.aws_secret_access_key:
            options["secret"] = self.aws_secret_access_key.get_secret_value()
        return options
