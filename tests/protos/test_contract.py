"""The v1 wire contract: its shape, its rules, and generated code that works end to end."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool, unknown_fields
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.descriptor_pb2 import (
    DescriptorProto,
    FieldDescriptorProto,
    FileDescriptorProto,
    FileDescriptorSet,
)
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message_factory import GetMessageClass
from google.protobuf.timestamp_pb2 import Timestamp

import novacron.protos
from novacron.protos import (
    codegen,
    common_pb2,
    health_pb2,
    health_pb2_grpc,
    optimization_pb2,
    optimization_pb2_grpc,
    placement_pb2,
    placement_pb2_grpc,
    remediation_pb2,
    remediation_pb2_grpc,
    telemetry_pb2,
    telemetry_pb2_grpc,
)
from novacron.protos.grpc_stubgen import method_comments

PACKAGE = "novacron.v1"
# rpc name -> (client streams, server streams)
EXPECTED_RPCS = {
    "TelemetryService": {"Stream": (True, True)},
    "PlacementService": {
        "SelectHosts": (False, False),
        "ExplainHost": (False, False),
        "ListFactors": (False, False),
        "Reserve": (False, False),
        "Release": (False, False),
        "ReportOutcome": (False, False),
    },
    "HealthService": {
        "GetNodeHealth": (False, False),
        "ListPredictions": (False, False),
        "ListAnomalies": (False, False),
    },
    "RemediationService": {
        "ListPlans": (False, False),
        "GetPlan": (False, False),
        "ApprovePlan": (False, False),
        "RejectPlan": (False, False),
        "QueryAudit": (False, False),
        "VerifyAudit": (False, False),
        "WatchActions": (False, True),
        "AckAction": (False, False),
    },
    "OptimizationService": {
        "GetRecommendations": (False, False),
        "WatchRecommendations": (False, True),
    },
}
GRPC_MODULES = {
    "TelemetryService": telemetry_pb2_grpc,
    "PlacementService": placement_pb2_grpc,
    "HealthService": health_pb2_grpc,
    "RemediationService": remediation_pb2_grpc,
    "OptimizationService": optimization_pb2_grpc,
}
PB2_MODULES = (
    common_pb2,
    telemetry_pb2,
    placement_pb2,
    health_pb2,
    remediation_pb2,
    optimization_pb2,
)


@pytest.fixture(scope="module")
def contract() -> list[FileDescriptorProto]:
    """Our .proto files compiled with their comments (source info)."""
    described: FileDescriptorSet = codegen.describe(codegen.PROTO_DIR)
    return [f for f in described.file if f.name.startswith("novacron/protos/")]


def _ts(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds)


# --- shape ------------------------------------------------------------------------------


def test_every_service_has_the_rpcs_of_the_contract() -> None:
    pool = descriptor_pool.Default()
    for service_name, rpcs in EXPECTED_RPCS.items():
        service = pool.FindServiceByName(f"{PACKAGE}.{service_name}")
        found = {m.name: (m.client_streaming, m.server_streaming) for m in service.methods}
        assert found == rpcs, service_name
        module = GRPC_MODULES[service_name]
        assert callable(getattr(module, f"{service_name}Stub"))
        assert callable(getattr(module, f"add_{service_name}Servicer_to_server"))
        servicer = getattr(module, f"{service_name}Servicer")
        assert all(callable(getattr(servicer, rpc)) for rpc in rpcs)


def test_every_message_and_enum_imports_as_a_class(contract: list[FileDescriptorProto]) -> None:
    modules = {m.DESCRIPTOR.name: m for m in PB2_MODULES}
    assert set(modules) == {f.name for f in contract}
    for file in contract:
        module = modules[file.name]
        for message in file.message_type:
            cls = getattr(module, message.name)
            assert cls.DESCRIPTOR.full_name == f"{PACKAGE}.{message.name}"
            assert cls.FromString(cls().SerializeToString()) == cls()
        for enum in file.enum_type:
            wrapper = getattr(module, enum.name)
            assert wrapper.Name(0).endswith("_UNSPECIFIED")


# --- rules ------------------------------------------------------------------------------


def test_every_rpc_documents_its_deadline(contract: list[FileDescriptorProto]) -> None:
    """Each rpc's own comment says a deadline is required and which value to use."""
    checked = 0
    for file in contract:
        comments = method_comments(file)
        for service in file.service:
            for method in service.method:
                comment = comments[f"{service.name}/{method.name}"]
                assert "Deadline: required" in comment, f"{service.name}.{method.name}"
                if method.server_streaming:
                    assert "stream lifetime" in comment, f"{service.name}.{method.name}"
                else:
                    assert re.search(r"\b\d+ s recommended", comment), (
                        f"{service.name}.{method.name}"
                    )
                checked += 1
    assert checked == sum(len(rpcs) for rpcs in EXPECTED_RPCS.values())


