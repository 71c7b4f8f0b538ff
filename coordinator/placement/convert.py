"""Wire messages (``placement.proto``) to the engine's plain records and back.

The engine never sees protobuf. Everything the scheduler can get wrong in a request
is checked here and raised as ValueError naming the field (``spec.vcpus: must be >=
1``), which the service answers with INVALID_ARGUMENT; proto3 zero values mean "unset"
and take the documented defaults (``numa_nodes`` 0 = 1, ``max_results`` 0 = the
configured default, an unspecified enforcement = hard).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from google.protobuf import duration_pb2, timestamp_pb2

from novacron.coordinator.placement.claims import Claim
from novacron.coordinator.placement.engine import (
    Decision,
    Explanation,
    FactorScore,
    RankedHost,
)
from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.outcomes import Outcome
from novacron.coordinator.placement.request import (
    GroupPolicy,
    NumaPolicy,
    PlacementRequest,
    ServerGroup,
)
from novacron.protos import CONTRACT_MINOR_VERSION, __version__, common_pb2, placement_pb2

SERVER_NAME = f"novacron-coordinator/{__version__}"
MAX_RESULTS_LIMIT = 1000  # a response with more hosts than this helps no scheduler

_NUMA = {
    placement_pb2.NUMA_POLICY_UNSPECIFIED: NumaPolicy.NONE,
    placement_pb2.NUMA_POLICY_NONE: NumaPolicy.NONE,
    placement_pb2.NUMA_POLICY_PREFERRED: NumaPolicy.PREFERRED,
    placement_pb2.NUMA_POLICY_STRICT: NumaPolicy.STRICT,
}
_NUMA_OUT = {
    NumaPolicy.NONE: placement_pb2.NUMA_POLICY_NONE,
    NumaPolicy.PREFERRED: placement_pb2.NUMA_POLICY_PREFERRED,
    NumaPolicy.STRICT: placement_pb2.NUMA_POLICY_STRICT,
}
_GROUP = {
    placement_pb2.GROUP_POLICY_AFFINITY: GroupPolicy.AFFINITY,
    placement_pb2.GROUP_POLICY_ANTI_AFFINITY: GroupPolicy.ANTI_AFFINITY,
}
_GROUP_OUT = {policy: number for number, policy in _GROUP.items()}
_OUTCOME: dict[int, Outcome] = {
    placement_pb2.PLACEMENT_OUTCOME_PLACED: Outcome.PLACED,
    placement_pb2.PLACEMENT_OUTCOME_FAILED: Outcome.FAILED,
    placement_pb2.PLACEMENT_OUTCOME_MIGRATED_LATER: Outcome.MIGRATED_LATER,
    placement_pb2.PLACEMENT_OUTCOME_SLA_MET: Outcome.SLA_MET,
    placement_pb2.PLACEMENT_OUTCOME_SLA_VIOLATED: Outcome.SLA_VIOLATED,
}
_CATEGORY = {
    Category.RESOURCE: placement_pb2.FACTOR_CATEGORY_RESOURCE,
    Category.PERFORMANCE: placement_pb2.FACTOR_CATEGORY_PERFORMANCE,
    Category.INFRASTRUCTURE: placement_pb2.FACTOR_CATEGORY_INFRASTRUCTURE,
    Category.NETWORK: placement_pb2.FACTOR_CATEGORY_NETWORK,
    Category.OPERATIONAL: placement_pb2.FACTOR_CATEGORY_OPERATIONAL,
}
_SCOPE = {
    Scope.HOST: placement_pb2.FACTOR_SCOPE_HOST,
    Scope.REQUEST: placement_pb2.FACTOR_SCOPE_REQUEST,
    Scope.GROUP: placement_pb2.FACTOR_SCOPE_GROUP,
}


# ---------------------------------------------------------------------- requests


def request_from_spec(spec: placement_pb2.VmSpec, field: str = "spec") -> PlacementRequest:
    """The engine's request from a VmSpec; ValueError names the offending field."""
    if spec.vcpus < 1:
        raise ValueError(f"{field}.vcpus: must be >= 1, got {spec.vcpus}")
    if spec.memory_mib < 1:
        raise ValueError(f"{field}.memory_mib: must be >= 1, got {spec.memory_mib}")
    if spec.numa_policy not in _NUMA:
        raise ValueError(f"{field}.numa_policy: unknown value {spec.numa_policy}")
    for name in ("cpu_flags", "aggregates", "compliance"):
        if any(not value for value in getattr(spec, name)):
            raise ValueError(f"{field}.{name}: empty entry")
    group = None
    if spec.HasField("server_group"):
        group = _group_from_proto(spec.server_group, f"{field}.server_group")
    return PlacementRequest(
        vcpus=spec.vcpus,
        memory_mib=spec.memory_mib,
        disk_gib=spec.disk_gib,
        gpus=spec.gpus,
        gpu_model=spec.gpu_model,
        cpu_flags=tuple(spec.cpu_flags),
        numa_policy=_NUMA[spec.numa_policy],
        numa_nodes=spec.numa_nodes or 1,
        image_arch=spec.image_arch,
        server_group=group,
        zone=spec.zone,
        aggregates=tuple(spec.aggregates),
        required_labels=dict(spec.required_labels),
        compliance=tuple(spec.compliance),
        current_host=spec.current_host.host,
        ignore_hosts=tuple(node.host for node in spec.ignore_hosts),
        vm_uuid=spec.vm_uuid,
        flavor=spec.flavor,
    )


