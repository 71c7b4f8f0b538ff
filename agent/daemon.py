"""``novacron-agent run``: the agent as a long-running daemon.

The main thread runs the cycle at a fixed rate::

    collect -> NodeIntelligence.observe (features, scores) -> spool.append(build_frame)
            -> HealthState -> wake the stream thread

and the stream thread (:mod:`novacron.agent.stream`) drains the spool into the
coordinator. The spool is the only hand-over between them, so a coordinator that is
down, slow or restarting never slows collection: frames wait on disk, in order, and
leave only once acknowledged.

Nothing at run time stops the daemon: a spool that cannot store frames (full disk,
locked database, unwritable state directory) is logged once, turns the node's health
DEGRADED and is retried every cycle; a health socket or metrics port that cannot be
bound is logged and the daemon runs without it; a failing cycle is logged and the next
one runs. Only a configuration mistake found at start-up (bad TLS files, no coordinator
address, a node id that cannot be in a certificate) exits, with status 2.

Signals: SIGTERM / SIGINT stop collecting, give the stream up to
:data:`FLUSH_SECONDS` to get the last frames acknowledged, save the feature windows,
close the spool and the health socket, and exit 0. SIGHUP re-reads the config file (a
bad file is logged and the running configuration kept), applies what can change live
(interval, log level, collectors, trusted model keys) and reads the CPU inventory
again; the rest (node id, state dir, coordinator, health socket, scoring) is logged as
needing a restart.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

from prometheus_client import Counter, Gauge, start_http_server

from novacron.agent.collectors.cpuinfo import CpuInfoCollector, CpuInventory
from novacron.agent.config import AgentConfig, CoordinatorSettings, split_address
from novacron.agent.frames import build_frame, model_versions
from novacron.agent.health_report import HealthState
from novacron.agent.health_server import HealthServer
from novacron.agent.intelligence import NodeIntelligence
from novacron.agent.model_set import ModelSet
from novacron.agent.model_update import ModelInstaller, load_trusted_keys
from novacron.agent.runner import CollectionRunner
from novacron.agent.sample import NodeSample
from novacron.agent.spool import Spool, SpoolUnavailable, spool_path
from novacron.agent.stream import StreamClient, StreamSettings, load_credentials
from novacron.models.schema import NODE
from novacron.protos import CONTRACT_MINOR_VERSION, __version__, common_pb2, telemetry_pb2
from novacron.protos.runtime.jsonlog import LogOnce
from novacron.protos.runtime.tls import TlsConfigError, validate_node_id
from novacron.protos.runtime.tomlconfig import ConfigError

log = logging.getLogger(__name__)

# How long a stopping daemon waits for the coordinator to acknowledge the last frames.
FLUSH_SECONDS = 3.0
# Feature windows are saved this often (and at stop), so a crash loses little history.
SAVE_INTERVAL_SECONDS = 60.0
MACHINE_ID_PATH = Path("/etc/machine-id")
EXIT_CONFIG = 2

CYCLES = Counter(
    "novacron_agent_cycles",
    "Collection cycles by result (ok: frame spooled; spool_error: the spool refused it; "
    "error: the cycle failed).",
    ["result"],
)
CYCLE_DURATION = Gauge(
    "novacron_agent_cycle_duration_seconds", "Wall time of the last cycle (collect to spool)."
)
LAST_SEQ = Gauge("novacron_agent_last_seq", "Highest frame seq produced by this node's agent.")


class DaemonConfigError(Exception):
    """A start-up setting the daemon cannot run with; one line, naming the setting."""


@dataclass(frozen=True)
class RunFlags:
    """``run``'s own flags; None: the config file's value stands."""

    coordinator: str | None = None
    node_id: str | None = None
    interval_seconds: float | None = None
    state_dir: Path | None = None
    insecure: bool = False
    log_level: str | None = None


def with_run_flags(config: AgentConfig, flags: RunFlags) -> AgentConfig:
    """Apply ``run``'s flags over the config (flags win); DaemonConfigError if invalid."""
    agent = config.agent
    coordinator = config.coordinator
    changes: dict[str, Any] = {}
    if flags.node_id is not None:
        changes["node_id"] = flags.node_id
    if flags.interval_seconds is not None:
        if not flags.interval_seconds > 0:
            raise DaemonConfigError(f"--interval: must be > 0, got {flags.interval_seconds}")
        changes["interval_seconds"] = flags.interval_seconds
    if flags.state_dir is not None:
        changes["state_dir"] = flags.state_dir
    if flags.log_level is not None:
        changes["log_level"] = flags.log_level
    if changes:
        agent = replace(agent, **changes)
    if flags.coordinator is not None:
        try:
            split_address(flags.coordinator)
        except ValueError:
            raise DaemonConfigError(
                f"--coordinator: expected HOST:PORT, got {flags.coordinator!r}"
            ) from None
        coordinator = replace(coordinator, address=flags.coordinator)
    if flags.insecure:
        coordinator = replace(coordinator, insecure=True)
    config = replace(config, agent=agent, coordinator=coordinator)
    try:
        validate_node_id(config.node_id)
    except ValueError as exc:
        raise DaemonConfigError(f"node id: {exc}") from None
    if not config.coordinator.address:
        raise DaemonConfigError(
            "no coordinator address: give --coordinator HOST:PORT or [coordinator] address"
        )
    return config


