"""Placement benchmark: ``select`` latency at fleet scale, the per-host-loop ratio, policies.

1. Synthetic fleets (:func:`synthetic_hosts`: six host models, racks, zones, telemetry,
   power and cost columns; the full factor catalogue) of ``--hosts`` sizes. A fixed mix
   of ``--requests`` VM requests (Azure V1 flavour shapes; some with a GPU, CPU flags or
   an anti-affine server group) goes through :func:`.engine.select` in-process: p50 and
   p99 latency, decisions/s.
2. The same requests as ``SelectHosts`` calls over gRPC: the production servicer
   (:class:`.service.PlacementServicer` in an :class:`~novacron.coordinator.api_server.ApiServer`,
   plaintext, on a loopback port, its own event loop thread) serving the fixed
   synthetic table, called one at a time by a blocking client in the main thread:
   p50/p99 round trip (conversion both ways, the worker-thread hop, serialisation and
   the loopback socket included), decisions/s; the top host of every answer is checked
   against the in-process decision.
3. The same requests through the straightforward per-host loop of
   :mod:`bench.placement_baseline` (fleets up to ``--baseline-max-hosts``, the first
   ``--baseline-requests`` requests): its p50 and the ratio to the engine's p50; every
   baseline answer is asserted to rank the same hosts as the engine.
4. Policy comparison: the first ``--azure-requests`` VMs of ``../shared/data/azure_vm_v1``
   (converted by :mod:`.azure_trace`) replayed by ``simulate`` against an empty
   ``--azure-hosts`` synthetic fleet (written as HOSTS.csv, so the path is the CLI's)
   under every policy preset: placed, unplaced, peak/final active hosts, utilisation,
   stranded memory, decision latency.

    .venv/bin/python -m bench.placement [--hosts 1000,10000,50000] [--requests 300] [--quick]

Not part of CI; ``--quick`` (small fleets, few requests) is what the smoke test runs.

No BLAS thread limit is set here (nor needed): the engine makes no BLAS calls (see
:func:`.engine._score`), so its latency does not depend on ``OPENBLAS_NUM_THREADS``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np

from bench.placement_baseline import assert_same_ranking, prepare, select_baseline
from novacron.coordinator.api_server import ApiServer
from novacron.coordinator.config import ApiSettings, CoordinatorConfig, CoordinatorSettings
from novacron.coordinator.placement import convert as proto
from novacron.coordinator.placement.azure_trace import convert
from novacron.coordinator.placement.engine import Policy, select
from novacron.coordinator.placement.hosts import HostTable
from novacron.coordinator.placement.hosts_csv import hosts_from_csv
from novacron.coordinator.placement.hosts_synthetic import synthetic_hosts
from novacron.coordinator.placement.request import GroupPolicy, PlacementRequest, ServerGroup
from novacron.coordinator.placement.service import PlacementServicer
from novacron.coordinator.placement.settings import PlacementSettings
from novacron.coordinator.placement.simulate import POLICIES, simulate
from novacron.protos import placement_pb2, placement_pb2_grpc

TRACE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "azure_vm_v1"
# Azure V1 flavours (vCPUs, memory MiB), the shapes of the benchmark's request mix.
SHAPES = ((1, 768), (1, 1792), (2, 3584), (2, 4096), (4, 7168), (4, 28672), (8, 14336), (8, 57344))
#: Longest a benchmark SelectHosts call may take (a hung server fails the run).
CALL_TIMEOUT_SECONDS = 30.0
# HOSTS.csv columns derived from usage (left out: the simulated fleet starts empty).
USAGE_COLUMNS = ("vcpus_used", "memory_mib_used", "disk_gib_used", "gpus_used", "vm_count")


def request_mix(hosts: HostTable, count: int, seed: int = 0) -> list[PlacementRequest]:
    """``count`` deterministic requests: flavour shapes, 10 % with a GPU, 10 % needing
    AVX2, 20 % in an anti-affine group with members already on three hosts."""
    rng = np.random.default_rng(seed)
    requests = []
    for i in range(count):
        vcpus, memory_mib = SHAPES[int(rng.integers(len(SHAPES)))]
        draw = rng.random()
        group = None
        if draw < 0.2:
            members = tuple(str(h) for h in rng.choice(hosts.host_ids, size=3, replace=False))
            group = ServerGroup(f"group-{i}", GroupPolicy.ANTI_AFFINITY, member_hosts=members)
        requests.append(
            PlacementRequest(
                vcpus=vcpus,
                memory_mib=memory_mib,
                gpus=1 if 0.2 <= draw < 0.3 else 0,
                cpu_flags=("avx2",) if 0.3 <= draw < 0.4 else (),
                server_group=group,
            )
        )
    return requests


def percentile_ms(seconds: Sequence[float], q: float) -> float:
    return 1000.0 * float(np.percentile(np.asarray(seconds), q))


def time_engine(
    hosts: HostTable, policy: Policy, requests: Sequence[PlacementRequest]
) -> list[float]:
    select(hosts, requests[0], policy)  # warm the per-snapshot caches, like a live table
    latencies = []
    for request in requests:
        started = time.perf_counter()
        select(hosts, request, policy)
        latencies.append(time.perf_counter() - started)
    return latencies


@contextmanager
def serving(hosts: HostTable, policy: Policy) -> Iterator[str]:
    """The placement API on a loopback port, serving the fixed table ``hosts``; yields
    the address. The server runs on an event loop of its own in a daemon thread, as in
    the coordinator (where the loop is the main thread's)."""
    # Plaintext on loopback is this benchmark's point; its start-up warning is noise here.
    logging.getLogger("novacron.coordinator.api_server").setLevel(logging.ERROR)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="bench-api", daemon=True)
    thread.start()
    with tempfile.TemporaryDirectory() as scratch:
        config = CoordinatorConfig(
            coordinator=CoordinatorSettings(db_path=Path(scratch) / "unused.db", insecure=True),
            api=ApiSettings(listen="127.0.0.1:0"),
        )
        server = ApiServer(config, PlacementServicer(policy=policy, tables=lambda _: hosts))
        try:
            asyncio.run_coroutine_threadsafe(server.start(), loop).result(CALL_TIMEOUT_SECONDS)
            yield f"127.0.0.1:{server.port}"
        finally:
            asyncio.run_coroutine_threadsafe(server.stop(1.0), loop).result(CALL_TIMEOUT_SECONDS)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(CALL_TIMEOUT_SECONDS)
            loop.close()