def _group_from_proto(group: placement_pb2.ServerGroup, field: str) -> ServerGroup:
    if not group.group_id:
        raise ValueError(f"{field}.group_id: required when a server group is given")
    if group.policy not in _GROUP:
        raise ValueError(f"{field}.policy: expected AFFINITY or ANTI_AFFINITY")
    if group.enforcement not in (
        placement_pb2.ENFORCEMENT_UNSPECIFIED,
        placement_pb2.ENFORCEMENT_HARD,
        placement_pb2.ENFORCEMENT_SOFT,
    ):
        raise ValueError(f"{field}.enforcement: unknown value {group.enforcement}")
    return ServerGroup(
        group_id=group.group_id,
        policy=_GROUP[group.policy],
        hard=group.enforcement != placement_pb2.ENFORCEMENT_SOFT,
        member_hosts=tuple(node.host for node in group.member_hosts),
        max_members_per_host=group.max_members_per_host or 1,
    )


def spec_from_request(request: PlacementRequest) -> placement_pb2.VmSpec:
    """The VmSpec that :func:`request_from_spec` turns back into ``request``."""
    spec = placement_pb2.VmSpec(
        vm_uuid=request.vm_uuid,
        flavor=request.flavor,
        vcpus=request.vcpus,
        memory_mib=request.memory_mib,
        disk_gib=request.disk_gib,
        gpus=request.gpus,
        gpu_model=request.gpu_model,
        cpu_flags=request.cpu_flags,
        numa_policy=_NUMA_OUT[request.numa_policy],
        numa_nodes=request.numa_nodes,
        image_arch=request.image_arch,
        zone=request.zone,
        aggregates=request.aggregates,
        required_labels=dict(request.required_labels),
        compliance=request.compliance,
        ignore_hosts=[common_pb2.NodeId(host=h) for h in request.ignore_hosts],
    )
    if request.current_host:
        spec.current_host.host = request.current_host
    group = request.server_group
    if group is not None:
        spec.server_group.CopyFrom(
            placement_pb2.ServerGroup(
                group_id=group.group_id,
                policy=_GROUP_OUT[group.policy],
                enforcement=placement_pb2.ENFORCEMENT_HARD
                if group.hard
                else placement_pb2.ENFORCEMENT_SOFT,
                member_hosts=[common_pb2.NodeId(host=h) for h in group.member_hosts],
                max_members_per_host=group.max_members_per_host,
            )
        )
    return spec


@dataclass(frozen=True)
class SelectOptions:
    """Everything of a SelectHostsRequest besides the spec, validated."""

    objectives: Mapping[str, float] | None  # None: the configured profile
    weight_overrides: Mapping[str, float]
    max_results: int
    want_pareto: bool
    claim_ttl_seconds: float | None  # None: no claim
    claim_request_id: str


def select_options(
    message: placement_pb2.SelectHostsRequest,
    *,
    default_max_results: int,
    max_claim_ttl_seconds: float,
) -> SelectOptions:
    """Validate the non-spec fields (objective and factor names are checked by the engine)."""
    for name, value in message.objectives.items():
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"objectives.{name}: expected a finite number >= 0, got {value}")
    if message.max_results > MAX_RESULTS_LIMIT:
        raise ValueError(f"max_results: at most {MAX_RESULTS_LIMIT}, got {message.max_results}")
    ttl: float | None = None
    request_id = ""
    if message.HasField("claim"):
        ttl = float(message.claim.ttl_seconds)
        if not 1 <= ttl <= max_claim_ttl_seconds:
            raise ValueError(
                f"claim.ttl_seconds: expected 1..{max_claim_ttl_seconds:g}, "
                f"got {message.claim.ttl_seconds}"
            )
        request_id = message.claim.request_id or message.header.request_id
    return SelectOptions(
        objectives=dict(message.objectives) or None,
        weight_overrides=dict(message.weight_overrides),
        max_results=message.max_results or default_max_results,
        want_pareto=message.want_pareto,
        claim_ttl_seconds=ttl,
        claim_request_id=request_id,
    )


