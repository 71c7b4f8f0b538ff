"""The agent's node-health socket: a real gRPC server on a Unix socket in tmp_path.

The state it serves is the real pipeline's: samples of a fixture node collected by the
real collectors, scored by tiny ONNX models, turned into a frame by ``build_frame``.
``novacron-agent health`` runs as a real subprocess against it.
"""

from __future__ import annotations

import grp
import json
import logging
import os
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2 as grpc_health_pb2
from grpc_health.v1 import health_pb2_grpc as grpc_health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from novacron.agent.config import HealthSettings, parse_config
from novacron.agent.features.store import NodeFeatures
from novacron.agent.frames import build_frame, model_versions
from novacron.agent.health_client import health_json, render_health
from novacron.agent.health_report import HealthState, assess, build_node_health
from novacron.agent.health_server import (
    GRPC_HEALTH_SERVICE_NAME,
    HEALTH_SERVICE_NAME,
    HealthServer,
    HealthServerError,
)
from novacron.agent.sample import CollectorReport, NodeSample
from novacron.agent.scoring import NodeScores, Scorer
from novacron.protos import CONTRACT_MINOR_VERSION, common_pb2, health_pb2, telemetry_pb2
from novacron.protos.health_pb2_grpc import HealthServiceStub
from novacron.protos.runtime.tomlconfig import ConfigError
from tests.agent.node_cycles import collect_cycles
from tests.agent.tiny_models import write_tiny_models
from tests.fixtures.processes import console_script

AGENT = console_script("novacron-agent")
FRAME_SEQ = 7
COORDINATOR = "coord.test:7443"


@dataclass(frozen=True)
class Cycle:
    sample: NodeSample
    scores: NodeScores
    frame: telemetry_pb2.Frame
    models: tuple[common_pb2.ModelVersion, ...]


@pytest.fixture(scope="module")
def cycle(tmp_path_factory: pytest.TempPathFactory) -> Cycle:
    """Two cycles of the fixture node (one failing disk), scored and framed."""
    root = tmp_path_factory.mktemp("health")
    samples = collect_cycles(root / "node", cycles=2, disks=6, failing_disks=1)
    features = NodeFeatures(samples[0].node_id)
    for sample in samples:
        features.update(sample)
    scorer = Scorer.load(write_tiny_models(root / "models").directory)
    snapshot = features.snapshot()
    scores = scorer.score(snapshot)
    versions = model_versions(scorer.models)
    frame = build_frame(FRAME_SEQ, samples[-1], snapshot, scores, models=versions)
    return Cycle(samples[-1], scores, frame, tuple(versions.values()))


def _state(cycle: Cycle) -> HealthState:
    state = HealthState(cycle.sample.node_id, machine_id="0" * 32)
    state.record_models(cycle.models)
    state.record_cycle(cycle.sample, cycle.scores, cycle.frame)
    state.record_spool(depth_frames=3, last_acked_seq=FRAME_SEQ - 3)
    state.record_connection("connected", address=COORDINATOR)
    return state


def _other_group() -> tuple[str, int]:
    """A group to hand the socket to: another one than ours when we may (root)."""
    own = os.getgid()
    if os.geteuid() == 0:
        for entry in grp.getgrall():
            if entry.gr_gid != own:
                return entry.gr_name, entry.gr_gid
    return grp.getgrgid(own).gr_name, own


@pytest.fixture
def socket_path(tmp_path: Path) -> Path:
    return tmp_path / "run" / "agent.sock"


@pytest.fixture
def server(cycle: Cycle, socket_path: Path) -> Iterator[HealthServer]:
    with HealthServer(_state(cycle), socket_path, socket_group=_other_group()[0]) as running:
        yield running


@pytest.fixture
def channel(server: HealthServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"unix:{server.socket_path}") as opened:
        yield opened


