"""``novacron-agent run`` against a fake coordinator (real gRPC on 127.0.0.1).

The daemon runs as a real subprocess on fixture roots (procfs and NUMA sysfs trees,
libvirt's test driver), with its spool, windows and health socket in tmp_path. One test
runs it in-process to reach inside: a spool that cannot be opened or written.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from novacron.agent.collectors.cpuinfo import CpuInfoCollector, CpuInventory
from novacron.agent.config import load_config, parse_config, render_config, with_overrides
from novacron.agent.daemon import (
    AgentDaemon,
    DaemonConfigError,
    RunFlags,
    with_run_flags,
)
from novacron.agent.health_report import assess
from novacron.agent.spool import SPOOL_FILE_NAME, Spool
from novacron.models.schema import NODE
from novacron.protos import telemetry_pb2
from novacron.protos.runtime.tomlconfig import ConfigError
from tests.agent.fake_coordinator import FakeCoordinator, FakeServer
from tests.fixtures.numa import write_numa_tree
from tests.fixtures.processes import console_script, free_port
from tests.fixtures.procfs import write_procfs_tree

AGENT = console_script("novacron-agent")
NODE_ID = "hv-daemon-1"
STOP_SECONDS = 6.0


@dataclass(frozen=True)
class Roots:
    sysfs: Path
    procfs: Path
    config: Path
    socket: Path
    state: Path


@pytest.fixture
def roots(tmp_path: Path) -> Roots:
    sysfs, procfs = tmp_path / "sys", tmp_path / "proc"
    write_numa_tree(sysfs)
    write_procfs_tree(procfs)
    socket = tmp_path / "agent.sock"
    config = tmp_path / "agent.toml"
    config.write_text(
        "[health]\n"
        f'socket_path = "{socket}"\n'
        'socket_group = ""\n'
        "[coordinator]\n"
        "reconnect_max_seconds = 0.5\n"
    )
    return Roots(sysfs, procfs, config, socket, tmp_path / "state")


@pytest.fixture
def coordinator() -> Iterator[tuple[FakeCoordinator, FakeServer]]:
    fake = FakeCoordinator()
    server = FakeServer(fake)
    yield fake, server
    server.stop()


class Agent:
    """``novacron-agent run`` as a subprocess; its JSON log lines in a file."""

    def __init__(
        self, roots: Roots, address: str, log_path: Path, extra: tuple[str, ...] = ()
    ) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [
                AGENT,
                "run",
                "--config",
                str(roots.config),
                "--coordinator",
                address,
                "--node-id",
                NODE_ID,
                "--insecure",
                "--interval",
                "0.5",
                "--state-dir",
                str(roots.state),
                "--libvirt-uri",
                "test:///default",
                "--collectors",
                "host,libvirt",
                "--sysfs-root",
                str(roots.sysfs),
                "--procfs-root",
                str(roots.procfs),
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )

    def logs(self) -> list[dict[str, object]]:
        lines = self.log_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def messages(self) -> list[str]:
        return [str(entry["msg"]) for entry in self.logs()]

    def wait_log(self, message: str, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if message in self.messages():
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> tuple[int, float]:
        """SIGTERM; the exit status and how long the exit took."""
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=STOP_SECONDS + 10)
        finally:
            self._log.close()
        return code, time.monotonic() - began

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


@pytest.fixture
def agents() -> Iterator[list[Agent]]:
    started: list[Agent] = []
    yield started
    for agent in started:
        agent.kill()


def scrape(port: int) -> dict[str, float]:
    """The agent's /metrics as {"name{labels}": value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def contiguous_from_one(seqs: list[int]) -> bool:
    return seqs == list(range(1, len(seqs) + 1))