def outcome_from_proto(value: int) -> Outcome:
    try:
        return _OUTCOME[value]
    except KeyError:
        raise ValueError(
            f"outcome: expected one of PLACED, FAILED, MIGRATED_LATER, "
            f"SLA_MET, SLA_VIOLATED, got {value}"
        ) from None


# ---------------------------------------------------------------------- responses


def response_header(request_id: str) -> common_pb2.ResponseHeader:
    return common_pb2.ResponseHeader(
        contract_minor_version=CONTRACT_MINOR_VERSION, server=SERVER_NAME, request_id=request_id
    )


def timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(round(seconds * 1e9))
    return stamp


def duration(seconds: float) -> duration_pb2.Duration:
    span = duration_pb2.Duration()
    span.FromNanoseconds(round(seconds * 1e9))
    return span


def _factor_score(score: FactorScore) -> placement_pb2.FactorScore:
    return placement_pb2.FactorScore(
        factor_id=score.factor_id,
        raw_value=score.raw,
        normalized=score.normalized,
        weight=score.weight,
        contribution=score.contribution,
    )


def ranked_to_proto(ranked: RankedHost) -> placement_pb2.RankedHost:
    return placement_pb2.RankedHost(
        host=common_pb2.NodeId(host=ranked.host_id),
        rank=ranked.rank,
        score=ranked.score,
        confidence=ranked.confidence,
        factor_scores=[_factor_score(s) for s in ranked.factor_scores],
        pros=ranked.pros,
        cons=ranked.cons,
    )


def claim_to_proto(claim: Claim) -> placement_pb2.Claim:
    return placement_pb2.Claim(
        claim_id=claim.claim_id,
        host=common_pb2.NodeId(host=claim.host_id),
        expires_at=timestamp(claim.expires_at_seconds),
        vcpus=claim.vcpus,
        memory_mib=claim.memory_mib,
        disk_gib=claim.disk_gib,
        gpus=claim.gpus,
    )


def decision_to_proto(
    decision: Decision, *, request_id: str, claim: Claim | None = None
) -> placement_pb2.SelectHostsResponse:
    response = placement_pb2.SelectHostsResponse(
        header=response_header(request_id),
        hosts=[ranked_to_proto(h) for h in decision.hosts],
        filtered_out=[
            placement_pb2.FilterCount(filter=c.filter, reason=c.reason, hosts=c.hosts)
            for c in decision.filtered_out
        ],
        no_valid_host=decision.no_valid_host,
        no_valid_host_reasons=decision.no_valid_host_reasons,
        pareto_set=[
            placement_pb2.ParetoPoint(
                host=common_pb2.NodeId(host=p.host_id), objective_scores=dict(p.objective_scores)
            )
            for p in decision.pareto
        ],
        analysis_time=duration(decision.analysis_seconds),
        hosts_considered=decision.hosts_considered,
        hosts_passed=decision.hosts_passed,
        snapshot_at=timestamp(decision.snapshot_at_seconds),
    )
    if claim is not None:
        response.claim.CopyFrom(claim_to_proto(claim))
    return response


def explanation_to_proto(
    explanation: Explanation, *, request_id: str
) -> placement_pb2.ExplainHostResponse:
    response = placement_pb2.ExplainHostResponse(
        header=response_header(request_id),
        host=common_pb2.NodeId(host=explanation.host_id),
        chosen=explanation.chosen,
        filter_rejections=[
            placement_pb2.FilterRejection(filter=r.filter, reason=r.reason)
            for r in explanation.filter_rejections
        ],
        comparisons=[
            placement_pb2.FactorComparison(
                factor_id=c.factor_id,
                host_contribution=c.host_contribution,
                winner_contribution=c.winner_contribution,
                delta=c.delta,
            )
            for c in explanation.comparisons
        ],
        summary=explanation.summary,
    )
    if explanation.evaluation is not None:
        response.evaluation.CopyFrom(ranked_to_proto(explanation.evaluation))
    if explanation.winner is not None:
        response.winner.CopyFrom(ranked_to_proto(explanation.winner))
    return response


def factor_to_proto(factor: Factor) -> placement_pb2.Factor:
    return placement_pb2.Factor(
        factor_id=factor.factor_id,
        name=factor.name,
        category=_CATEGORY[factor.category],
        unit=factor.unit,
        default_weight=factor.default_weight,
        scope=_SCOPE[factor.scope],
        source=factor.source,
        description=factor.description,
        higher_is_better=factor.higher_is_better,
    )