def stream_settings(config: AgentConfig) -> StreamSettings:
    coordinator: CoordinatorSettings = config.coordinator
    return StreamSettings(
        address=coordinator.address,
        insecure=coordinator.insecure,
        ca_cert=coordinator.ca_cert,
        client_cert=coordinator.client_cert,
        client_key=coordinator.client_key,
        heartbeat_interval_seconds=config.agent.interval_seconds,
        backoff_cap_seconds=coordinator.reconnect_max_seconds,
    )


def inventory_message(inventory: CpuInventory) -> telemetry_pb2.Inventory:
    """The Hello's inventory from the cpuinfo collector's reading (unknown fields unset)."""
    processor = inventory.processor
    return telemetry_pb2.Inventory(
        cpu_model=processor.model or "",
        cpu_flags=processor.flags or (),
        cpu_cores=inventory.cores or 0,
        cpu_threads=inventory.threads or 0,
        cpu_sockets=inventory.sockets or 0,
        arch=os.uname().machine,
        memory_total_bytes=inventory.memory_total_bytes or 0,
        numa_nodes=[
            telemetry_pb2.NumaNode(
                node_index=node.node,
                cpu_threads=len(node.cpus or ()),
                memory_total_bytes=node.memory_total_bytes or 0,
            )
            for node in inventory.numa_nodes
        ],
        kernel=inventory.kernel_release,
    )


