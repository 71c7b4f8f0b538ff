"""Ingest workers: several processes on the agent port, supervised by the main process.

Real worker processes (spawned), real sockets, real SQLite: frames of many agents spread
over the workers are stored exactly once and acknowledged after commit, the main
process's fleet follows, a killed worker is replaced without losing a frame, and no
worker outlives its main process.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import time
from pathlib import Path

import grpc
import numpy as np
import psutil
import pytest

from novacron.coordinator.fleet import FleetState
from novacron.coordinator.ingest_workers import (
    AUTO_WORKERS_MAX,
    apply_fleet_rows,
    fleet_rows,
    reserve_port,
    resolve_workers,
)
from novacron.coordinator.ingest_writer import newest_per_node
from novacron.coordinator.model_push import ModelSigner, read_model
from novacron.coordinator.pki import generate_signing_key
from novacron.protos import telemetry_pb2
from tests.coordinator.frames import make_frame, stored_range
from tests.coordinator.ingest_support import (
    AgentStream,
    ServerThread,
    copy_bundled,
    frames_message,
    insecure_config,
    stored_seqs,
)
from tests.coordinator.process_support import CoordinatorProcess, SpoolAgent, wait_until

# ---------------------------------------------------------------- pure parts


def test_auto_means_one_worker_per_usable_cpu_within_bounds() -> None:
    assert resolve_workers(3) == 3
    auto = resolve_workers(0)
    assert 1 <= auto <= AUTO_WORKERS_MAX
    assert auto == min(AUTO_WORKERS_MAX, len(os.sched_getaffinity(0)))


def test_the_port_is_held_for_the_workers_and_refused_when_taken() -> None:
    held = reserve_port("127.0.0.1:0")
    try:
        port = held.getsockname()[1]
        assert port > 0
        # Held: a program without SO_REUSEPORT cannot take the port meanwhile.
        with socket.socket() as intruder, pytest.raises(OSError):
            intruder.bind(("127.0.0.1", port))
        # A worker binds it with SO_REUSEPORT, as gRPC does with grpc.so_reuseport=1.
        with socket.socket() as worker:
            worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            worker.bind(("127.0.0.1", port))
            worker.listen()
            # A second coordinator on the port while it is served: refused, not joined.
            with pytest.raises(OSError, match="another process listens"):
                reserve_port(f"127.0.0.1:{port}").close()
    finally:
        held.close()

    with socket.socket() as other:  # anybody else listening there: refused as well
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(OSError):
            reserve_port(f"127.0.0.1:{other.getsockname()[1]}").close()


def test_fleet_rows_give_the_main_process_what_the_writer_saw() -> None:
    frames = stored_range("hv-1", 1, 3) + stored_range("hv-2", 7, 8, probability=0.4)
    direct = FleetState(clock=lambda: 50.0)
    direct.observe_frames(newest_per_node(frames), 40.0)
    relayed = FleetState(clock=lambda: 50.0)
    apply_fleet_rows(relayed, fleet_rows(newest_per_node(frames), 40.0))

    a, b = direct.snapshot(50.0), relayed.snapshot(50.0)
    assert list(b.node_ids) == ["hv-1", "hv-2"]
    assert list(b.last_seq) == [3, 8] == list(a.last_seq)
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.last_seen_seconds, b.last_seen_seconds)
    assert math.isclose(float(b.failure_probability[1]), 0.4, rel_tol=1e-6)


# ---------------------------------------------------------------- real workers


async def stream_many(address: str, nodes: list[str], frames: int, batch: int) -> list[int]:
    """Each node streams frames 1..frames in batches, one batch in flight; the last acks."""

    async def one(node: str) -> int:
        async with grpc.aio.insecure_channel(address) as channel:
            stream, welcome = await AgentStream.connect(channel, node)
            assert welcome.highest_durable_seq == 0
            acked = 0
            for first in range(1, frames + 1, batch):
                seqs = range(first, min(frames, first + batch - 1) + 1)
                await stream.send(frames_message([make_frame(node, s) for s in seqs]))
                acked = await stream.recv_ack()
                assert acked == seqs[-1]
            await stream.close()
            await stream.end()
            return acked

    return list(await asyncio.gather(*(one(node) for node in nodes)))


def test_workers_store_every_frame_once_and_keep_the_main_fleet_current(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    nodes = [f"hv-{n:02d}" for n in range(16)]
    with ServerThread(insecure_config(db, workers=2)) as running:
        service = running.service
        assert service.workers == 2
        acks = asyncio.run(stream_many(running.address, nodes, 30, 7))
        assert acks == [30] * len(nodes)
        # Acked means committed: every frame is in the file already.
        for node in nodes:
            assert stored_seqs(db, node) == list(range(1, 31))
        # The workers' commits reach the main process's fleet within a second.
        wait_until(lambda: len(service.fleet) == len(nodes), timeout=5)
        wait_until(lambda: list(service.fleet.snapshot().last_seq) == [30] * 16, timeout=5)
        snapshot = service.fleet.snapshot()
        assert sorted(snapshot.node_ids) == nodes
        row = snapshot.row("hv-03")
        expected = np.asarray(make_frame("hv-03", 30).node_features.values, dtype=np.float32)
        np.testing.assert_array_equal(snapshot.features[row], expected)


@pytest.mark.slow
def test_a_killed_worker_is_restarted_and_no_frame_is_lost_or_doubled(tmp_path: Path) -> None:
    coordinator = CoordinatorProcess(tmp_path, workers=2)
    agents = [SpoolAgent(tmp_path, f"hv-{n}", 600) for n in range(4)]
    coordinator.start()
    workers = coordinator.workers()
    assert len(workers) == 2
    for agent in agents:
        agent.start(coordinator.address)
    wait_until(lambda: sum(a.spool.last_acked for a in agents) >= 200)
    workers[0].send_signal(signal.SIGKILL)
    for agent in agents:
        agent.join()

    # A replacement was started for the dead worker.
    wait_until(lambda: len(coordinator.workers()) == 2, timeout=30)
    replaced = {p.pid for p in coordinator.workers()}
    assert workers[0].pid not in replaced and workers[1].pid in replaced
    coordinator.signal(signal.SIGTERM)
    assert coordinator.wait() == 0
    log = coordinator.log.read_text()
    assert "ingest worker died; restarting it" in log
    for agent in agents:
        assert stored_seqs(coordinator.db, agent.node_id) == list(range(1, 601))
        assert agent.spool.depth().frames == 0


@pytest.mark.slow
def test_no_worker_outlives_the_main_process(tmp_path: Path) -> None:
    coordinator = CoordinatorProcess(tmp_path, workers=2)
    coordinator.start()
    workers = coordinator.workers()
    assert len(workers) == 2

    coordinator.signal(signal.SIGKILL)  # no chance to stop them: their pipes close
    coordinator.wait()
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, f"orphaned workers: {[p.pid for p in alive]}"

    # The port is free again for the next coordinator, which gets fresh workers.
    started = time.monotonic()
    coordinator.start()
    assert time.monotonic() - started < 20
    assert len(coordinator.workers()) == 2
    workers = coordinator.workers()
    coordinator.signal(signal.SIGTERM)
    assert coordinator.wait() == 0
    _, alive = psutil.wait_procs(workers, timeout=5)
    assert not alive


def test_published_models_reach_agents_of_every_worker(tmp_path: Path) -> None:
    generate_signing_key(tmp_path / "signing.key")
    card = copy_bundled(tmp_path / "models", "node-anomaly")
    update = read_model(
        tmp_path / "models" / f"{card.name}.card.json", ModelSigner(tmp_path / "signing.key")
    )

    async def first_push(address: str, node: str) -> telemetry_pb2.ModelUpdate:
        async with grpc.aio.insecure_channel(
            address, options=[("grpc.use_local_subchannel_pool", 1)]
        ) as channel:
            stream, _ = await AgentStream.connect(channel, node)
            while (message := await stream.recv()).WhichOneof("body") != "model_update":
                pass
            await stream.close()
            return message.model_update

    with ServerThread(insecure_config(tmp_path / "c.db", workers=2)) as running:
        running.service.publish_models([update])

        async def main() -> list[telemetry_pb2.ModelUpdate]:
            nodes = [f"hv-{n}" for n in range(8)]  # own connections: both workers serve
            return list(await asyncio.gather(*(first_push(running.address, n) for n in nodes)))

        pushed = asyncio.run(asyncio.wait_for(main(), 30))
    assert {(p.model_name, p.sha256) for p in pushed} == {(card.name, card.sha256)}
