"""``novacron-coordinator recommend``: the coordinator's optimisation advice, over its API.

Lists the current recommendations (consolidation, right-sizing, capacity forecasts),
highest expected saving first, for the whole fleet or a scope (``--node``, ``--zone``,
``--aggregate``), or follows them as they change (``--watch SECONDS``). Same
connection options as ``place``.

Exit status: 0 an answer (an empty list included), 1 the API could not be reached or
failed, 2 a usage error or a request the API rejected.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import grpc

from novacron.coordinator.api_client import (
    EXIT_USAGE,
    UsageError,
    add_api_client_options,
    message_json,
    open_channel,
    report_rpc_error,
    request_header,
)
from novacron.protos import common_pb2, optimization_pb2
from novacron.protos.optimization_pb2_grpc import OptimizationServiceStub
from novacron.protos.runtime.tls import TlsConfigError

PROG = "novacron-coordinator recommend"
KINDS = {
    "consolidation": optimization_pb2.RECOMMENDATION_KIND_CONSOLIDATION,
    "right-size": optimization_pb2.RECOMMENDATION_KIND_RIGHT_SIZE,
    "forecast": optimization_pb2.RECOMMENDATION_KIND_FORECAST,
}


def add_recommend_command(sub: Any) -> argparse.ArgumentParser:
    recommend: argparse.ArgumentParser = sub.add_parser(
        "recommend",
        help="list the coordinator's optimisation advice",
        description="Consolidation, right-sizing and capacity-forecast recommendations "
        "(GetRecommendations), or follow their changes (--watch, WatchRecommendations).",
    )
    add_api_client_options(recommend)
    recommend.add_argument(
        "--kind", action="append", default=[], choices=sorted(KINDS), help="only this kind"
    )
    recommend.add_argument("--node", action="append", default=[], metavar="HOST")
    recommend.add_argument("--zone", default="")
    recommend.add_argument("--aggregate", default="")
    recommend.add_argument("--limit", type=int, default=0, help="most to list (0: all)")
    recommend.add_argument(
        "--watch",
        type=float,
        metavar="SECONDS",
        help="follow changes for this long (current advice first)",
    )
    recommend.add_argument("--json", action="store_true", help="JSON instead of text")
    return recommend


def run_recommend(args: argparse.Namespace) -> int:
    try:
        channel = open_channel(args)
    except (UsageError, TlsConfigError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    scope = optimization_pb2.Scope(
        nodes=[common_pb2.NodeId(host=host) for host in args.node],
        zone=args.zone,
        aggregate=args.aggregate,
    )
    kinds = [KINDS[kind] for kind in args.kind]
    header = request_header("novacron-coordinator-recommend")
    try:
        with channel:
            stub = OptimizationServiceStub(channel)
            if args.watch is not None:
                return _watch(stub, header, scope, kinds, args)
            recommendations: list[optimization_pb2.Recommendation] = []
            token = ""
            while True:
                response = stub.GetRecommendations(
                    optimization_pb2.GetRecommendationsRequest(
                        header=header,
                        scope=scope,
                        kinds=kinds,
                        page=common_pb2.PageRequest(page_size=1000, page_token=token),
                    ),
                    timeout=args.timeout,
                )
                recommendations += response.recommendations
                token = response.next_page_token
                if not token or 0 < args.limit <= len(recommendations):
                    break
            if args.limit > 0:
                recommendations = recommendations[: args.limit]
            if args.json:
                listing = optimization_pb2.GetRecommendationsResponse(
                    recommendations=recommendations, snapshot_at=response.snapshot_at
                )
                print(message_json(listing))
            else:
                print(render_recommendations(recommendations, response.snapshot_at.seconds))
            return 0
    except grpc.RpcError as exc:
        return report_rpc_error(PROG, args.api, exc)


def _watch(
    stub: OptimizationServiceStub,
    header: common_pb2.RequestHeader,
    scope: optimization_pb2.Scope,
    kinds: list[optimization_pb2.RecommendationKind],
    args: argparse.Namespace,
) -> int:
    stream = stub.WatchRecommendations(
        optimization_pb2.WatchRecommendationsRequest(
            header=header, scope=scope, kinds=kinds, include_current=True
        ),
        timeout=args.watch,
    )
    try:
        for event in stream:
            if args.json:
                print(message_json(event).replace("\n", " "), flush=True)
            else:
                kind = optimization_pb2.RecommendationEventType.Name(event.event_type)
                verb = kind.removeprefix("RECOMMENDATION_EVENT_TYPE_").lower()
                print(f"{verb:<9} {_line(event.recommendation)}", flush=True)
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:  # the watch simply ended
            raise
    return 0


def _kind(rec: optimization_pb2.Recommendation) -> str:
    name = optimization_pb2.RecommendationKind.Name(rec.kind)
    return name.removeprefix("RECOMMENDATION_KIND_").lower().replace("_", "-")


def _line(rec: optimization_pb2.Recommendation) -> str:
    saving = (
        f"  saves {rec.expected_saving_per_hour:.2f} {rec.currency}/h"
        if rec.expected_saving_per_hour
        else ""
    )
    risk = optimization_pb2.RiskLevel.Name(rec.risk).removeprefix("RISK_LEVEL_").lower()
    return f"{_kind(rec):<13} {rec.summary}{saving}  risk {risk}"


def render_recommendations(
    recommendations: list[optimization_pb2.Recommendation], snapshot_seconds: int
) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(snapshot_seconds))
    if not recommendations:
        return f"no recommendations (fleet snapshot {stamp})"
    lines = [f"{len(recommendations)} recommendations (fleet snapshot {stamp})"]
    for rec in recommendations:
        lines.append(f"  {_line(rec)}")
        lines += [f"      {step.rationale}" for step in rec.actions[:5] if step.rationale]
        if len(rec.actions) > 5:
            lines.append(f"      ... {len(rec.actions) - 5} more actions")
    return "\n".join(lines)