def time_grpc(
    hosts: HostTable, policy: Policy, requests: Sequence[PlacementRequest]
) -> list[float]:
    """SelectHosts round trips, one at a time; each answer's best host is asserted to be
    the in-process engine's."""
    messages = [placement_pb2.SelectHostsRequest(spec=proto.spec_from_request(r)) for r in requests]
    expected = [select(hosts, r, policy).hosts[0].host_id for r in requests]
    latencies = []
    with serving(hosts, policy) as address, grpc.insecure_channel(address) as channel:
        stub = placement_pb2_grpc.PlacementServiceStub(channel)
        stub.SelectHosts(messages[0], timeout=CALL_TIMEOUT_SECONDS)  # connect, warm up
        for message, best in zip(messages, expected, strict=True):
            started = time.perf_counter()
            response = stub.SelectHosts(message, timeout=CALL_TIMEOUT_SECONDS)
            latencies.append(time.perf_counter() - started)
            got = response.hosts[0].host.host if response.hosts else None
            assert got == best, f"over gRPC the best host is {got}, in-process {best}"
    return latencies


def bench_fleets(args: argparse.Namespace, settings: PlacementSettings) -> None:
    policy = Policy.from_settings(settings)
    print(
        f"{len(policy.filters)} filters, {len(policy.weighers)} weighers, "
        f"{len(policy.factors)} factors; {args.requests} requests per fleet"
    )
    print(
        f"{'':>7} {'in-process':^30} {'over gRPC (loopback)':^30}   "
        f"per-host loop, {args.baseline_requests} requests"
    )
    print(
        f"{'hosts':>7} {'p50 ms':>8} {'p99 ms':>8} {'decisions/s':>12} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'decisions/s':>12}   {'p50 ms':>9} {'ratio':>7}"
    )
    for size in args.hosts:
        hosts = synthetic_hosts(size, seed=0, settings=settings)
        requests = request_mix(hosts, args.requests)
        line = f"{size:>7}"
        p50 = 0.0
        for timed in (time_engine, time_grpc):
            latencies = timed(hosts, policy, requests)
            p50 = p50 or percentile_ms(latencies, 50)
            line += (
                f" {percentile_ms(latencies, 50):>8.2f} {percentile_ms(latencies, 99):>8.2f} "
                f"{len(latencies) / sum(latencies):>12,.0f}"
            )
        if size <= args.baseline_max_hosts:
            sample = requests[: args.baseline_requests]
            fleet = prepare(hosts, policy, sample)
            loop = []
            for request in sample:
                started = time.perf_counter()
                ranked = select_baseline(fleet, request, policy)
                loop.append(time.perf_counter() - started)
                assert_same_ranking(select(hosts, request, policy), ranked)
            loop_p50 = 1000.0 * statistics.median(loop)
            line += f"   {loop_p50:>9.1f} {loop_p50 / p50:>6.0f}x"
        else:
            line += f"   {'-':>9} {'-':>7}"
        print(line, flush=True)


