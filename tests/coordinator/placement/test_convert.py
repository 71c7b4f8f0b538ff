"""VmSpec <-> PlacementRequest and the response builders."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from novacron.coordinator.placement.convert import (
    MAX_RESULTS_LIMIT,
    decision_to_proto,
    factor_to_proto,
    outcome_from_proto,
    request_from_spec,
    select_options,
    spec_from_request,
)
from novacron.coordinator.placement.engine import select
from novacron.coordinator.placement.outcomes import Outcome
from novacron.coordinator.placement.request import (
    GroupPolicy,
    NumaPolicy,
    PlacementRequest,
    ServerGroup,
)
from novacron.protos import CONTRACT_MINOR_VERSION, common_pb2, placement_pb2
from tests.coordinator.placement.engine_support import factor, make_policy
from tests.coordinator.placement.tables import host_table

names = st.text("abcdefgh-0123", min_size=1, max_size=8)

requests = st.builds(
    PlacementRequest,
    vcpus=st.integers(1, 256),
    memory_mib=st.integers(1, 2**40),
    disk_gib=st.integers(0, 10_000),
    gpus=st.integers(0, 8),
    gpu_model=st.sampled_from(["", "NVIDIA H100 80GB HBM3"]),
    cpu_flags=st.lists(names, max_size=3).map(tuple),
    numa_policy=st.sampled_from(list(NumaPolicy)),
    numa_nodes=st.integers(1, 4),
    image_arch=st.sampled_from(["", "x86_64", "aarch64"]),
    server_group=st.none()
    | st.builds(
        ServerGroup,
        group_id=names,
        policy=st.sampled_from(list(GroupPolicy)),
        hard=st.booleans(),
        member_hosts=st.lists(names, max_size=3).map(tuple),
        max_members_per_host=st.integers(1, 4),
    ),
    zone=st.sampled_from(["", "az1"]),
    aggregates=st.lists(names, max_size=2).map(tuple),
    required_labels=st.dictionaries(names, names, max_size=2),
    compliance=st.lists(names, max_size=2).map(tuple),
    current_host=st.sampled_from(["", "cmp-1"]),
    ignore_hosts=st.lists(names, max_size=2).map(tuple),
    vm_uuid=st.sampled_from(["", "8d7c3a1e-0000-4000-8000-000000000001"]),
    flavor=st.sampled_from(["", "m1.large"]),
)


@given(requests)
def test_spec_round_trip(request: PlacementRequest) -> None:
    wire = placement_pb2.VmSpec.FromString(spec_from_request(request).SerializeToString())
    assert request_from_spec(wire) == request


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (placement_pb2.VmSpec(memory_mib=1), "spec.vcpus: must be >= 1"),
        (placement_pb2.VmSpec(vcpus=1), "spec.memory_mib: must be >= 1"),
        (
            placement_pb2.VmSpec(vcpus=1, memory_mib=1, cpu_flags=[""]),
            "spec.cpu_flags: empty entry",
        ),
        (
            placement_pb2.VmSpec(
                vcpus=1,
                memory_mib=1,
                server_group=placement_pb2.ServerGroup(policy=placement_pb2.GROUP_POLICY_AFFINITY),
            ),
            "spec.server_group.group_id: required",
        ),
        (
            placement_pb2.VmSpec(
                vcpus=1, memory_mib=1, server_group=placement_pb2.ServerGroup(group_id="g")
            ),
            "spec.server_group.policy",
        ),
        (placement_pb2.VmSpec(vcpus=1, memory_mib=1, numa_policy=99), "spec.numa_policy"),  # type: ignore[arg-type]
    ],
)
def test_malformed_specs_name_the_field(spec: placement_pb2.VmSpec, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        request_from_spec(spec)


def test_zero_values_take_the_documented_defaults() -> None:
    group = placement_pb2.ServerGroup(group_id="g", policy=placement_pb2.GROUP_POLICY_AFFINITY)
    request = request_from_spec(placement_pb2.VmSpec(vcpus=1, memory_mib=1, server_group=group))
    assert request.numa_nodes == 1
    assert request.numa_policy is NumaPolicy.NONE
    assert request.server_group is not None
    assert request.server_group.hard
    assert request.server_group.max_members_per_host == 1


def test_select_options() -> None:
    message = placement_pb2.SelectHostsRequest(
        header=common_pb2.RequestHeader(request_id="hdr"),
        objectives={"spread": 1.0},
        claim=placement_pb2.ClaimRequest(ttl_seconds=30),
    )
    options = select_options(message, default_max_results=7, max_claim_ttl_seconds=60)
    assert options.max_results == 7
    assert options.objectives == {"spread": 1.0}
    assert options.claim_ttl_seconds == 30 and options.claim_request_id == "hdr"
    assert (
        select_options(
            placement_pb2.SelectHostsRequest(), default_max_results=7, max_claim_ttl_seconds=60
        ).objectives
        is None
    )
    for bad, text in [
        (placement_pb2.SelectHostsRequest(objectives={"spread": -1}), "objectives.spread"),
        (placement_pb2.SelectHostsRequest(max_results=MAX_RESULTS_LIMIT + 1), "max_results"),
        (
            placement_pb2.SelectHostsRequest(claim=placement_pb2.ClaimRequest(ttl_seconds=61)),
            "claim.ttl_seconds",
        ),
    ]:
        with pytest.raises(ValueError, match=text):
            select_options(bad, default_max_results=7, max_claim_ttl_seconds=60)


def test_decision_to_proto_carries_everything() -> None:
    table = host_table(
        [
            {"host_id": "a"},
            {"host_id": "b", "failure_probability": 0.4},
            {"host_id": "c", "maintenance": 1},
        ]
    )
    decision = select(
        table, PlacementRequest(vcpus=1, memory_mib=1), make_policy(), want_pareto=True
    )
    response = decision_to_proto(decision, request_id="r1")
    assert response.header.request_id == "r1"
    assert response.header.contract_minor_version == CONTRACT_MINOR_VERSION
    assert [h.host.host for h in response.hosts] == ["a", "b"]
    assert response.hosts[0].factor_scores[1].factor_id == "failure_probability_24h"
    assert math.isclose(response.hosts[0].score, decision.hosts[0].score)
    assert [(c.filter, c.hosts) for c in response.filtered_out] == [("TestStateFilter", 1)]
    assert response.hosts_considered == 3 and response.hosts_passed == 2
    assert not response.no_valid_host
    assert response.snapshot_at.seconds == int(table.taken_at_seconds)
    assert response.analysis_time.ToNanoseconds() > 0
    assert {p.host.host for p in response.pareto_set} == {p.host_id for p in decision.pareto}
    assert not response.HasField("claim")


def test_factor_and_outcome_enums() -> None:
    proto = factor_to_proto(factor("free_ram", higher_is_better=True))
    assert proto.category == placement_pb2.FACTOR_CATEGORY_RESOURCE
    assert proto.scope == placement_pb2.FACTOR_SCOPE_HOST
    assert outcome_from_proto(placement_pb2.PLACEMENT_OUTCOME_SLA_MET) is Outcome.SLA_MET
    with pytest.raises(ValueError, match="outcome"):
        outcome_from_proto(placement_pb2.PLACEMENT_OUTCOME_UNSPECIFIED)
