"""The coordinator's configuration file (``/etc/novacron/coordinator.toml``), validated at start-up.

Layout (every key optional; the values shown are the defaults)::

    [coordinator]
    listen = "0.0.0.0:7443"                 # agents' telemetry streams (gRPC)
    db_path = "/var/lib/novacron-coordinator/coordinator.db"
    insecure = false                        # true: plaintext gRPC (tests, demos only)
    metrics_listen = "127.0.0.1:9108"       # Prometheus /metrics
    log_level = "info"
    stale_after_seconds = 60.0              # no frame for this long: node is "stale"
    unknown_after_seconds = 600.0           # ... and for this long: "unknown"

    [tls]
    ca_cert = "/etc/novacron/pki/ca.crt"    # the fleet CA; client certificates must chain to it
    server_cert = "/etc/novacron/pki/server.crt"
    server_key = "/etc/novacron/pki/server.key"

    [store]
    retention_raw_seconds = 604800.0        # 7 days of full-resolution frames
    downsample_step_seconds = 300.0         # older frames: one mean row per node per step
    retention_downsampled_seconds = 7776000.0   # 90 days of downsampled rows
    batch_max_frames = 2000                 # one transaction holds at most this many frames
    batch_max_delay_seconds = 0.05          # ... and waits at most this long to fill up
    busy_timeout_seconds = 5.0              # a locked database is an error after this long
    compact_interval_seconds = 3600.0       # how often retention/downsampling runs

    [models]
    # signing_key = "/etc/novacron/pki/model-signing.key"   # unset: no model pushes
    models_dir = "/var/lib/novacron-coordinator/models"

    [ingest]
    workers = 0                             # processes serving the agent port; 0: one per
                                            # CPU (at most 4), 1: the main process itself

    [api]                                   # the scheduler/operator API (PlacementService)
    listen = "127.0.0.1:7444"               # its own address: agents' certificates never reach it
    # insecure = false                      # unset: as [coordinator] insecure
    # inventory_file = "/etc/novacron/inventory.toml"   # rack, power, cost, compliance ...

    [placement]                             # see docs/placement.md
    cpu_allocation_ratio = 4.0
    objectives = { spread = 1.0, reliability = 2.0, performance = 1.0 }
    weights = {}                            # factor id -> weight (ListFactors for the ids)
    disabled_filters = []
    # ... every field of PlacementSettings (coordinator/placement/settings.py)

Any unknown section or key, wrong type or out-of-range value stops start-up with a
:class:`ConfigError` naming the file and the key, exactly like the agent's config.
Command-line flags of ``novacron-coordinator run`` win over the file (:func:`with_overrides`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from novacron.coordinator.placement.settings import PlacementSettings
from novacron.protos.runtime.tomlconfig import (
    ConfigError,
    build,
    positive,
    read_config_file,
    to_toml_table,
)

DEFAULT_CONFIG_PATH = Path("/etc/novacron/coordinator.toml")
SECTIONS = ("coordinator", "tls", "store", "models", "ingest", "api", "placement")
MAX_PORT = 65535


def parse_host_port(text: str) -> tuple[str, int]:
    """Split ``"HOST:PORT"`` (``"[::1]:7443"`` for IPv6); ValueError says what is wrong.

    Port 0 is allowed: the OS picks a free port (tests bind ``127.0.0.1:0``).
    """
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not port_text.isdigit() or int(port_text) > MAX_PORT:
        raise ValueError(f"expected HOST:PORT with a port 0..{MAX_PORT}, got {text!r}")
    return host, int(port_text)


def _address(name: str, value: str) -> None:
    try:
        parse_host_port(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


@dataclass(frozen=True)
class CoordinatorSettings:
    listen: str = "0.0.0.0:7443"
    db_path: Path = Path("/var/lib/novacron-coordinator/coordinator.db")
    # Plaintext gRPC: no node identity from certificates, so any peer may claim any node.
    insecure: bool = False
    metrics_listen: str = "127.0.0.1:9108"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Liveness: a node that sent no frame for stale_after_seconds is "stale", after
    # unknown_after_seconds "unknown" (its last data is too old to plan with).
    stale_after_seconds: float = 60.0
    unknown_after_seconds: float = 600.0

    def __post_init__(self) -> None:
        _address("listen", self.listen)
        _address("metrics_listen", self.metrics_listen)
        positive("stale_after_seconds", self.stale_after_seconds)
        positive("unknown_after_seconds", self.unknown_after_seconds)
        if self.unknown_after_seconds <= self.stale_after_seconds:
            raise ValueError(
                f"unknown_after_seconds: must be > stale_after_seconds "
                f"({self.stale_after_seconds}), got {self.unknown_after_seconds}"
            )


@dataclass(frozen=True)
class TlsSettings:
    """Mutual TLS: the server's certificate, and the CA that agents' certificates chain to."""

    ca_cert: Path = Path("/etc/novacron/pki/ca.crt")
    server_cert: Path = Path("/etc/novacron/pki/server.crt")
    server_key: Path = Path("/etc/novacron/pki/server.key")


@dataclass(frozen=True)
class StoreSettings:
    """The durable store: retention, downsampling and write batching."""

    retention_raw_seconds: float = 7 * 86400.0
    downsample_step_seconds: float = 300.0
    retention_downsampled_seconds: float = 90 * 86400.0
    # Frames of many streams share one transaction (one fsync); an ack waits for it.
    batch_max_frames: int = 2000
    batch_max_delay_seconds: float = 0.05
    # How long a write waits for another writer's lock before failing with StoreUnavailable.
    busy_timeout_seconds: float = 5.0
    compact_interval_seconds: float = 3600.0

    def __post_init__(self) -> None:
        positive("retention_raw_seconds", self.retention_raw_seconds)
        positive("downsample_step_seconds", self.downsample_step_seconds)
        positive("retention_downsampled_seconds", self.retention_downsampled_seconds)
        positive("batch_max_frames", self.batch_max_frames)
        positive("batch_max_delay_seconds", self.batch_max_delay_seconds)
        positive("busy_timeout_seconds", self.busy_timeout_seconds)
        positive("compact_interval_seconds", self.compact_interval_seconds)
        if self.downsample_step_seconds > self.retention_raw_seconds:
            raise ValueError(
                f"downsample_step_seconds: must be <= retention_raw_seconds "
                f"({self.retention_raw_seconds}), got {self.downsample_step_seconds}"
            )
        if self.retention_downsampled_seconds <= self.retention_raw_seconds:
            raise ValueError(
                f"retention_downsampled_seconds: must be > retention_raw_seconds "
                f"({self.retention_raw_seconds}), got {self.retention_downsampled_seconds}"
            )


@dataclass(frozen=True)
class ModelsSettings:
    """Model distribution: models in ``models_dir`` are signed and pushed to agents."""

    # Ed25519 private key (PEM) that signs pushed models; unset: models are not pushed.
    signing_key: Path | None = None
    models_dir: Path = Path("/var/lib/novacron-coordinator/models")


@dataclass(frozen=True)
class IngestProcessSettings:
    """How many processes serve the agent port (``novacron.coordinator.ingest_workers``).

    0 (the default) means one per CPU this process may use, at most four: one Python
    process ingests what one core can decode and convert, and a replay storm after an
    outage (every agent resending its spool at once) is exactly when the coordinator
    needs all of them. More than four buys little, because SQLite commits one writer at
    a time. 1 runs the ingest inside the main process (no worker processes, smallest
    memory: each worker is a Python process of its own, ~100 MiB).
    """

    workers: int = 0

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ValueError(f"workers: must be >= 0 (0: one per CPU), got {self.workers}")


@dataclass(frozen=True)
class ApiSettings:
    """The scheduler/operator API: PlacementService on its own address.

    Served by the coordinator's main process with mutual TLS against the same CA as
    the agent port ([tls]); it accepts only API client certificates (``pki
    issue-client``), never an agent's.
    """

    listen: str = "127.0.0.1:7444"
    # Plaintext: tests and demos on loopback only. Unset: as [coordinator] insecure.
    insecure: bool | None = None
    # The operator's host inventory file (.toml or .csv) for placement; unset: none.
    inventory_file: Path | None = None

    def __post_init__(self) -> None:
        _address("listen", self.listen)


@dataclass(frozen=True)
class CoordinatorConfig:
    coordinator: CoordinatorSettings = field(default_factory=CoordinatorSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    models: ModelsSettings = field(default_factory=ModelsSettings)
    ingest: IngestProcessSettings = field(default_factory=IngestProcessSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    placement: PlacementSettings = field(default_factory=PlacementSettings)
    source: str = "<defaults>"

    @property
    def api_insecure(self) -> bool:
        """Whether the API serves plaintext: [api] insecure, else [coordinator] insecure."""
        return self.coordinator.insecure if self.api.insecure is None else self.api.insecure


def parse_config(data: dict[str, Any], source: str) -> CoordinatorConfig:
    """Validate a parsed TOML document; every problem is a ConfigError naming the key."""
    unknown = set(data) - set(SECTIONS)
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(source, key, f"unknown section (known: {', '.join(SECTIONS)})")
    return CoordinatorConfig(
        coordinator=build(CoordinatorSettings, data.get("coordinator", {}), source, "coordinator"),
        tls=build(TlsSettings, data.get("tls", {}), source, "tls"),
        store=build(StoreSettings, data.get("store", {}), source, "store"),
        models=build(ModelsSettings, data.get("models", {}), source, "models"),
        ingest=build(IngestProcessSettings, data.get("ingest", {}), source, "ingest"),
        api=build(ApiSettings, data.get("api", {}), source, "api"),
        placement=_placement(data.get("placement", {}), source),
        source=source,
    )


def _placement(data: Any, source: str) -> PlacementSettings:
    """[placement], with filter, weigher and factor names checked against the plugins."""
    from novacron.coordinator.placement.engine import Policy  # the plugins are heavy

    settings = build(PlacementSettings, data, source, "placement")
    try:
        Policy.from_settings(settings)
    except ValueError as exc:
        key, _, problem = str(exc).partition(": ")
        raise ConfigError(source, f"placement.{key}", problem) from None
    return settings


def load_config(path: Path | None) -> CoordinatorConfig:
    """Load ``path``; without one, the default path if it exists, else built-in defaults."""
    return parse_config(*read_config_file(path, DEFAULT_CONFIG_PATH))


def with_overrides(
    config: CoordinatorConfig,
    *,
    listen: str | None = None,
    db_path: Path | None = None,
    insecure: bool | None = None,
    metrics_listen: str | None = None,
    log_level: str | None = None,
    api_listen: str | None = None,
    ingest_workers: int | None = None,
) -> CoordinatorConfig:
    """Apply command-line flags (they win over the file); a bad value is a ConfigError."""
    changes: dict[str, Any] = {
        name: value
        for name, value in (
            ("listen", listen),
            ("db_path", db_path),
            ("insecure", insecure),
            ("metrics_listen", metrics_listen),
            ("log_level", log_level),
        )
        if value is not None
    }
    if ingest_workers is not None:
        try:
            config = replace(config, ingest=replace(config.ingest, workers=ingest_workers))
        except ValueError as exc:
            raise ConfigError(
                "command line", "--ingest-workers", str(exc).partition(": ")[2]
            ) from None
    if api_listen is not None:
        try:
            config = replace(config, api=replace(config.api, listen=api_listen))
        except ValueError as exc:
            raise ConfigError("command line", "--api-listen", str(exc).partition(": ")[2]) from None
    if not changes:
        return config
    try:
        settings = replace(config.coordinator, **changes)
    except ValueError as exc:
        name, _, problem = str(exc).partition(": ")
        raise ConfigError("command line", f"--{name.replace('_', '-')}", problem) from None
    return replace(config, coordinator=settings)


def render_config(config: CoordinatorConfig) -> str:
    """The effective configuration as a TOML document that ``parse_config`` accepts."""
    tables = [to_toml_table(name, getattr(config, name)) for name in SECTIONS]
    return f"# effective configuration (from {config.source} and command-line flags)\n" + "\n".join(
        tables
    )
