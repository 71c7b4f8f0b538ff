"""The agent's configuration file (``/etc/novacron/agent.toml``), validated at start-up.

Layout::

    [agent]
    node_id = "hv-017"              # default: the host name
    interval_seconds = 10.0
    collector_timeout_seconds = 30.0
    sysfs_root = "/sys"
    procfs_root = "/proc"
    log_level = "info"
    state_dir = "/var/lib/novacron-agent"   # feature windows survive restarts here

    [scoring]
    enabled = true
    models_dir = "<the bundled models>"

    [health]                         # the local node-health socket (gRPC)
    enabled = true
    socket_path = "/run/novacron-agent/agent.sock"
    socket_group = "novacron"

    [coordinator]                    # the telemetry stream (``novacron-agent run``)
    address = "coord.example:7443"
    ca_cert = "/etc/novacron/tls/ca.crt"
    client_cert = "/etc/novacron/tls/agent.crt"
    client_key = "/etc/novacron/tls/agent.key"
    insecure = false
    trusted_model_keys = ["/etc/novacron/tls/model-signing.pub"]

    [collectors.smart]               # one table per registered collector
    enabled = true
    smartctl_path = "/usr/sbin/smartctl"

Any unknown key, unknown collector or wrong value stops start-up naming key and file.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from novacron.agent.collectors.base import (
    CollectorContext,
    CollectorSettings,
    default_settings,
    registry,
)
from novacron.models.card import BUNDLED_DIR
from novacron.protos.runtime.tomlconfig import (
    ConfigError,
    build,
    positive,
    read_config_file,
    to_toml_table,
)

DEFAULT_CONFIG_PATH = Path("/etc/novacron/agent.toml")
DEFAULT_HEALTH_SOCKET = Path("/run/novacron-agent/agent.sock")
# sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
MAX_UNIX_SOCKET_PATH_BYTES = 107
SECTIONS = ("agent", "collectors", "scoring", "health", "coordinator")
DEFAULT_TLS_DIR = Path("/etc/novacron/tls")
DEFAULT_SPOOL_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_SPOOL_MAX_AGE_SECONDS = 7 * 86400.0


@dataclass(frozen=True)
class AgentSettings:
    node_id: str | None = None
    interval_seconds: float = 10.0
    # A collector that has not answered by then is reported as timed out for this
    # cycle; it is not started again until its stuck call returns.
    collector_timeout_seconds: float = 30.0
    sysfs_root: Path = Path("/sys")
    procfs_root: Path = Path("/proc")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Feature windows are saved here (``features.npz``) and restored at start, so a
    # restarted agent keeps its last day of history instead of being blind for 24 h.
    state_dir: Path = Path("/var/lib/novacron-agent")

    def __post_init__(self) -> None:
        positive("interval_seconds", self.interval_seconds)
        positive("collector_timeout_seconds", self.collector_timeout_seconds)
        if self.node_id is not None and not self.node_id.strip():
            raise ValueError("node_id: must not be empty")


@dataclass(frozen=True)
class ScoringSettings:
    """Local inference with the ONNX models (failure prediction, anomaly detection)."""

    enabled: bool = True
    # Every ``<name>.card.json`` + ``.onnx`` here is verified (sha256, schema) and loaded.
    models_dir: Path = BUNDLED_DIR


@dataclass(frozen=True)
class HealthSettings:
    """The node-health server on a Unix socket (``novacron-agent health``, grpcurl).

    A Unix socket, not TCP: only local users in ``socket_group`` (mode 0660) can read the
    node's health, and nothing is exposed on the network.
    """

    enabled: bool = True
    socket_path: Path = DEFAULT_HEALTH_SOCKET
    # Group owning the socket, so its members may connect; "" keeps the process's group.
    socket_group: str = "novacron"

    def __post_init__(self) -> None:
        size = len(str(self.socket_path).encode())
        if size > MAX_UNIX_SOCKET_PATH_BYTES:
            raise ValueError(
                f"socket_path: {size} bytes is longer than a Unix socket path may be "
                f"({MAX_UNIX_SOCKET_PATH_BYTES})"
            )


@dataclass(frozen=True)
class CoordinatorSettings:
    """Where ``novacron-agent run`` streams its frames, and whom it trusts.

    Mutual TLS by default: the CA that signed the coordinator's certificate, and this
    node's client certificate and key (``novacron-coordinator pki issue-agent``).
    ``insecure`` (plaintext, tests and demos on loopback only) needs no files.
    """

    # HOST:PORT; empty: ``run`` needs ``--coordinator``.
    address: str = ""
    ca_cert: Path = DEFAULT_TLS_DIR / "ca.crt"
    client_cert: Path = DEFAULT_TLS_DIR / "agent.crt"
    client_key: Path = DEFAULT_TLS_DIR / "agent.key"
    insecure: bool = False
    # Ed25519 public keys (PEM) whose signatures make a pushed model acceptable; empty:
    # every model update is refused and the loaded models stay.
    trusted_model_keys: tuple[Path, ...] = ()
    # Longest wait between reconnect attempts (exponential backoff with full jitter).
    reconnect_max_seconds: float = 30.0
    # The spool (``<state_dir>/spool.sqlite``) holds frames until the coordinator has
    # stored them; past either bound the oldest are dropped (counted and logged).
    spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES
    spool_max_age_seconds: float = DEFAULT_SPOOL_MAX_AGE_SECONDS

    def __post_init__(self) -> None:
        if self.address:
            split_address(self.address)
        positive("reconnect_max_seconds", self.reconnect_max_seconds)
        positive("spool_max_bytes", self.spool_max_bytes)
        positive("spool_max_age_seconds", self.spool_max_age_seconds)


def split_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as host and port; ValueError naming it."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address: expected HOST:PORT, got {address!r}")
    return host, int(port)


@dataclass(frozen=True)
class AgentConfig:
    agent: AgentSettings = field(default_factory=AgentSettings)
    collectors: dict[str, CollectorSettings] = field(default_factory=dict)
    scoring: ScoringSettings = field(default_factory=ScoringSettings)
    source: str = "<defaults>"
    health: HealthSettings = field(default_factory=HealthSettings)
    coordinator: CoordinatorSettings = field(default_factory=CoordinatorSettings)

    @property
    def node_id(self) -> str:
        return self.agent.node_id or socket.gethostname()

    @property
    def context(self) -> CollectorContext:
        return CollectorContext(
            sysfs_root=self.agent.sysfs_root, procfs_root=self.agent.procfs_root
        )

    def enabled_collectors(self) -> list[str]:
        return [name for name, s in self.collectors.items() if s.enabled]


def parse_config(data: dict[str, Any], source: str) -> AgentConfig:
    """Validate a parsed TOML document; every problem is a ConfigError naming the key."""
    unknown = set(data) - set(SECTIONS)
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(source, key, f"unknown section (known: {', '.join(SECTIONS)})")
    agent = build(AgentSettings, data.get("agent", {}), source, "agent")
    scoring = build(ScoringSettings, data.get("scoring", {}), source, "scoring")
    health = build(HealthSettings, data.get("health", {}), source, "health")
    coordinator = build(CoordinatorSettings, data.get("coordinator", {}), source, "coordinator")
    known = registry()
    tables = data.get("collectors", {})
    if not isinstance(tables, dict):
        raise ConfigError(source, "collectors", "expected a table of [collectors.<name>] tables")
    for name in tables:
        if name not in known:
            raise ConfigError(
                source,
                f"collectors.{name}",
                f"unknown collector (known: {', '.join(sorted(known))})",
            )
    collectors: dict[str, CollectorSettings] = {}
    for name, info in sorted(known.items()):
        if name in tables:
            table = (
                {"enabled": info.default_enabled, **tables[name]}
                if isinstance(tables[name], dict)
                else tables[name]
            )
            collectors[name] = build(info.settings_type, table, source, f"collectors.{name}")
        else:
            collectors[name] = default_settings(info)
        interval = collectors[name].interval_seconds
        if interval is not None and interval <= 0:
            raise ConfigError(
                source, f"collectors.{name}.interval_seconds", f"must be > 0, got {interval}"
            )
    return AgentConfig(
        agent=agent,
        collectors=collectors,
        scoring=scoring,
        source=source,
        health=health,
        coordinator=coordinator,
    )


def load_config(path: Path | None) -> AgentConfig:
    """Load ``path``; without one, the default path if it exists, else built-in defaults."""
    return parse_config(*read_config_file(path, DEFAULT_CONFIG_PATH))


def with_overrides(
    config: AgentConfig,
    *,
    sysfs_root: Path | None = None,
    procfs_root: Path | None = None,
    only_collectors: list[str] | None = None,
    collector_settings: dict[str, dict[str, Any]] | None = None,
) -> AgentConfig:
    """Apply command-line overrides (they win over the file, for tests and troubleshooting).

    ``only_collectors`` enables exactly those collectors; ``collector_settings`` replaces
    fields of one collector's settings (e.g. ``{"smart": {"smartctl_path": "..."}}``).
    """
    agent = config.agent
    if sysfs_root is not None:
        agent = replace(agent, sysfs_root=sysfs_root)
    if procfs_root is not None:
        agent = replace(agent, procfs_root=procfs_root)
    collectors = dict(config.collectors)
    if only_collectors is not None:
        unknown = [n for n in only_collectors if n not in collectors]
        if unknown:
            raise ConfigError(
                "--collectors",
                unknown[0],
                f"unknown collector (known: {', '.join(sorted(collectors))})",
            )
        collectors = {n: replace(s, enabled=n in only_collectors) for n, s in collectors.items()}
    for name, changes in (collector_settings or {}).items():
        collectors[name] = replace(collectors[name], **changes)
    return replace(config, agent=agent, collectors=collectors)


def render_config(config: AgentConfig) -> str:
    """The effective configuration as a TOML document that ``parse_config`` accepts."""
    tables = [
        to_toml_table("agent", config.agent),
        to_toml_table("scoring", config.scoring),
        to_toml_table("health", config.health),
        to_toml_table("coordinator", config.coordinator),
    ]
    tables += [to_toml_table(f"collectors.{n}", s) for n, s in sorted(config.collectors.items())]
    return f"# effective configuration (from {config.source} and command-line flags)\n" + "\n".join(
        tables
    )