def _type_name(field: FieldDescriptor) -> str:
    assert field.message_type is not None
    return field.message_type.full_name


def test_requests_and_responses_carry_contract_versions() -> None:
    pool = descriptor_pool.Default()
    for service_name in EXPECTED_RPCS:
        for method in pool.FindServiceByName(f"{PACKAGE}.{service_name}").methods:
            if method.client_streaming:
                continue  # the telemetry stream carries its versions in Hello / Welcome
            header = method.input_type.fields_by_name["header"]
            assert header.number == 1
            assert _type_name(header) == f"{PACKAGE}.RequestHeader", method.full_name
            if not method.server_streaming:
                header = method.output_type.fields_by_name["header"]
                assert header.number == 1
                assert _type_name(header) == f"{PACKAGE}.ResponseHeader", method.full_name
    assert "contract_minor_version" in telemetry_pb2.Hello.DESCRIPTOR.fields_by_name
    assert "contract_minor_version" in telemetry_pb2.Welcome.DESCRIPTOR.fields_by_name


def test_declared_contract_version_matches_the_proto_files() -> None:
    text = (codegen.PROTO_DIR / "common.proto").read_text()
    declared = re.search(r"This file set is contract v(\d+)\.(\d+)\.", text)
    assert declared is not None
    assert (int(declared[1]), int(declared[2])) == (
        novacron.protos.CONTRACT_MAJOR_VERSION,
        novacron.protos.CONTRACT_MINOR_VERSION,
    )
    assert common_pb2.DESCRIPTOR.package == f"novacron.v{novacron.protos.CONTRACT_MAJOR_VERSION}"


_UNIT_SUFFIX = re.compile(r"_(seconds|bytes|mib|gib|celsius|watts|mbps|us|percent|per_hour)$")
_STATED_SCALE = re.compile(r"0\.\.1|dimensionless|\bunit\b")


def test_every_fractional_number_states_its_unit(contract: list[FileDescriptorProto]) -> None:
    """A double is either named with its unit or its comment gives the unit or the 0..1 scale."""
    real = {FieldDescriptorProto.TYPE_DOUBLE, FieldDescriptorProto.TYPE_FLOAT}
    unexplained = []
    for file in contract:
        comments = {
            tuple(loc.path): loc.leading_comments + loc.trailing_comments
            for loc in file.source_code_info.location
        }
        for m_index, message in enumerate(file.message_type):
            for f_index, field in enumerate(message.field):
                if field.type not in real or _UNIT_SUFFIX.search(field.name):
                    continue
                comment = comments.get((4, m_index, 2, f_index), "")
                if not _STATED_SCALE.search(comment):
                    unexplained.append(f"{message.name}.{field.name}")
    assert unexplained == []


def test_enums_start_with_unspecified_and_prefix_their_values(
    contract: list[FileDescriptorProto],
) -> None:
    for file in contract:
        for enum in file.enum_type:
            prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"
            assert enum.value[0].number == 0
            assert enum.value[0].name == prefix + "UNSPECIFIED"
            assert all(v.name.startswith(prefix) for v in enum.value), enum.name


# --- round trips --------------------------------------------------------------------------


