"""``novacron-coordinator simulate``: replay REQUESTS.csv against HOSTS.csv, print the report.

    novacron-coordinator simulate --hosts HOSTS.csv --requests REQUESTS.csv \\
        [--policy default|spread|pack|reliability|performance|energy|first-fit] \\
        [--json] [--assignments-out FILE] [--config FILE]

The replay itself is :mod:`.simulate`; this module parses the options, loads the two
files and renders the report (text for people, one JSON object with ``--json``).
``--assignments-out`` writes ``request_id,host_id`` per request (empty host: unplaced)
so any result can be checked independently of this code.

Exit status: 0 the replay ran (unplaced requests are a result, not an error); 2 a
usage, config or input-file error (the message names the file, line and column).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from novacron.coordinator.placement.hosts_csv import hosts_from_csv
from novacron.coordinator.placement.settings import PlacementSettings
from novacron.coordinator.placement.simulate import (
    POLICIES,
    RESOURCES,
    SimulationReport,
    format_assignments,
    read_requests,
    simulate,
)
from novacron.protos.runtime.tomlconfig import ConfigError

EXIT_USAGE = 2


def add_simulate_command(subparsers: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    """Add ``simulate``; the caller adds its shared options (``--config``)."""
    policies = "; ".join(f"{p.name}: {p.description}" for p in POLICIES.values())
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="what-if: replay VM requests against a fleet through the placement engine",
        description="Replay REQUESTS.csv (request_id, arrival_s, departure_s, vcpus, "
        "memory_mib, gpus, gpu_model, group) against the fleet in HOSTS.csv in time order, "
        "each arrival through the same engine as SelectHosts, and report placed and "
        "unplaced requests, active hosts, utilisation, stranded capacity and decision "
        f"latency. Policies: {policies}.",
    )
    parser.add_argument("--hosts", type=Path, required=True, metavar="HOSTS.csv")
    parser.add_argument("--requests", type=Path, required=True, metavar="REQUESTS.csv")
    parser.add_argument(
        "--policy",
        choices=tuple(POLICIES),
        default="default",
        help="objective preset (default: the config's [placement] objectives)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--assignments-out",
        type=Path,
        metavar="FILE",
        help="write request_id,host_id per request (empty host: unplaced)",
    )
    return parser


def run_simulate(args: argparse.Namespace, settings: PlacementSettings) -> int:
    """Run the replay for parsed ``args`` with the config's placement ``settings``."""
    try:
        hosts = hosts_from_csv(args.hosts, settings=settings)
        requests = read_requests(args.requests)
    except ConfigError as exc:
        print(f"novacron-coordinator simulate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    result = simulate(hosts, requests, settings, args.policy)
    if args.assignments_out is not None:
        try:
            args.assignments_out.write_text(format_assignments(result.assignments))
        except OSError as exc:
            print(f"novacron-coordinator simulate: {exc}", file=sys.stderr)
            return EXIT_USAGE
    if args.json:
        print(json.dumps(result.report.as_dict()))
    else:
        print(render_report(result.report))
    return 0


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _amounts(values: Mapping[str, float]) -> str:
    return ", ".join(f"{values[r]:g} {r}" for r in RESOURCES)


def _milliseconds(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1000 * seconds:.2f} ms"


def render_report(report: SimulationReport) -> str:
    """The report as a few aligned lines of plain text."""
    span = (
        f" from {report.start_seconds:g} s to {report.end_seconds:g} s"
        if report.start_seconds is not None and report.end_seconds is not None
        else ""
    )
    lines = [
        f"policy {report.policy}: {report.requests} requests on {report.hosts} hosts{span}",
        f"placed {report.placed}, unplaced {report.unplaced}",
    ]
    lines += [f"  {count:>7}  {reason}" for reason, count in report.unplaced_by_reason.items()]
    peak_at = (
        f" at {report.peak_active_at_seconds:g} s"
        if report.peak_active_at_seconds is not None
        else ""
    )
    lines.append(
        f"active hosts: peak {report.peak_active_hosts}{peak_at}, final {report.final_active_hosts}"
    )
    width = max(len(r) for r in RESOURCES) + 2
    lines.append(
        "utilisation of active hosts (used / allocatable):".ljust(52)
        + "".join(r.rjust(width) for r in RESOURCES)
    )
    for label, values in (
        ("time-weighted mean", report.utilisation_mean),
        ("after the last event", report.utilisation_final),
    ):
        lines.append(
            f"  {label}".ljust(52) + "".join(_number(values[r]).rjust(width) for r in RESOURCES)
        )
    lines.append(
        f"stranded capacity (no request shape fits): final {_amounts(report.stranded_final)} "
        f"on {report.stranded_hosts_final} hosts; time-weighted mean "
        f"{_amounts({r: round(v, 1) for r, v in report.stranded_mean.items()})}"
    )
    rate = "" if report.decisions_per_second is None else f", {report.decisions_per_second:,.0f}/s"
    lines.append(
        f"decision latency: p50 {_milliseconds(report.latency_p50_seconds)}, p99 "
        f"{_milliseconds(report.latency_p99_seconds)} ({report.decisions} decisions{rate})"
    )
    return "\n".join(lines)