def read_machine_id(path: Path = MACHINE_ID_PATH) -> str:
    """/etc/machine-id when it holds 32 hex characters, else "" (unknown)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return ""
    return text if len(text) == 32 and all(c in "0123456789abcdef" for c in text) else ""


def read_boot_id(procfs_root: Path) -> str:
    try:
        return (procfs_root / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


class AgentDaemon:
    """Owns every part of a running agent; :meth:`run` until :meth:`request_stop`."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        reload_config: Callable[[], AgentConfig] | None = None,
        metrics_listen: str | None = None,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        """``reload_config`` re-reads the file with the same flags (SIGHUP); None: no
        reloading. ``metrics_listen`` HOST:PORT serves Prometheus /metrics."""
        self.config = config
        self.state_dir = config.agent.state_dir
        self._reload_config = reload_config
        self._metrics_listen = metrics_listen
        self._flush_seconds = flush_seconds
        self._wake = threading.Event()
        self._stopping = False
        self._reload_requested = False
        self._log = LogOnce(log)
        self._started = time.time()
        self._machine_id = read_machine_id()
        self._inventory: telemetry_pb2.Inventory | None = None
        self.health = HealthState(
            config.node_id,
            machine_id=self._machine_id,
            coordinator_address=config.coordinator.address,
        )
        self.spool: Spool | None = None
        self.stream: StreamClient | None = None
        self._credentials: Any = None
        self._health_server: HealthServer | None = None
        self._metrics_server: Any = None
        self.runner: CollectionRunner | None = None
        self.intelligence: NodeIntelligence | None = None
        self.installer: ModelInstaller | None = None

    # -- control (any thread, signal handlers) -----------------------------------------

    def request_stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def request_reload(self) -> None:
        self._reload_requested = True
        self._wake.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop, SIGHUP reloads (main thread only)."""

        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("stopping on signal", extra={"signal": signal.Signals(signum).name})
            self.request_stop()

        def reload(_signum: int, _frame: FrameType | None) -> None:
            self.request_reload()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    # -- life cycle --------------------------------------------------------------------

    def run(self) -> int:
        """Start everything, cycle until stopped, shut down; the exit status."""
        try:
            self._credentials = load_credentials(stream_settings(self.config))
        except TlsConfigError as exc:
            log.error("cannot use the TLS files for the coordinator", extra={"error": str(exc)})
            return EXIT_CONFIG
        self._start()
        try:
            self._loop()
        finally:
            self._shutdown()
        return 0

    def _start(self) -> None:
        config = self.config
        log.info(
            "agent starting",
            extra={
                "node_id": config.node_id,
                "coordinator": config.coordinator.address,
                "insecure": config.coordinator.insecure,
                "state_dir": str(self.state_dir),
                "interval_seconds": config.agent.interval_seconds,
                "collectors": config.enabled_collectors(),
                "version": __version__,
            },
        )
        if config.coordinator.insecure:
            log.warning("plaintext connection to the coordinator (--insecure); loopback only")
        self._start_health_server()
        self._start_metrics_server()
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            log.error(
                "cannot create the state directory; retrying with every cycle",
                extra={"state_dir": str(self.state_dir), "error": str(exc)},
            )
        self.runner = CollectionRunner(config)
        # Read the CPU inventory now, so the first Hello (sent as soon as the stream
        # connects, possibly before the first collection) already tells the coordinator
        # the node's capacity; placement cannot use a node whose capacity is unknown.
        self._refresh_inventory()
        self.intelligence = NodeIntelligence(config, state_dir=self.state_dir)
        self.intelligence.restore(time.time())
        self.installer = ModelInstaller(
            self.intelligence,
            load_trusted_keys(config.coordinator.trusted_model_keys),
            self.state_dir,
            on_change=self._models_changed,
        )
        self.installer.load_persisted()
        scorer = self.intelligence.scorer
        if scorer is not None:
            self._models_changed(scorer.models)
        self._open_spool()

    def _start_health_server(self) -> None:
        if not self.config.health.enabled:
            return
        server = HealthServer.from_settings(self.health, self.config.health)
        try:
            server.start()
        except Exception as exc:  # HealthServerError or an OS error: run without it
            log.error(
                "health socket unavailable; the agent runs without it",
                extra={"socket": str(self.config.health.socket_path), "error": str(exc)},
            )
            return
        self._health_server = server

    def _start_metrics_server(self) -> None:
        if not self._metrics_listen:
            return
        try:
            host, port = split_address(self._metrics_listen)
            server, _thread = start_http_server(port, addr=host.strip("[]"))
        except (OSError, ValueError) as exc:
            log.error(
                "metrics endpoint unavailable; the agent runs without it",
                extra={"listen": self._metrics_listen, "error": str(exc)},
            )
            return
        self._metrics_server = server
        log.info("metrics endpoint listening", extra={"listen": self._metrics_listen})

    def _open_spool(self) -> Spool | None:
        """The spool, opened now if it is not yet (and the stream started with it)."""
        if self.spool is not None:
            return self.spool
        coordinator = self.config.coordinator
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            self._spool_problem(
                f"cannot create the state directory {self.state_dir}: {exc.strerror or exc}"
            )
            return None
        try:
            spool = Spool(
                spool_path(self.state_dir),
                max_bytes=coordinator.spool_max_bytes,
                max_age_seconds=coordinator.spool_max_age_seconds,
            )
        except SpoolUnavailable as exc:
            self._spool_problem(exc.reason)
            return None
        self.spool = spool
        LAST_SEQ.set(spool.last_seq)
        self.health.record_spool(depth_frames=spool.depth().frames, last_acked_seq=spool.last_acked)
        assert self.installer is not None
        self.stream = StreamClient(
            stream_settings(self.config),
            spool,
            self._hello,
            health=self.health,
            on_model_update=self.installer.handle,
            credentials=self._credentials,
        )
        self.stream.start()
        return spool

    def _loop(self) -> None:
        next_cycle = time.monotonic()
        last_save = time.monotonic()
        while not self._stopping:
            if self._reload_requested:
                self._reload_requested = False
                self._reload()
            self._cycle()
            if time.monotonic() - last_save >= SAVE_INTERVAL_SECONDS:
                assert self.intelligence is not None
                self.intelligence.save(time.time())
                last_save = time.monotonic()
            # Fixed rate: a slow cycle does not shift the next one; an overrun starts
            # the next one at once.
            next_cycle = max(next_cycle + self.config.agent.interval_seconds, time.monotonic())
            while not self._stopping and not self._reload_requested:
                remaining = next_cycle - time.monotonic()
                if remaining <= 0:
                    break
                self._wake.wait(remaining)
                self._wake.clear()

    def _cycle(self) -> None:
        began = time.monotonic()
        try:
            result = self._produce_frame()
        except Exception:  # a bug in one cycle must not end the agent
            log.exception("cycle failed; the next one runs as planned")
            result = "error"
        CYCLES.labels(result).inc()
        CYCLE_DURATION.set(time.monotonic() - began)

    def _produce_frame(self) -> str:
        assert self.runner is not None and self.intelligence is not None
        sample = self.runner.collect()
        scores = self.intelligence.observe(sample)
        snapshot = self.intelligence.last_snapshot
        assert snapshot is not None
        self._note_inventory(sample)
        scorer = self.intelligence.scorer
        models = model_versions(scorer.models) if scorer is not None else {}
        spool = self._open_spool()
        if spool is None:
            return "spool_error"
        built: list[telemetry_pb2.Frame] = []
        interval = self.config.agent.interval_seconds

        def make_frame(seq: int) -> bytes:
            frame = build_frame(
                seq, sample, snapshot, scores, models=models, interval_seconds=interval
            )
            built.append(frame)
            return frame.SerializeToString()

        try:
            seq = spool.append(make_frame, created=sample.timestamp_seconds)
        except SpoolUnavailable as exc:
            self._spool_problem(exc.reason)
            self.health.record_spool(depth_frames=spool.depth().frames, error=exc.reason)
            return "spool_error"
        self._log.recovered("spool", "the spool stores frames again", path=str(spool.path))
        LAST_SEQ.set(seq)
        self.health.record_cycle(sample, scores, built[-1])
        self.health.record_spool(depth_frames=spool.depth().frames, last_acked_seq=spool.last_acked)
        if self.stream is not None:
            self.stream.notify()
        return "ok"

    def _spool_problem(self, reason: str) -> None:
        self._log.problem(
            "spool",
            logging.ERROR,
            "the spool cannot store frames; collecting on and retrying every cycle",
            state_dir=str(self.state_dir),
            error=reason,
        )
        if self.spool is None:
            self.health.record_spool(depth_frames=0, error=reason)

    def _note_inventory(self, sample: NodeSample) -> None:
        report = sample.reports.get("cpuinfo")
        if report is not None and report.ok and isinstance(report.data, CpuInventory):
            self._inventory = inventory_message(report.data)

    def _models_changed(self, models: ModelSet) -> None:
        self.health.record_models(model_versions(models).values())

    def _hello(self) -> telemetry_pb2.Hello:
        """The Hello for a new stream (the stream client adds the spool's seqs)."""
        config = self.config
        scorer = self.intelligence.scorer if self.intelligence is not None else None
        capabilities = [f"collector:{name}" for name in config.enabled_collectors()]
        if scorer is not None:
            capabilities.append("inference:onnx")
        started = telemetry_pb2.Hello().agent_started_at
        started.FromNanoseconds(round(self._started * 1e9))
        hello = telemetry_pb2.Hello(
            contract_minor_version=CONTRACT_MINOR_VERSION,
            node=common_pb2.NodeId(host=config.node_id, machine_id=self._machine_id),
            agent_version=__version__,
            capabilities=capabilities,
            models_loaded=model_versions(scorer.models).values() if scorer is not None else (),
            feature_schema_version=NODE.version,
            feature_schema_hash=NODE.hash,
            agent_started_at=started,
            boot_id=read_boot_id(config.agent.procfs_root),
        )
        inventory = self._inventory
        if inventory is not None:
            hello.inventory.CopyFrom(inventory)
        return hello

    # -- reload ------------------------------------------------------------------------

    def _reload(self) -> None:
        if self._reload_config is None:
            log.info("reload requested, but this daemon has no config file to re-read")
            return
        try:
            new = self._reload_config()
        except (ConfigError, DaemonConfigError) as exc:
            log.error(
                "config reload failed; keeping the running configuration",
                extra={"error": str(exc)},
            )
            return
        except Exception:
            log.exception("config reload failed; keeping the running configuration")
            return
        old = self.config
        restart_only = [
            name
            for name, before, after in (
                ("agent.node_id", old.node_id, new.node_id),
                ("agent.state_dir", old.agent.state_dir, new.agent.state_dir),
                ("coordinator", _stream_part(old), _stream_part(new)),
                ("health", old.health, new.health),
                ("scoring", old.scoring, new.scoring),
            )
            if before != after
        ]
        if restart_only:
            log.warning(
                "these settings changed and take effect after a restart",
                extra={"settings": restart_only},
            )
        logging.getLogger().setLevel(new.agent.log_level.upper())
        collectors_changed = (
            new.collectors != old.collectors
            or new.agent.sysfs_root != old.agent.sysfs_root
            or new.agent.procfs_root != old.agent.procfs_root
            or new.agent.collector_timeout_seconds != old.agent.collector_timeout_seconds
        )
        # Keep what needs a restart as it runs; take the rest.
        self.config = replace(
            new,
            agent=replace(new.agent, node_id=old.agent.node_id, state_dir=old.agent.state_dir),
            coordinator=replace(
                old.coordinator, trusted_model_keys=new.coordinator.trusted_model_keys
            ),
            health=old.health,
            scoring=old.scoring,
        )
        if self.installer is not None:
            self.installer.trusted_keys = load_trusted_keys(new.coordinator.trusted_model_keys)
        if collectors_changed and self.runner is not None:
            self.runner.close()
            self.runner = CollectionRunner(self.config)
        else:
            self._refresh_inventory()
        log.info(
            "configuration reloaded",
            extra={
                "source": new.source,
                "interval_seconds": self.config.agent.interval_seconds,
                "collectors": self.config.enabled_collectors(),
                "collectors_restarted": collectors_changed,
            },
        )

    def _refresh_inventory(self) -> None:
        collector = self.runner.collectors.get("cpuinfo") if self.runner is not None else None
        if not isinstance(collector, CpuInfoCollector):
            return
        try:
            self._inventory = inventory_message(collector.refresh())
        except Exception:
            log.exception("cpu inventory refresh failed; keeping the previous one")

    # -- shutdown ----------------------------------------------------------------------

    def _shutdown(self) -> None:
        if self.stream is not None:
            self.stream.stop(flush_seconds=self._flush_seconds)
        if self.intelligence is not None:
            self.intelligence.save(time.time())
        if self.runner is not None:
            self.runner.close()
        if self.spool is not None:
            depth = self.spool.depth()
            self.spool.close()
            log.info(
                "spool closed",
                extra={"unacknowledged_frames": depth.frames, "last_seq": self.spool.last_seq},
            )
        if self._health_server is not None:
            self._health_server.stop()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        log.info("agent stopped")


def _stream_part(config: AgentConfig) -> CoordinatorSettings:
    """The coordinator settings that need a restart (all but trusted_model_keys)."""
    return replace(config.coordinator, trusted_model_keys=())


def run_daemon(
    config: AgentConfig,
    *,
    reload_config: Callable[[], AgentConfig] | None = None,
    metrics_listen: str | None = None,
) -> int:
    """Run the agent in this (main) thread until SIGTERM/SIGINT; the exit status."""
    daemon = AgentDaemon(config, reload_config=reload_config, metrics_listen=metrics_listen)
    daemon.install_signal_handlers()
    return daemon.run()