def write_hosts_csv(hosts: HostTable, path: Path) -> None:
    """The fleet as HOSTS.csv, empty (usage columns left out), telemetry kept."""
    numbers = [
        name for name in hosts.numbers if name not in USAGE_COLUMNS and not name.endswith("_total")
    ]
    texts = ("gpu_model", "zone", "rack", "arch", "cpu_model")
    totals = ("vcpus", "memory_mib", "disk_gib", "gpus")
    numa_nodes = (~np.isnan(hosts.numa_free_memory_mib)).sum(axis=1)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["host_id", *totals, *texts, "cpu_flags", "numa_nodes", *numbers, *hosts.feature_names]
        )
        for row in range(len(hosts)):
            writer.writerow(
                [
                    str(hosts.host_ids[row]),
                    *(_number(hosts.numbers[f"{total}_total"][row]) for total in totals),
                    *(str(hosts.texts[name][row]) for name in texts),
                    ";".join(sorted(hosts.flags["cpu_flags"].values(row))),
                    str(int(numa_nodes[row])) if numa_nodes[row] else "",
                    *(_number(hosts.numbers[name][row]) for name in numbers),
                    *(_number(float(value)) for value in hosts.features[row]),
                ]
            )


def _number(value: float) -> str:
    """Exact text for a cell; "" for NaN (not known), no ".0" on whole numbers."""
    if np.isnan(value):
        return ""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def bench_policies(args: argparse.Namespace, settings: PlacementSettings) -> None:
    if not TRACE_DIR.is_dir():
        print(f"\npolicy comparison skipped: {TRACE_DIR} not found")
        return
    requests = convert(TRACE_DIR)[: args.azure_requests]
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "hosts.csv"
        write_hosts_csv(synthetic_hosts(args.azure_hosts, seed=1, settings=settings), path)
        hosts = hosts_from_csv(path, settings=settings)
    span = requests[-1].arrival_seconds if requests else 0.0
    print(
        f"\npolicy comparison: first {len(requests)} VMs of the Azure V1 trace "
        f"({span:,.0f} s of arrivals, {sum(bool(r.group) for r in requests)} in anti-affine "
        f"groups) on {len(hosts)} empty synthetic hosts"
    )
    print(
        f"{'policy':<12} {'placed':>7} {'unplaced':>9} {'peak act':>9} {'final act':>10} "
        f"{'cpu util':>9} {'mem util':>9} {'stranded GiB':>13} {'p50 ms':>7} {'p99 ms':>7}"
    )
    for name in POLICIES:
        report = simulate(hosts, requests, settings, name).report
        print(
            f"{name:<12} {report.placed:>7} {report.unplaced:>9} {report.peak_active_hosts:>9} "
            f"{report.final_active_hosts:>10} {_share(report.utilisation_mean['vcpus']):>9} "
            f"{_share(report.utilisation_mean['memory_mib']):>9} "
            f"{report.stranded_mean['memory_mib'] / 1024:>13,.1f} "
            f"{1000 * (report.latency_p50_seconds or 0):>7.2f} "
            f"{1000 * (report.latency_p99_seconds or 0):>7.2f}",
            flush=True,
        )


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="1000,10000,50000", help="fleet sizes (comma list)")
    parser.add_argument("--requests", type=int, default=300, help="requests per fleet")
    parser.add_argument("--baseline-requests", type=int, default=5)
    parser.add_argument("--baseline-max-hosts", type=int, default=10_000)
    parser.add_argument(
        "--azure-requests", type=int, default=3000, help="0 skips the policy comparison"
    )
    parser.add_argument("--azure-hosts", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="1k hosts, few requests")
    args = parser.parse_args(argv)
    if args.quick:
        args.hosts = "1000" if args.hosts == parser.get_default("hosts") else args.hosts
        args.requests = min(args.requests, 50)
        args.baseline_requests = min(args.baseline_requests, 2)
        args.azure_requests = min(args.azure_requests, 300)
        args.azure_hosts = min(args.azure_hosts, 100)
    args.hosts = [int(size) for size in str(args.hosts).split(",")]
    settings = PlacementSettings()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (1, 5, 15 min) at start")
    bench_fleets(args, settings)
    if args.azure_requests > 0:
        bench_policies(args, settings)


if __name__ == "__main__":
    main()
