"""Ingest throughput: N simulated agents on loopback streaming to one coordinator.

For each fleet size the same client load runs twice in one invocation: against a real
``novacron-coordinator run`` subprocess (decode, validate, convert, batched durable
SQLite writes, acks after commit) and against a baseline: plain gRPC, a bare servicer
that acknowledges every message without decoding or storing it. Prints sustained
frames/s, p50/p99 ack latency, coordinator CPU and RSS, and our/baseline ratio.

Modes: ``--batch 1`` is the live shape (one frame per message); ``--batch 50`` is the
replay shape (a reconnecting agent's spool in batches). ``--interval 10`` paces each
agent at one message per 10 s (the default agent interval): the largest N that keeps
p99 ack within 250 ms is the fleet one coordinator sustains.

    .venv/bin/python -m bench.ingest --agents 100 1000 [--batch 1] [--window 1] [--seconds 10]
        [--workers 1 2] [--interval 10] [--no-baseline]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

from novacron.protos import telemetry_pb2, telemetry_pb2_grpc
from tests.coordinator.frames import make_frame
from tests.coordinator.ingest_support import AgentStream
from tests.fixtures.processes import console_script, free_port


def message_for(template: telemetry_pb2.Frame, first: int, count: int) -> bytes:
    """A FrameBatch message of ``count`` copies of ``template`` numbered from ``first``.

    Built the way an agent replays its spool: from serialized frames, not by building
    and serializing messages (which cost the client ~25 us per frame, on the same cores
    as the coordinator). A frame's bytes are its ``seq`` field followed by the template's
    other fields (protobuf fields may come in any order).
    """
    body = template_body(template)
    frames = b"".join(
        _length_delimited(1, b"\x08" + _varint(seq) + body) for seq in range(first, first + count)
    )
    return _length_delimited(telemetry_pb2.AgentMessage.FRAMES_FIELD_NUMBER, frames)


_BODIES: dict[int, bytes] = {}


def template_body(template: telemetry_pb2.Frame) -> bytes:
    """``template`` serialized without its seq (cached per template object)."""
    body = _BODIES.get(id(template))
    if body is None:
        copy = telemetry_pb2.Frame()
        copy.CopyFrom(template)
        copy.ClearField("seq")
        body = _BODIES[id(template)] = copy.SerializeToString()
    return body


def _length_delimited(field: int, data: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


async def one_agent(
    address: str,
    node_id: str,
    opts: dict[str, Any],
    window: tuple[float, float],
    out: list[tuple[int, list[float]]],
) -> None:
    """One agent; counts the frames and ack latencies of messages sent within ``window``.

    ``window``: (measure from, stop at), monotonic clock. Messages sent before it (the
    warm-up, while the fleet connects) are acknowledged but not counted.
    """
    measure_from, stop_at = window
    template = make_frame(node_id, 1)
    latencies: list[float] = []
    frames = 0
    if opts["interval"]:  # like a real fleet, agents' cycles are spread over the interval
        await asyncio.sleep(random.random() * opts["interval"])
    # A subchannel pool of its own: one TCP connection per agent, as real agents on
    # their own hosts have (gRPC would otherwise multiplex every agent of this client
    # process over one shared connection, which one ingest worker alone would serve).
    options = [("grpc.use_local_subchannel_pool", 1)]
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        lifetime = opts["warmup"] + opts["seconds"] + opts["interval"] + 60.0
        stream, welcome = await AgentStream.connect(channel, node_id, timeout=lifetime)
        seq = welcome.highest_durable_seq + 1
        sent_at: list[float] = []
        while time.monotonic() < stop_at or sent_at:
            while len(sent_at) < opts["window"] and time.monotonic() < stop_at:
                await stream.send(message_for(template, seq, opts["batch"]))
                seq += opts["batch"]
                sent_at.append(time.monotonic())
            await stream.recv_ack()
            sent = sent_at.pop(0)
            latency = time.monotonic() - sent
            if sent >= measure_from:
                latencies.append(latency)
                frames += opts["batch"]
            if opts["interval"]:
                # The next cycle, unless the run ends first (streams have a deadline).
                pause = min(opts["interval"] - latency, stop_at - time.monotonic())
                await asyncio.sleep(max(0.0, pause))
        await stream.close()
        await stream.end()
    out.append((frames, latencies))


def client_process(
    address: str, nodes: list[str], opts: dict[str, Any], start_at: float, queue: Any
) -> None:
    async def main() -> list[tuple[int, list[float]]]:
        out: list[tuple[int, list[float]]] = []
        await asyncio.sleep(max(0.0, start_at - time.time()))
        measure_from = time.monotonic() + opts["warmup"]
        window = (measure_from, measure_from + opts["seconds"])
        await asyncio.gather(*(one_agent(address, n, opts, window, out) for n in nodes))
        return out

    try:
        queue.put(asyncio.run(main()))
    except BaseException:
        queue.put([])  # the driver must not wait forever for a client that failed
        raise


class PlainAck:
    """The baseline: gRPC streaming with an ack per message, no decoding, no storing."""

    async def Stream(self, requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        acked = 0
        async for message in requests:
            if message.HasField("hello"):
                yield telemetry_pb2.CoordinatorMessage(
                    welcome=telemetry_pb2.Welcome(highest_durable_seq=0)
                )
                continue
            acked += max(1, len(message.frames.frames))
            yield telemetry_pb2.CoordinatorMessage(ack=telemetry_pb2.Ack(highest_durable_seq=acked))


def plain_server(address: str) -> None:
    async def serve() -> None:
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 32 << 20)])
        servicer: Any = PlainAck()  # an aio servicer; the generated stubs type the sync API
        telemetry_pb2_grpc.add_TelemetryServiceServicer_to_server(servicer, server)
        health = __import__("grpc_health.v1.health", fromlist=["aio"]).aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        server.add_insecure_port(address)
        await server.start()
        await server.wait_for_termination()

    asyncio.run(serve())


def wait_healthy(address: str, proc: Any) -> None:
    with grpc.insecure_channel(address) as channel:
        for _ in range(300):
            try:
                health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
                return
            except grpc.RpcError:
                if proc.poll() is not None if hasattr(proc, "poll") else not proc.is_alive():
                    raise SystemExit("server exited during start-up") from None
                time.sleep(0.1)
    raise SystemExit("server did not become healthy")


@dataclass
class Result:
    frames_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_percent: float
    rss_mib: float


def process_tree(pid: int) -> list[psutil.Process]:
    """The server and its children (ingest workers)."""
    server = psutil.Process(pid)
    return [server, *server.children(recursive=True)]


def cpu_seconds(processes: list[psutil.Process]) -> dict[int, float]:
    seconds = {}
    for p in processes:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        seconds[p.pid] = times.user + times.system
    return seconds


def drive(address: str, pid: int, n_agents: int, opts: dict[str, Any]) -> Result:
    """Run the agents against the server at ``address``; CPU and RSS are of its whole tree."""
    queue: Any = mp.Queue()
    nodes = [f"hv-{i:04d}" for i in range(n_agents)]
    start_at = time.time() + 1.5
    procs = [
        mp.Process(
            target=client_process, args=(address, nodes[i :: opts["procs"]], opts, start_at, queue)
        )
        for i in range(opts["procs"])
    ]
    for p in procs:
        p.start()
    time.sleep(max(0.0, start_at + opts["warmup"] - time.time()))
    tree = process_tree(pid)
    cpu0 = cpu_seconds(tree)
    t0 = time.monotonic()
    results = [r for _ in procs for r in queue.get()]
    elapsed = time.monotonic() - t0
    cpu1 = cpu_seconds(tree)
    rss = 0
    for member in tree:
        try:
            rss += member.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    for p in procs:
        p.join()
    frames = sum(f for f, _ in results)
    lat = sorted(x for _, xs in results for x in xs) or [float("nan")]

    def pct(q: float) -> float:
        return float(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000)

    cpu = sum(cpu1[p] - cpu0.get(p, 0.0) for p in cpu1) / elapsed * 100
    return Result(frames / opts["seconds"], pct(0.5), pct(0.99), cpu, rss / 2**20)


def ours(n_agents: int, workers: int, opts: dict[str, Any]) -> Result:
    tmp = Path(tempfile.mkdtemp(prefix="novacron-ingest-"))
    address = f"127.0.0.1:{free_port()}"
    config = tmp / "coordinator.toml"
    config.write_text(f"[store]\nbatch_max_delay_seconds = {opts['delay']}\n")
    coordinator = console_script("novacron-coordinator")
    with (tmp / "log").open("wb") as log:
        server = subprocess.Popen(
            [
                str(coordinator),
                "run",
                "--insecure",
                "--listen",
                address,
                "--api-listen",
                "127.0.0.1:0",
                "--db",
                str(tmp / "c.db"),
                "--config",
                str(config),
                "--log-level",
                "warning",
                "--ingest-workers",
                str(workers),
            ],
            stderr=log,
        )
        try:
            wait_healthy(address, server)
            return drive(address, server.pid, n_agents, opts)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)


def baseline(n_agents: int, opts: dict[str, Any]) -> Result:
    address = f"127.0.0.1:{free_port()}"
    server = mp.Process(target=plain_server, args=(address,))
    server.start()
    try:
        wait_healthy(address, server)
        assert server.pid is not None
        return drive(address, server.pid, n_agents, opts)
    finally:
        server.terminate()
        server.join(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--batch", type=int, default=1, help="frames per message")
    parser.add_argument("--window", type=int, default=1, help="unacked messages per agent")
    parser.add_argument(
        "--interval",
        type=float,
        default=0.0,
        help="seconds between an agent's messages (0: as fast as acks allow)",
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--procs", type=int, default=2, help="client processes")
    parser.add_argument("--delay", type=float, default=0.05, help="store batch_max_delay_seconds")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="coordinator ingest processes ([ingest] workers), one run each",
    )
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the plain gRPC baseline run"
    )
    args = parser.parse_args()
    opts = vars(args)
    # Paced runs measure the steady state: first every agent connects and sends once.
    opts["warmup"] = args.interval
    print(
        f"batch {args.batch} frame(s)/message, window {args.window}, interval "
        f"{args.interval or 'none'}, {args.seconds:.0f} s per run"
        f"{f' after {args.interval:g} s of warm-up' if args.interval else ''}, "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"{'agents':>6} {'server':<14}{'frames/s':>10}{'ack p50 ms':>12}{'ack p99 ms':>12}"
        f"{'CPU %':>8}{'RSS MiB':>9}"
    )
    print("(CPU and RSS: the coordinator's whole process tree, workers included)")
    for n in args.agents:
        rows = {f"ours, {w} proc": ours(n, w, opts) for w in args.workers}
        if not args.no_baseline:
            rows["plain gRPC"] = baseline(n, opts)
        for label, r in rows.items():
            print(
                f"{n:>6} {label:<14}{r.frames_per_second:>10.0f}{r.p50_ms:>12.1f}"
                f"{r.p99_ms:>12.1f}{r.cpu_percent:>8.0f}{r.rss_mib:>9.0f}",
                flush=True,
            )
        if "plain gRPC" in rows:
            plain = max(rows["plain gRPC"].frames_per_second, 1e-9)
            best = max(r.frames_per_second for label, r in rows.items() if label != "plain gRPC")
            print(f"{'':>6} ratio best ours/plain gRPC throughput {best / plain:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