def test_daemon_streams_stops_on_sigterm_and_continues_after_restart(
    roots: Roots,
    coordinator: tuple[FakeCoordinator, FakeServer],
    agents: list[Agent],
    tmp_path: Path,
) -> None:
    fake, server = coordinator
    first = Agent(roots, server.address, tmp_path / "agent-1.log")
    agents.append(first)
    assert fake.wait_for(lambda: fake.highest(NODE_ID) >= 3, 30), first.messages()
    assert contiguous_from_one(fake.seqs(NODE_ID))
    hello = fake.hellos[0]
    assert hello.node.host == NODE_ID
    assert hello.feature_schema_version == NODE.version
    assert hello.feature_schema_hash == NODE.hash
    assert {"collector:host", "collector:libvirt", "inference:onnx"} <= set(hello.capabilities)
    assert {m.name for m in hello.models_loaded} >= {"disk-failure-7d"}
    frame = telemetry_pb2.Frame.FromString(fake.stored[(NODE_ID, 1)])
    assert frame.seq == 1
    assert frame.node_features.schema_version == NODE.version
    assert len(frame.node_features.values) == len(NODE.features)
    assert [vm.name for vm in frame.vm_features] == ["test"]  # libvirt's test:///default
    assert frame.window.ToMilliseconds() == 500
    assert {s.name for s in frame.collector_statuses} == {"host", "libvirt"}

    code, took = first.stop()
    assert code == 0
    assert took < STOP_SECONDS
    assert "agent stopped" in first.messages()
    stopped_at = fake.highest(NODE_ID)
    assert contiguous_from_one(fake.seqs(NODE_ID))
    with Spool(roots.state / SPOOL_FILE_NAME) as spool:  # flushed before exiting
        assert spool.last_seq == stopped_at
        assert spool.depth().frames == 0
    assert (roots.state / "features.npz").is_file()

    second = Agent(roots, server.address, tmp_path / "agent-2.log")
    agents.append(second)
    assert fake.wait_for(lambda: fake.highest(NODE_ID) >= stopped_at + 2, 30)
    assert contiguous_from_one(fake.seqs(NODE_ID))  # seq continues, no restart at 1
    assert fake.hellos[-1].last_acked_seq == stopped_at
    assert fake.hellos[-1].last_produced_seq >= stopped_at

    health = subprocess.run(
        [AGENT, "health", "--socket", str(roots.socket), "--json"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert health.returncode == 0, health.stderr
    report = json.loads(health.stdout)
    assert report["node"]["host"] == NODE_ID
    assert report["coordinator_connection"]["state"] == "CONNECTION_STATE_CONNECTED"
    assert report["coordinator_connection"]["address"] == server.address
    assert report["last_frame_seq"] > stopped_at

    # SIGHUP with a broken config file: logged, the running configuration stays.
    good = roots.config.read_text()
    roots.config.write_text(good + "[coordinator]\nbogus = 1\n")
    second.process.send_signal(signal.SIGHUP)
    assert second.wait_log("config reload failed; keeping the running configuration")
    before = fake.highest(NODE_ID)
    assert fake.wait_for(lambda: fake.highest(NODE_ID) >= before + 2, 10)
    roots.config.write_text(good)
    second.process.send_signal(signal.SIGHUP)
    assert second.wait_log("configuration reloaded")
    assert second.process.poll() is None

    code, took = second.stop()
    assert code == 0
    assert took < STOP_SECONDS
    assert contiguous_from_one(fake.seqs(NODE_ID))


def test_daemon_spools_while_coordinator_is_absent_and_delivers_later(
    roots: Roots, agents: list[Agent], tmp_path: Path
) -> None:
    fake = FakeCoordinator()
    server = FakeServer(fake)
    server.stop()  # a known port with nobody listening
    metrics_port = free_port()
    agent = Agent(
        roots,
        server.address,
        tmp_path / "agent.log",
        extra=("--metrics-listen", f"127.0.0.1:{metrics_port}"),
    )
    agents.append(agent)
    spool_file = roots.state / SPOOL_FILE_NAME

    def spooled() -> int:
        if not spool_file.exists():
            return 0
        with sqlite3.connect(f"file:{spool_file}?mode=ro", uri=True, timeout=2) as db:
            try:
                return int(db.execute("SELECT count(*) FROM frames").fetchone()[0])
            except sqlite3.OperationalError:
                return 0

    deadline = time.monotonic() + 30
    while spooled() < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert spooled() >= 3
    assert agent.process.poll() is None
    assert fake.hellos == []
    waiting = spooled()

    server.start()  # the coordinator appears, on the same port
    try:
        assert fake.wait_for(lambda: fake.highest(NODE_ID) >= waiting + 1, 30)
        assert contiguous_from_one(fake.seqs(NODE_ID))
        # One stream: every frame sent once, in order.
        assert fake.received_seqs(NODE_ID) == fake.seqs(NODE_ID)[: len(fake.received)]
        assert max(fake.batch_sizes) > 1  # the backlog went in batches
        assert "coordinator stream down; retrying" in agent.messages()
        # The fake stores a frame before its ack reaches the agent: wait for the agent
        # to have counted the acks rather than reading its metrics at one instant.
        acked_by = time.monotonic() + 30
        metrics = scrape(metrics_port)
        while (
            metrics.get("novacron_agent_stream_frames_acked_total", 0.0) < waiting + 1
            and time.monotonic() < acked_by
        ):
            time.sleep(0.1)
            metrics = scrape(metrics_port)
        assert metrics["novacron_agent_stream_connected"] == 1.0
        assert metrics['novacron_agent_cycles_total{result="ok"}'] >= waiting + 1
        assert metrics["novacron_agent_stream_frames_acked_total"] >= waiting + 1
        assert metrics["novacron_agent_last_seq"] >= waiting + 1
        assert "novacron_agent_spool_depth_frames" in metrics
        code, _ = agent.stop()
        assert code == 0
    finally:
        server.stop()


def test_spool_trouble_is_logged_once_and_collection_goes_on(
    tmp_path: Path,
    coordinator: tuple[FakeCoordinator, FakeServer],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, server = coordinator
    sysfs, procfs, state = tmp_path / "sys", tmp_path / "proc", tmp_path / "state"
    write_numa_tree(sysfs)
    write_procfs_tree(procfs)
    state.write_text("a file where the state directory should be")
    config = with_overrides(
        parse_config(
            {
                "agent": {
                    "node_id": NODE_ID,
                    "interval_seconds": 0.2,
                    "state_dir": str(state),
                    "sysfs_root": str(sysfs),
                    "procfs_root": str(procfs),
                },
                "health": {"enabled": False},
                "coordinator": {
                    "address": server.address,
                    "insecure": True,
                    "reconnect_max_seconds": 0.5,
                },
            },
            "test",
        ),
        only_collectors=["host", "cpuinfo"],
    )
    refreshes: list[float] = []
    real_refresh = CpuInfoCollector.refresh

    def counting_refresh(self: CpuInfoCollector) -> CpuInventory:
        refreshes.append(time.time())
        return real_refresh(self)

    monkeypatch.setattr(CpuInfoCollector, "refresh", counting_refresh)
    faster = replace(config, agent=replace(config.agent, interval_seconds=0.1))
    daemon = AgentDaemon(config, reload_config=lambda: faster, flush_seconds=1.0)
    thread = threading.Thread(target=daemon.run, daemon=True)
    with caplog.at_level(logging.INFO):
        thread.start()
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and daemon.health.snapshot().spool_error == "":
                time.sleep(0.05)
            assert "cannot" in daemon.health.snapshot().spool_error
            time.sleep(1.0)  # several more failing cycles
            assert thread.is_alive()
            assert _messages(caplog).count(SPOOL_PROBLEM) == 1
            assert "cycle failed; the next one runs as planned" not in _messages(caplog)

            state.unlink()  # the disk is fixed: the next cycle opens the spool
            assert fake.wait_for(lambda: fake.highest(NODE_ID) >= 2, 15)
            assert daemon.health.snapshot().spool_error == ""
            assert "the spool stores frames again" in _messages(caplog)
            hello = fake.hellos[0]
            assert [n.cpu_threads for n in hello.inventory.numa_nodes] == [8, 8]
            assert [n.memory_total_bytes for n in hello.inventory.numa_nodes] == [32 * 2**30] * 2
            assert hello.inventory.kernel

            # Another writer holds the database: appends fail (after the busy timeout).
            assert daemon.spool is not None
            blocker = sqlite3.connect(daemon.spool.path, timeout=5, isolation_level=None)
            blocker.execute("BEGIN EXCLUSIVE")
            try:
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and "locked" not in (
                    daemon.health.snapshot().spool_error
                ):
                    time.sleep(0.05)
                snapshot = daemon.health.snapshot()
                assert "locked" in snapshot.spool_error
                verdict = assess(snapshot)
                assert verdict.status == "degraded"
                assert any("spool cannot store frames" in r for r in verdict.reasons)
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
            before = fake.highest(NODE_ID)
            assert fake.wait_for(lambda: fake.highest(NODE_ID) >= before + 2, 15)
            assert daemon.health.snapshot().spool_error == ""
            assert contiguous_from_one(fake.seqs(NODE_ID))  # a refused frame takes no seq

            # SIGHUP's work: the new interval applies, the CPU inventory is read again.
            read_before = len(refreshes)
            daemon.request_reload()
            deadline = time.monotonic() + 10
            while "configuration reloaded" not in _messages(caplog) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert daemon.config.agent.interval_seconds == 0.1
            assert len(refreshes) == read_before + 1
        finally:
            daemon.request_stop()
            thread.join(15)
    assert not thread.is_alive()
    assert _messages(caplog).count(SPOOL_PROBLEM) == 2  # once per outage


SPOOL_PROBLEM = "the spool cannot store frames; collecting on and retrying every cycle"


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_run_flags_override_the_config() -> None:
    config = parse_config(
        {"agent": {"node_id": "from-file"}, "coordinator": {"address": "file:1"}}, "test"
    )
    applied = with_run_flags(
        config,
        RunFlags(
            coordinator="127.0.0.1:7443",
            node_id="hv-9",
            interval_seconds=2.5,
            state_dir=Path("/tmp/x"),
            insecure=True,
        ),
    )
    assert applied.node_id == "hv-9"
    assert applied.agent.interval_seconds == 2.5
    assert applied.agent.state_dir == Path("/tmp/x")
    assert applied.coordinator.address == "127.0.0.1:7443"
    assert applied.coordinator.insecure
    assert with_run_flags(config, RunFlags()).coordinator.address == "file:1"
    with pytest.raises(DaemonConfigError, match="no coordinator address"):
        with_run_flags(parse_config({}, "test"), RunFlags(node_id="hv-1"))
    with pytest.raises(DaemonConfigError, match="--coordinator"):
        with_run_flags(config, RunFlags(coordinator="no-port"))
    with pytest.raises(DaemonConfigError, match="node id"):
        with_run_flags(config, RunFlags(node_id="bad id/with slash"))


def test_run_exits_2_on_a_config_error(tmp_path: Path) -> None:
    missing_certs = subprocess.run(
        [
            AGENT,
            "run",
            "--coordinator",
            "127.0.0.1:1",
            "--node-id",
            NODE_ID,
            "--state-dir",
            str(tmp_path / "state"),
            "--config",
            str(_write(tmp_path / "a.toml", f'[coordinator]\nca_cert = "{tmp_path}/nope.crt"\n')),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ},
    )
    assert missing_certs.returncode == 2
    assert "nope.crt: file not found" in missing_certs.stderr
    no_address = subprocess.run(
        [AGENT, "run", "--node-id", NODE_ID, "--insecure"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert no_address.returncode == 2
    assert "no coordinator address" in no_address.stderr


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_coordinator_section_is_validated_and_round_trips(tmp_path: Path) -> None:
    config = parse_config(
        {
            "coordinator": {
                "address": "[::1]:7443",
                "trusted_model_keys": ["/etc/novacron/tls/a.pub", "/etc/novacron/tls/b.pub"],
                "spool_max_bytes": 1024,
            }
        },
        "test",
    )
    assert config.coordinator.trusted_model_keys == (
        Path("/etc/novacron/tls/a.pub"),
        Path("/etc/novacron/tls/b.pub"),
    )
    assert config.coordinator.ca_cert == Path("/etc/novacron/tls/ca.crt")
    assert not config.coordinator.insecure
    rendered = _write(tmp_path / "agent.toml", render_config(config))
    assert load_config(rendered).coordinator == config.coordinator
    for table, key in (
        ({"address": "no-port"}, "coordinator.address"),
        ({"address": "host:99999"}, "coordinator.address"),
        ({"spool_max_bytes": 0}, "coordinator.spool_max_bytes"),
        ({"reconnect_max_seconds": -1}, "coordinator.reconnect_max_seconds"),
        ({"insecure": "yes"}, "coordinator.insecure"),
        ({"tls": 1}, "coordinator.tls"),
    ):
        with pytest.raises(ConfigError) as error:
            parse_config({"coordinator": table}, "agent.toml")
        assert error.value.key == key
