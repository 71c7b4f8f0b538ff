"""``novacron-coordinator place``: ask the running coordinator's PlacementService.

The same API the NovaCron scheduler uses (``[api] listen``), so an operator sees what
the scheduler would get: ranked hosts with score, confidence, pros and cons, how many
hosts each filter removed, optionally a claim, an explanation for one host
(``--explain HOST``) or the factor catalogue (``--factors``). mTLS with an API client
certificate (``pki issue-client``) unless ``--insecure``.

Exit status: 0 an answer (including "no valid host"), 1 the API could not be reached
or failed, 2 a usage error or a request the API rejected as malformed.
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
from novacron.coordinator.placement.convert import spec_from_request
from novacron.coordinator.placement.request import GroupPolicy, PlacementRequest, ServerGroup
from novacron.protos import common_pb2, placement_pb2
from novacron.protos.placement_pb2_grpc import PlacementServiceStub
from novacron.protos.runtime.tls import TlsConfigError

PROG = "novacron-coordinator place"


def add_place_command(sub: Any) -> argparse.ArgumentParser:
    place: argparse.ArgumentParser = sub.add_parser(
        "place",
        help="ask the placement API where a VM should go",
        description="Rank the hosts that can take a VM (SelectHosts), explain one host "
        "(--explain) or list the factor catalogue (--factors), over the scheduler API.",
    )
    add_api_client_options(place)
    place.add_argument("--vcpus", type=int)
    place.add_argument("--memory-mib", type=int)
    place.add_argument("--disk-gib", type=int, default=0)
    place.add_argument("--gpus", type=int, default=0)
    place.add_argument("--gpu-model", default="")
    place.add_argument("--cpu-flag", action="append", default=[], metavar="FLAG")
    place.add_argument("--image-arch", default="")
    place.add_argument("--zone", default="")
    place.add_argument("--aggregate", action="append", default=[], metavar="NAME")
    place.add_argument("--compliance", action="append", default=[], metavar="TAG")
    place.add_argument("--group", default="", metavar="ID", help="server group id")
    place.add_argument(
        "--anti-affinity", action="store_true", help="the group is anti-affine (default: affine)"
    )
    place.add_argument("--soft", action="store_true", help="the group policy is soft")
    place.add_argument(
        "--member-host",
        action="append",
        default=[],
        metavar="HOST",
        help="a host already running a member of the group (repeat)",
    )
    place.add_argument("--current-host", default="", help="migration source")
    place.add_argument("--ignore-host", action="append", default=[], metavar="HOST")
    place.add_argument(
        "--objective",
        action="append",
        default=[],
        metavar="NAME=WEIGHT",
        help="objective weight, e.g. reliability=2 (repeat)",
    )
    place.add_argument(
        "--weight",
        action="append",
        default=[],
        metavar="FACTOR=WEIGHT",
        help="per-factor weight override (repeat)",
    )
    place.add_argument("--max-results", type=int, default=0)
    place.add_argument("--pareto", action="store_true", help="also the Pareto-optimal set")
    place.add_argument("--explain", metavar="HOST", help="why HOST was or was not chosen")
    place.add_argument("--factors", action="store_true", help="list the factor catalogue")
    place.add_argument(
        "--claim-ttl", type=int, metavar="SECONDS", help="claim the best host for this long"
    )
    place.add_argument("--request-id", default="", help="idempotency key (default: generated)")
    place.add_argument("--json", action="store_true", help="print the response as JSON")
    return place


def cmd_place(args: argparse.Namespace) -> int:
    try:
        channel = open_channel(args)
    except (UsageError, TlsConfigError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with channel:
            stub = PlacementServiceStub(channel)
            if args.factors:
                factors = stub.ListFactors(
                    placement_pb2.ListFactorsRequest(header=_header(args)), timeout=args.timeout
                )
                print(_json(factors) if args.json else render_factors(factors))
                return 0
            select = _select_request(args)
            if args.explain:
                explained = stub.ExplainHost(
                    placement_pb2.ExplainHostRequest(
                        header=_header(args),
                        request=select,
                        host=common_pb2.NodeId(host=args.explain),
                    ),
                    timeout=args.timeout,
                )
                print(_json(explained) if args.json else render_explanation(explained))
                return 0
            response = stub.SelectHosts(select, timeout=args.timeout)
            print(_json(response) if args.json else render_selection(response))
            return 0
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except grpc.RpcError as exc:
        return report_rpc_error(PROG, args.api, exc)


def _header(args: argparse.Namespace) -> common_pb2.RequestHeader:
    return request_header("novacron-coordinator-place", args.request_id)


def _pairs(items: list[str], flag: str) -> dict[str, float]:
    pairs: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            pairs[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise UsageError(f"{flag} {item!r}: expected NAME=NUMBER")
    return pairs


def _select_request(args: argparse.Namespace) -> placement_pb2.SelectHostsRequest:
    if args.vcpus is None or args.memory_mib is None:
        raise UsageError("--vcpus and --memory-mib are required (unless --factors)")
    group = None
    if args.group:
        group = ServerGroup(
            group_id=args.group,
            policy=GroupPolicy.ANTI_AFFINITY if args.anti_affinity else GroupPolicy.AFFINITY,
            hard=not args.soft,
            member_hosts=tuple(args.member_host),
        )
    elif args.anti_affinity or args.member_host or args.soft:
        raise UsageError("--anti-affinity, --soft and --member-host need --group")
    try:
        request = PlacementRequest(
            vcpus=args.vcpus,
            memory_mib=args.memory_mib,
            disk_gib=args.disk_gib,
            gpus=args.gpus,
            gpu_model=args.gpu_model,
            cpu_flags=tuple(args.cpu_flag),
            image_arch=args.image_arch,
            server_group=group,
            zone=args.zone,
            aggregates=tuple(args.aggregate),
            compliance=tuple(args.compliance),
            current_host=args.current_host,
            ignore_hosts=tuple(args.ignore_host),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    message = placement_pb2.SelectHostsRequest(
        header=_header(args),
        spec=spec_from_request(request),
        objectives=_pairs(args.objective, "--objective"),
        weight_overrides=_pairs(args.weight, "--weight"),
        max_results=max(args.max_results, 0),
        want_pareto=args.pareto,
    )
    if args.claim_ttl is not None:
        message.claim.CopyFrom(
            placement_pb2.ClaimRequest(ttl_seconds=args.claim_ttl, request_id=args.request_id)
        )
    return message


# ---------------------------------------------------------------------- rendering


_json = message_json


def _iso(stamp: Any) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp.seconds))


def _ranked_lines(host: placement_pb2.RankedHost) -> list[str]:
    lines = [
        f"{host.rank:>3}  {host.host.host}  score {host.score:.3f}  "
        f"confidence {host.confidence:.2f}"
    ]
    lines += [f"       + {pro}" for pro in host.pros]
    lines += [f"       - {con}" for con in host.cons]
    return lines


def render_selection(response: placement_pb2.SelectHostsResponse) -> str:
    analysis_ms = response.analysis_time.ToNanoseconds() / 1e6
    lines = [
        f"{response.hosts_passed} of {response.hosts_considered} hosts passed the filters "
        f"(analysis {analysis_ms:.1f} ms, fleet snapshot {_iso(response.snapshot_at)})"
    ]
    if response.no_valid_host:
        lines.append("no valid host:")
        lines += [f"  {reason}" for reason in response.no_valid_host_reasons]
    for host in response.hosts:
        lines += _ranked_lines(host)
    if response.filtered_out:
        lines.append("filtered out:")
        width = max(len(c.filter) for c in response.filtered_out)
        lines += [f"  {c.filter:<{width}}  {c.hosts:>6}  {c.reason}" for c in response.filtered_out]
    if response.pareto_set:
        lines.append("pareto set:")
        for point in response.pareto_set:
            scores = ", ".join(f"{k} {v:.2f}" for k, v in sorted(point.objective_scores.items()))
            lines.append(f"  {point.host.host}: {scores}")
    if response.HasField("claim"):
        claim = response.claim
        lines.append(f"claim {claim.claim_id} on {claim.host.host} until {_iso(claim.expires_at)}")
    return "\n".join(lines)


def render_explanation(response: placement_pb2.ExplainHostResponse) -> str:
    lines = [response.summary]
    for rejection in response.filter_rejections:
        lines.append(f"  rejected by {rejection.filter}: {rejection.reason}")
    if response.HasField("evaluation"):
        lines += _ranked_lines(response.evaluation)
    if response.comparisons:
        lines.append("  factor                          host  winner   delta")
        for c in response.comparisons[:10]:
            lines.append(
                f"  {c.factor_id:<28} {c.host_contribution:>7.3f} "
                f"{c.winner_contribution:>7.3f} {c.delta:>+7.3f}"
            )
    return "\n".join(lines)


def render_factors(response: placement_pb2.ListFactorsResponse) -> str:
    if not response.factors:
        return "no factors"
    rows = [("FACTOR", "CATEGORY", "UNIT", "WEIGHT", "NAME")]
    for f in response.factors:
        category = placement_pb2.FactorCategory.Name(f.category).removeprefix("FACTOR_CATEGORY_")
        rows.append((f.factor_id, category.lower(), f.unit, f"{f.default_weight:g}", f.name))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4]
        for row in rows
    )