def _get(
    channel: grpc.Channel, request: health_pb2.GetNodeHealthRequest | None = None
) -> health_pb2.GetNodeHealthResponse:
    return HealthServiceStub(channel).GetNodeHealth(
        request or health_pb2.GetNodeHealthRequest(), timeout=5
    )


def agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AGENT, *args], capture_output=True, text=True, timeout=60, check=False)


def _stale_socket(path: Path) -> None:
    """What a killed agent leaves behind: a socket file nobody listens on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()


# -- the socket file ---------------------------------------------------------------


def test_socket_is_group_readable_only(server: HealthServer, socket_path: Path) -> None:
    info = os.lstat(socket_path)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o660
    assert info.st_gid == _other_group()[1]
    directory = os.lstat(socket_path.parent)
    assert stat.S_IMODE(directory.st_mode) == 0o750
    assert directory.st_gid == _other_group()[1]


def test_an_existing_directory_keeps_its_mode(cycle: Cycle, tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    with HealthServer(_state(cycle), tmp_path / "agent.sock"):
        assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755


def test_stop_removes_the_socket_and_is_idempotent(cycle: Cycle, socket_path: Path) -> None:
    server = HealthServer(_state(cycle), socket_path)
    server.start()
    assert socket_path.exists()
    server.stop()
    assert not socket_path.exists()
    server.stop()


def test_a_stale_socket_is_replaced(
    cycle: Cycle, socket_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _stale_socket(socket_path)
    socket_path.chmod(0o600)
    caplog.set_level(logging.INFO, logger="novacron.agent.health_server")
    with HealthServer(_state(cycle), socket_path):
        assert "removed a stale health socket" in caplog.messages
        assert stat.S_IMODE(os.lstat(socket_path).st_mode) == 0o660
        with grpc.insecure_channel(f"unix:{socket_path}") as channel:
            assert _get(channel).nodes[0].node.host == cycle.sample.node_id


def test_a_live_agents_socket_is_never_taken(server: HealthServer, cycle: Cycle) -> None:
    with pytest.raises(HealthServerError, match="another process is listening"):
        HealthServer(_state(cycle), server.socket_path).start()
    with grpc.insecure_channel(f"unix:{server.socket_path}") as channel:
        assert _get(channel).nodes[0].node.host == cycle.sample.node_id


def test_a_file_that_is_not_a_socket_is_left_alone(cycle: Cycle, socket_path: Path) -> None:
    socket_path.parent.mkdir()
    socket_path.write_text("precious")
    with pytest.raises(HealthServerError, match="is not a socket"):
        HealthServer(_state(cycle), socket_path).start()
    assert socket_path.read_text() == "precious"


def test_a_missing_group_is_logged_once_and_the_socket_still_serves(
    cycle: Cycle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="novacron.agent.health_server")
    group = "novacron-no-such-group"
    for attempt in range(2):
        path = tmp_path / f"agent{attempt}.sock"
        with HealthServer(_state(cycle), path, socket_group=group):
            assert os.lstat(path).st_gid == os.getegid()
            with grpc.insecure_channel(f"unix:{path}") as channel:
                assert _get(channel).nodes
    warnings = [r for r in caplog.records if getattr(r, "group", None) == group]
    assert len(warnings) == 1
    assert "group does not exist" in warnings[0].getMessage()


def test_a_refused_chown_is_logged_and_not_fatal(
    cycle: Cycle, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unprivileged agent outside the group: the kernel's EPERM, simulated."""

    def refuse(path: object, uid: int, gid: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr("novacron.agent.health_server.os.chown", refuse)
    caplog.set_level(logging.WARNING, logger="novacron.agent.health_server")
    group = grp.getgrgid(os.getgid()).gr_name
    path = tmp_path / "agent.sock"
    with HealthServer(_state(cycle), path, socket_group=group):
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o660
    (record,) = [r for r in caplog.records if getattr(r, "group", None) == group]
    assert "cannot give the health socket" in record.getMessage()
    assert record.error == "Operation not permitted"  # type: ignore[attr-defined]


def test_a_socket_path_too_long_for_unix_is_refused(cycle: Cycle, tmp_path: Path) -> None:
    with pytest.raises(HealthServerError, match="longer than 107 bytes"):
        HealthServer(_state(cycle), tmp_path / ("x" * 120))


# -- the services ------------------------------------------------------------------


def test_the_standard_health_check_answers_serving(channel: grpc.Channel) -> None:
    stub = grpc_health_pb2_grpc.HealthStub(channel)
    for service in ("", HEALTH_SERVICE_NAME):
        answer = stub.Check(grpc_health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == grpc_health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as error:
        stub.Check(grpc_health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_not_serving_can_be_announced(server: HealthServer, channel: grpc.Channel) -> None:
    server.set_serving(False)
    stub = grpc_health_pb2_grpc.HealthStub(channel)
    answer = stub.Check(grpc_health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert answer.status == grpc_health_pb2.HealthCheckResponse.NOT_SERVING


def test_reflection_lists_and_describes_our_services(channel: grpc.Channel) -> None:
    database = ProtoReflectionDescriptorDatabase(channel)
    services = set(database.get_services())
    assert {
        HEALTH_SERVICE_NAME,
        GRPC_HEALTH_SERVICE_NAME,
        "grpc.reflection.v1alpha.ServerReflection",
    } <= services
    described = database.FindFileContainingSymbol(HEALTH_SERVICE_NAME)
    assert described.name == "novacron/protos/health.proto"
    assert "novacron/protos/common.proto" in described.dependency
    # The dependency resolves too, so grpcurl can decode every message.
    assert database.FindFileByName("novacron/protos/common.proto").package == "novacron.v1"


def test_get_node_health_returns_what_the_state_holds(channel: grpc.Channel, cycle: Cycle) -> None:
    header = common_pb2.RequestHeader(request_id="req-42", contract_minor_version=1)
    response = _get(channel, health_pb2.GetNodeHealthRequest(header=header))
    assert response.header.request_id == "req-42"
    assert response.header.contract_minor_version == CONTRACT_MINOR_VERSION
    assert response.header.server.startswith("novacron-agent/")
    (node,) = response.nodes
    frame = cycle.frame
    assert node.node.host == cycle.sample.node_id
    assert node.node.machine_id == "0" * 32
    assert node.last_frame_seq == FRAME_SEQ
    assert node.last_seen_at == frame.observed_at
    assert node.latest_scores == frame.scores
    assert len(node.latest_scores.failure_predictions) == len(cycle.scores.failure_predictions)
    assert node.unavailable_devices == frame.unavailable_devices
    assert node.spool_depth_frames == 3
    link = node.coordinator_connection
    assert link.state == health_pb2.CONNECTION_STATE_CONNECTED
    assert link.address == COORDINATOR
    assert link.last_acked_seq == FRAME_SEQ - 3
    assert link.last_error == ""
    assert abs(link.since.ToNanoseconds() / 1e9 - time.time()) < 60
    assert list(node.models_loaded) == list(cycle.models)
    assert {m.name for m in node.models_loaded} == {
        "node-failure-30m",
        "node-failure-24h",
        "disk-failure-7d",
        "node-anomaly",
        "vm-anomaly",
    }
    assert all(len(m.sha256) == 64 for m in node.models_loaded)
    assert node.agent_version


def test_collector_statuses_carry_their_last_success(channel: grpc.Channel, cycle: Cycle) -> None:
    (node,) = _get(channel).nodes
    assert [s.name for s in node.collector_statuses] == list(cycle.sample.reports)
    for status in node.collector_statuses:
        report = cycle.sample.reports[status.name]
        assert status.ok is report.ok
        assert status.duration_seconds == pytest.approx(report.duration_seconds or 0.0)
        assert status.HasField("last_success_at")
        expected = report.collected_at_seconds or cycle.sample.timestamp_seconds
        assert status.last_success_at.ToNanoseconds() / 1e9 == pytest.approx(expected, abs=1e-6)


def test_the_failing_disk_makes_the_node_at_risk(channel: grpc.Channel, cycle: Cycle) -> None:
    (node,) = _get(channel).nodes
    alerts = [p for p in cycle.scores.failure_predictions if p.alert]
    assert alerts, "the fixture's failing disk should reach the tiny disk model's threshold"
    assert node.status == health_pb2.HEALTH_STATUS_AT_RISK
    disk = next(p for p in alerts if p.scope == "disk")
    assert any(
        disk.label in reason and "alert threshold" in reason for reason in node.status_reasons
    )
    wire = next(
        p
        for p in node.latest_scores.failure_predictions
        if p.target.kind == common_pb2.SUBJECT_KIND_DISK and p.target.id == disk.subject
    )
    assert wire.probability == pytest.approx(disk.probability)
    assert wire.ci_level == pytest.approx(0.95)
    assert wire.model.name == "disk-failure-7d"
    assert len(wire.model.sha256) == 64
    assert [f.feature for f in wire.contributing_factors] == [
        f.feature for f in disk.contributing_factors
    ]


def test_another_nodes_health_is_not_found(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as error:
        _get(channel, health_pb2.GetNodeHealthRequest(node=common_pb2.NodeId(host="somebody-else")))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert "somebody-else" in error.value.details()


def test_list_predictions_filters_and_pages(channel: grpc.Channel, cycle: Cycle) -> None:
    stub = HealthServiceStub(channel)
    disks = health_pb2.ListPredictionsRequest(
        target_kinds=[common_pb2.SUBJECT_KIND_DISK], page=common_pb2.PageRequest(page_size=4)
    )
    first = stub.ListPredictions(disks, timeout=5)
    disks.page.page_token = first.next_page_token
    second = stub.ListPredictions(disks, timeout=5)
    records = [*first.predictions, *second.predictions]
    assert (len(first.predictions), first.next_page_token, second.next_page_token) == (4, "4", "")
    assert len(records) == sum(p.scope == "disk" for p in cycle.scores.failure_predictions)
    probabilities = [r.prediction.probability for r in records]
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(r.frame_seq == FRAME_SEQ for r in records)
    likely = stub.ListPredictions(health_pb2.ListPredictionsRequest(min_probability=0.5), timeout=5)
    assert {r.prediction.target.id for r in likely.predictions} == {
        p.subject for p in cycle.scores.failure_predictions if p.probability >= 0.5
    }
    with pytest.raises(grpc.RpcError) as error:
        stub.ListPredictions(
            health_pb2.ListPredictionsRequest(page=common_pb2.PageRequest(page_token="x")),
            timeout=5,
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_list_anomalies_follows_the_frame(channel: grpc.Channel, cycle: Cycle) -> None:
    answer = HealthServiceStub(channel).ListAnomalies(health_pb2.ListAnomaliesRequest(), timeout=5)
    assert sorted(r.anomaly.subject.id for r in answer.anomalies) == sorted(
        a.subject.id for a in cycle.frame.scores.anomalies
    )


# -- the state and the status ------------------------------------------------------


def test_before_the_first_frame_the_status_is_unknown() -> None:
    node = build_node_health(HealthState("hv-1").snapshot())
    assert node.status == health_pb2.HEALTH_STATUS_UNKNOWN
    assert list(node.status_reasons) == ["no frame produced yet"]
    assert not node.HasField("last_seen_at")
    assert node.coordinator_connection.state == health_pb2.CONNECTION_STATE_DISCONNECTED


def test_an_empty_answer_renders_without_data() -> None:
    node = build_node_health(HealthState("hv-1", clock=lambda: 1000.0).snapshot())
    text = render_health(node, now=1030.0)
    assert text.startswith("node hv-1  UNKNOWN\n  because  no frame produced yet\n")
    assert "last sample never, frame seq 0" in text
    assert "connection DISCONNECTED since 1970-01-01 00:16:40 UTC (30 s ago)" in text
    assert "no collection cycle yet" in text
    assert json.loads(health_json(node))["status"] == "HEALTH_STATUS_UNKNOWN"


def test_failed_collectors_and_spool_errors_degrade_the_node(cycle: Cycle) -> None:
    reports = dict(cycle.sample.reports)
    reports["smart"] = CollectorReport("smart", False, None, "timed out: still running", None)
    sample = NodeSample(cycle.sample.node_id, cycle.sample.timestamp_seconds, reports)
    calm = NodeScores(cycle.scores.timestamp_seconds, (), (), None, None, (), 0.0)
    frame = telemetry_pb2.Frame()
    frame.CopyFrom(cycle.frame)
    frame.collector_statuses[[s.name for s in frame.collector_statuses].index("smart")].CopyFrom(
        common_pb2.CollectorStatus(name="smart", ok=False, error="timed out: still running")
    )
    state = HealthState(sample.node_id)
    state.record_cycle(cycle.sample, calm, cycle.frame)  # smart worked once ...
    state.record_cycle(sample, calm, frame)  # ... then timed out
    state.record_spool(depth_frames=10, error="database or disk is full")
    snapshot = state.snapshot()
    verdict = assess(snapshot)
    assert verdict.status == "degraded"
    assert "collector smart failed: timed out: still running" in verdict.reasons
    assert "spool cannot store frames: database or disk is full" in verdict.reasons
    smart = next(s for s in build_node_health(snapshot).collector_statuses if s.name == "smart")
    assert not smart.ok
    assert smart.HasField("last_success_at")  # from the cycle before
    state.record_spool(depth_frames=0)
    assert "spool cannot store frames" not in " ".join(assess(state.snapshot()).reasons)


def test_connection_since_moves_only_on_a_change_and_acks_never_go_back() -> None:
    now = [1000.0]
    state = HealthState("hv-1", clock=lambda: now[0], coordinator_address=COORDINATOR)
    now[0] = 1010.0
    state.record_connection("connecting")
    now[0] = 1020.0
    state.record_connection("connecting", error="connection refused")
    link = state.snapshot().link
    assert (link.state, link.since_seconds, link.last_error) == (
        "connecting",
        1010.0,
        "connection refused",
    )
    assert link.address == COORDINATOR
    now[0] = 1030.0
    state.record_connection("connected", error="ignored while connected")
    assert state.snapshot().link == type(link)("connected", 1030.0, COORDINATOR, "")
    state.record_spool(depth_frames=5, last_acked_seq=40)
    state.record_spool(depth_frames=4, last_acked_seq=38)
    snapshot = state.snapshot()
    assert (snapshot.spool_depth_frames, snapshot.last_acked_seq) == (4, 40)


# -- config ------------------------------------------------------------------------


def test_health_settings_come_from_the_config_file() -> None:
    config = parse_config(
        {"health": {"socket_path": "/run/x/a.sock", "socket_group": "ops", "enabled": False}}, "t"
    )
    assert config.health == HealthSettings(False, Path("/run/x/a.sock"), "ops")
    assert parse_config({}, "t").health.socket_path == Path("/run/novacron-agent/agent.sock")
    with pytest.raises(ConfigError) as error:
        parse_config({"health": {"socket_path": "/" + "x" * 120}}, "t")
    assert error.value.key == "health.socket_path"
    with pytest.raises(ConfigError) as error:
        parse_config({"health": {"socket_group": 5}}, "t")
    assert error.value.key == "health.socket_group"


# -- novacron-agent health -----------------------------------------------------------


@dataclass(frozen=True)
class CliRuns:
    """Every ``novacron-agent health`` run of these tests, started at once (each run is
    a fresh Python process importing the whole agent: seconds apiece)."""

    socket: Path
    dead_socket: Path
    mute_socket: Path
    missing_socket: Path
    done: dict[str, subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def cli(cycle: Cycle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliRuns]:
    root = tmp_path_factory.mktemp("cli")
    live, dead, mute_path = root / "run" / "agent.sock", root / "dead.sock", root / "mute.sock"
    _stale_socket(dead)
    mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # accepts, never speaks gRPC
    mute.bind(str(mute_path))
    mute.listen(8)
    config = root / "agent.toml"
    config.write_text(f'[health]\nsocket_path = "{live}"\n')
    commands = {
        "report": ["--socket", str(live)],
        "json": ["--config", str(config), "--json"],  # the socket from the config file
        "missing": ["--socket", str(root / "agent.sock")],
        "dead": ["--socket", str(dead)],
        "deadline": ["--socket", str(mute_path), "--timeout", "0.5"],
    }
    with HealthServer(_state(cycle), live):
        running = {
            name: subprocess.Popen(
                [AGENT, "health", *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name, args in commands.items()
        }
        done = {}
        for name, process in running.items():
            stdout, stderr = process.communicate(timeout=60)
            done[name] = subprocess.CompletedProcess(
                process.args, process.returncode, stdout, stderr
            )
    mute.close()
    yield CliRuns(live, dead, mute_path, root / "agent.sock", done)


def test_health_command_prints_a_readable_report(cli: CliRuns, cycle: Cycle) -> None:
    done = cli.done["report"]
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith(f"node {cycle.sample.node_id}  AT_RISK\n")
    assert "  because  disk " in out
    disk = max(
        (p for p in cycle.scores.failure_predictions if p.scope == "disk"),
        key=lambda p: p.probability,
    )
    assert f"disk {disk.label}" in out
    assert f"p={disk.probability:.3f} (95% CI {disk.ci_low:.3f}-{disk.ci_high:.3f})" in out
    assert f"  because {disk.contributing_factors[0].feature} = " in out
    assert "== collectors" in out
    for name in cycle.sample.reports:
        assert any(line.split()[:2] == [name, "ok"] for line in out.splitlines())
    assert f"connection CONNECTED to {COORDINATOR} since " in out
    assert (
        f"3 frames waiting for acknowledgement (last frame seq {FRAME_SEQ}, "
        f"last acked seq {FRAME_SEQ - 3})" in out
    )
    assert "disk-failure-7d" in out.split("== models")[1]
    assert done.stderr == ""


def test_health_command_json(cli: CliRuns, cycle: Cycle) -> None:
    done = cli.done["json"]
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["node"]["host"] == cycle.sample.node_id
    assert document["status"] == "HEALTH_STATUS_AT_RISK"
    assert document["spool_depth_frames"] == 3
    assert document["last_frame_seq"] == FRAME_SEQ
    assert document["coordinator_connection"]["state"] == "CONNECTION_STATE_CONNECTED"
    assert [c["name"] for c in document["collector_statuses"]] == list(cycle.sample.reports)
    predictions = document["latest_scores"]["failure_predictions"]
    assert len(predictions) == len(cycle.scores.failure_predictions)
    assert {"probability", "ci_low", "ci_high", "contributing_factors", "model"} <= set(
        predictions[0]
    )


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 3
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("novacron-agent: health: ")
    return lines[0]


def test_health_command_without_an_agent(cli: CliRuns) -> None:
    line = _one_line_error(cli.done["missing"])
    assert f"no agent health socket at {cli.missing_socket}" in line


def test_health_command_against_a_dead_agents_socket(cli: CliRuns) -> None:
    line = _one_line_error(cli.done["dead"])
    assert f"agent at {cli.dead_socket} is not answering" in line
    assert "Connection refused" in line


def test_health_command_gives_up_at_its_deadline(cli: CliRuns) -> None:
    line = _one_line_error(cli.done["deadline"])
    assert line.endswith(f"agent at {cli.mute_socket} did not answer within 0.5 s")