def _frame(seq: int) -> telemetry_pb2.Frame:
    disk = common_pb2.Subject(
        kind=common_pb2.SUBJECT_KIND_DISK,
        id="S4EVNF0M123456",
        node=common_pb2.NodeId(host="cmp-0042"),
        display_name="/dev/sdb",
    )
    model = common_pb2.ModelVersion(
        name="disk_failure", version="2025.11.3", sha256="ab" * 32, feature_schema_version=3
    )
    prediction = common_pb2.FailurePrediction(
        target=disk,
        horizon_seconds=86400.0,
        probability=0.82,
        ci_low=0.7,
        ci_high=0.9,
        ci_level=0.9,
        estimated_time_to_failure_seconds=52000.0,
        contributing_factors=[
            common_pb2.ContributingFactor(
                feature="smart_reallocated_sectors_delta",
                value=120.0,
                contribution=0.41,
                unit="count",
            )
        ],
        model=model,
    )
    anomaly = common_pb2.Anomaly(
        subject=common_pb2.Subject(kind=common_pb2.SUBJECT_KIND_VM, id="6c1f0b1e-0000-4000-8000-1"),
        score=0.97,
        severity=common_pb2.SEVERITY_CRITICAL,
        anomalous_features=[
            common_pb2.ContributingFactor(
                feature="vm_cpu_steal_percent", value=38.0, contribution=0.5
            )
        ],
        model=model,
    )
    return telemetry_pb2.Frame(
        seq=seq,
        observed_at=_ts(1_763_900_000 + seq * 10),
        window=Duration(seconds=60),
        node_features=common_pb2.FeatureVector(
            schema_version=3, schema_hash="cd" * 32, values=[41.5, math.nan, 1.5e12]
        ),
        vm_features=[
            telemetry_pb2.VmFeatures(
                vm_uuid="6c1f0b1e-0000-4000-8000-1",
                name="instance-0000002a",
                features=common_pb2.FeatureVector(schema_version=2, values=[0.25]),
                vcpus=4,
                memory_bytes=8 * 2**30,
            )
        ],
        scores=common_pb2.Scores(failure_predictions=[prediction], anomalies=[anomaly]),
        collector_statuses=[
            common_pb2.CollectorStatus(
                name="smart", ok=False, duration_seconds=2.5, error="timeout"
            )
        ],
        unavailable_devices=[
            common_pb2.UnavailableDevice(
                collector="smart", device="/dev/sdc", since=_ts(1_763_899_000), reason="vanished"
            )
        ],
    )


def test_frame_batch_round_trips() -> None:
    batch = telemetry_pb2.FrameBatch(frames=[_frame(41), _frame(42)])
    message = telemetry_pb2.AgentMessage(frames=batch)

    parsed = telemetry_pb2.AgentMessage.FromString(message.SerializeToString())

    assert parsed.WhichOneof("body") == "frames"
    first, second = parsed.frames.frames
    assert [first.seq, second.seq] == [41, 42]
    assert second.observed_at.seconds == 1_763_900_420
    assert first.window.ToSeconds() == 60
    values = list(first.node_features.values)
    assert values[0] == 41.5 and math.isnan(values[1]) and values[2] == 1.5e12
    prediction = first.scores.failure_predictions[0]
    assert prediction.target.kind == common_pb2.SUBJECT_KIND_DISK
    assert prediction.probability == pytest.approx(0.82)
    assert prediction.HasField("estimated_time_to_failure_seconds")
    assert prediction.contributing_factors[0].feature == "smart_reallocated_sectors_delta"
    assert first.scores.anomalies[0].severity == common_pb2.SEVERITY_CRITICAL
    assert first.vm_features[0].memory_bytes == 8 * 2**30
    assert first.collector_statuses[0].error == "timeout"
    assert first.unavailable_devices[0].since.seconds == 1_763_899_000
    # NaN never equals itself, so compare everything else field by field via bytes.
    assert parsed.SerializeToString() == message.SerializeToString()


def test_absent_time_to_failure_is_distinguishable_from_zero() -> None:
    prediction = common_pb2.FailurePrediction(probability=0.1)
    parsed = common_pb2.FailurePrediction.FromString(prediction.SerializeToString())
    assert not parsed.HasField("estimated_time_to_failure_seconds")


def _select_hosts_response() -> placement_pb2.SelectHostsResponse:
    host = common_pb2.NodeId(host="cmp-0007", machine_id="0f" * 16)
    return placement_pb2.SelectHostsResponse(
        header=common_pb2.ResponseHeader(
            contract_minor_version=0, server="novacron-coordinator/0.1.0", request_id="req-1"
        ),
        hosts=[
            placement_pb2.RankedHost(
                host=host,
                rank=1,
                score=0.71,
                confidence=0.95,
                factor_scores=[
                    placement_pb2.FactorScore(
                        factor_id="free_ram",
                        raw_value=2.0e11,
                        normalized=0.8,
                        weight=1.0,
                        contribution=0.4,
                    ),
                    placement_pb2.FactorScore(
                        factor_id="failure_probability_24h",
                        raw_value=0.01,
                        normalized=0.99,
                        weight=-2.0,
                        contribution=-0.2,
                    ),
                ],
                pros=["lowest 24 h failure probability"],
                cons=["rack r12 is warm"],
            )
        ],
        filtered_out=[
            placement_pb2.FilterCount(
                filter="RamFilter", reason="insufficient free memory", hosts=31
            )
        ],
        no_valid_host=False,
        pareto_set=[
            placement_pb2.ParetoPoint(
                host=host, objective_scores={"spread": 0.7, "reliability": 0.9}
            )
        ],
        claim=placement_pb2.Claim(
            claim_id="claim-9", host=host, expires_at=_ts(1_763_900_060), vcpus=4, memory_mib=8192
        ),
        analysis_time=Duration(nanos=12_500_000),
        hosts_considered=40,
        hosts_passed=9,
    )


def test_select_hosts_response_round_trips() -> None:
    response = _select_hosts_response()

    parsed = placement_pb2.SelectHostsResponse.FromString(response.SerializeToString())

    assert parsed == response
    best = parsed.hosts[0]
    assert best.host.host == "cmp-0007"
    assert [f.factor_id for f in best.factor_scores] == ["free_ram", "failure_probability_24h"]
    assert best.factor_scores[1].weight == -2.0
    assert parsed.filtered_out[0].hosts == 31
    assert parsed.pareto_set[0].objective_scores["reliability"] == pytest.approx(0.9)
    assert parsed.claim.expires_at.seconds == 1_763_900_060
    assert parsed.analysis_time.ToMilliseconds() == 12
    assert parsed.header.request_id == "req-1"


# --- unknown fields -------------------------------------------------------------------------


def _future_ack_class() -> Any:
    """``Ack`` as a later contract revision might define it, with a field v1.0 lacks."""
    future = FileDescriptorProto(
        name="future/ack.proto", package="novacron.future", syntax="proto3"
    )
    future.message_type.append(
        DescriptorProto(
            name="Ack",
            field=[
                FieldDescriptorProto(
                    name="highest_durable_seq",
                    number=1,
                    type=FieldDescriptorProto.TYPE_UINT64,
                    label=FieldDescriptorProto.LABEL_OPTIONAL,
                ),
                FieldDescriptorProto(
                    name="durable_until_unix_ms",
                    number=2,
                    type=FieldDescriptorProto.TYPE_UINT64,
                    label=FieldDescriptorProto.LABEL_OPTIONAL,
                ),
            ],
        )
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(future)
    return GetMessageClass(pool.FindMessageTypeByName("novacron.future.Ack"))


def test_newer_peer_fields_are_tolerated_and_passed_through() -> None:
    newer = _future_ack_class()(highest_durable_seq=77, durable_until_unix_ms=1_763_900_000_000)
    wire = newer.SerializeToString()

    ack = telemetry_pb2.Ack.FromString(wire)

    assert ack.highest_durable_seq == 77
    unknown = unknown_fields.UnknownFieldSet(ack)
    assert len(unknown) == 1
    assert unknown[0].field_number == 2
    assert unknown[0].data == 1_763_900_000_000
    # An old relay re-emits what it does not understand; the newer reader still sees it.
    relayed = _future_ack_class().FromString(ack.SerializeToString())
    assert relayed.durable_until_unix_ms == 1_763_900_000_000


def test_unknown_field_numbers_inside_a_frame_do_not_disturb_known_ones() -> None:
    frame = _frame(5)
    extra_field_999_varint_7 = bytes([0xB8, 0x3E, 0x07])  # tag (999 << 3 | 0), value 7

    parsed = telemetry_pb2.Frame.FromString(frame.SerializeToString() + extra_field_999_varint_7)

    assert parsed.seq == 5
    assert parsed.scores.failure_predictions[0].probability == pytest.approx(0.82)
    unknown = unknown_fields.UnknownFieldSet(parsed)
    assert [unknown[i].field_number for i in range(len(unknown))] == [999]


def test_newer_enum_values_survive_an_older_reader() -> None:
    action = common_pb2.Action(action_id="a1", action_type=42)  # type: ignore[arg-type]
    parsed = common_pb2.Action.FromString(action.SerializeToString())
    assert parsed.action_type == 42
    assert parsed.action_id == "a1"


# --- generated stubs against a real gRPC server ----------------------------------------------


class _Health(health_pb2_grpc.HealthServiceServicer):
    """Answers GetNodeHealth for one node; ListPredictions etc. stay UNIMPLEMENTED."""

    def __init__(self) -> None:
        self.time_remaining: list[float | None] = []

    def GetNodeHealth(
        self, request: health_pb2.GetNodeHealthRequest, context: grpc.ServicerContext
    ) -> health_pb2.GetNodeHealthResponse:
        self.time_remaining.append(context.time_remaining())
        node = health_pb2.NodeHealth(
            node=request.node,
            status=health_pb2.HEALTH_STATUS_AT_RISK,
            status_reasons=["sdb failure p=0.82 within 24 h"],
            latest_scores=_frame(9).scores,
            spool_depth_frames=3,
        )
        return health_pb2.GetNodeHealthResponse(
            header=common_pb2.ResponseHeader(
                server="test-health/1", request_id=request.header.request_id
            ),
            nodes=[node],
        )


@pytest.fixture
def health_server() -> Iterator[tuple[grpc.Server, _Health, int]]:
    servicer = _Health()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield server, servicer, port
    finally:
        server.stop(grace=None)


def _ask_health(target: str) -> health_pb2.GetNodeHealthResponse:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthServiceStub(channel)
        return stub.GetNodeHealth(
            health_pb2.GetNodeHealthRequest(
                header=common_pb2.RequestHeader(request_id="r-17", client="test/1"),
                node=common_pb2.NodeId(host="cmp-0042"),
            ),
            timeout=10.0,
        )


def test_health_stub_and_servicer_talk_over_tcp(
    health_server: tuple[grpc.Server, _Health, int],
) -> None:
    _, servicer, port = health_server

    response = _ask_health(f"127.0.0.1:{port}")

    (node,) = response.nodes
    assert node.node.host == "cmp-0042"
    assert node.status == health_pb2.HEALTH_STATUS_AT_RISK
    assert node.latest_scores.failure_predictions[0].target.display_name == "/dev/sdb"
    assert response.header.request_id == "r-17"
    # The client's deadline reached the server.
    (remaining,) = servicer.time_remaining
    assert remaining is not None and 0 < remaining <= 10.0


def test_unimplemented_rpc_is_an_unimplemented_status(
    health_server: tuple[grpc.Server, _Health, int],
) -> None:
    _, _, port = health_server
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.ListAnomalies(health_pb2.ListAnomaliesRequest(), timeout=10.0)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_health_service_answers_on_a_unix_socket(tmp_path: Path) -> None:
    # The agent serves HealthService on a local Unix socket.
    socket_path = tmp_path / "health.sock"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    health_pb2_grpc.add_HealthServiceServicer_to_server(_Health(), server)
    server.add_insecure_port(f"unix:{socket_path}")
    server.start()
    try:
        response = _ask_health(f"unix:{socket_path}")
    finally:
        server.stop(grace=None)
    assert response.nodes[0].node.host == "cmp-0042"


class _Telemetry(telemetry_pb2_grpc.TelemetryServiceServicer):
    """Welcome on Hello, then a cumulative Ack after every batch."""

    def Stream(
        self,
        request_iterator: Iterator[telemetry_pb2.AgentMessage],
        context: grpc.ServicerContext,
    ) -> Iterator[telemetry_pb2.CoordinatorMessage]:
        for message in request_iterator:
            kind = message.WhichOneof("body")
            if kind == "hello":
                yield telemetry_pb2.CoordinatorMessage(
                    welcome=telemetry_pb2.Welcome(
                        contract_minor_version=0, highest_durable_seq=message.hello.last_acked_seq
                    )
                )
            elif kind == "frames":
                highest = max(frame.seq for frame in message.frames.frames)
                yield telemetry_pb2.CoordinatorMessage(
                    ack=telemetry_pb2.Ack(highest_durable_seq=highest)
                )


def test_telemetry_stream_handshake_and_acks() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    telemetry_pb2_grpc.add_TelemetryServiceServicer_to_server(_Telemetry(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    outgoing = [
        telemetry_pb2.AgentMessage(
            hello=telemetry_pb2.Hello(node=common_pb2.NodeId(host="cmp-0042"), last_acked_seq=40)
        ),
        telemetry_pb2.AgentMessage(
            frames=telemetry_pb2.FrameBatch(frames=[_frame(41), _frame(42)])
        ),
        telemetry_pb2.AgentMessage(frames=telemetry_pb2.FrameBatch(frames=[_frame(43)])),
    ]
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)
            replies = list(stub.Stream(iter(outgoing), timeout=10.0))
    finally:
        server.stop(grace=None)

    assert [r.WhichOneof("body") for r in replies] == ["welcome", "ack", "ack"]
    assert replies[0].welcome.highest_durable_seq == 40
    assert [r.ack.highest_durable_seq for r in replies[1:]] == [42, 43]
