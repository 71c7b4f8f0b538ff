"""Prometheus metrics of the coordinator's ingest, served on ``metrics_listen`` at ``/metrics``.

Names follow Prometheus conventions: counters end in ``_total`` when exposed (the client
library appends it), units are in the names (``_seconds``, ``_frames``). What to watch:

* ``novacron_coordinator_dropped_frames_total`` must stay 0. It counts frames that were
  received and accepted but then not committed (a failed store write). They were never
  acknowledged, so the agent still holds them and replays them: not lost, but each one
  is a replay and a sign of trouble with the database.
* ``novacron_coordinator_ack_latency_seconds``: from the arrival of a ``FrameBatch`` to
  its ``Ack``; dominated by the batching delay and the commit's fsync.
* ``novacron_coordinator_rejected_messages_total{reason}``: streams closed because of
  what an agent sent (see ``docs/coordinator.md`` for the reasons).

With ingest workers (``[ingest] workers`` > 1) every process writes its metrics into a
shared directory (prometheus_client's multiprocess mode) and the main process serves
the sums, plus ``novacron_coordinator_ingest_workers`` (running) and
``novacron_coordinator_ingest_worker_restarts_total``.
"""

from __future__ import annotations

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

from novacron.coordinator.config import parse_host_port

_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)

FRAMES_RECEIVED = Counter(
    "novacron_coordinator_frames_received",
    "Frames received in FrameBatches from agents (valid ones, duplicates included).",
)
FRAMES_STORED = Counter(
    "novacron_coordinator_frames_stored",
    "Frames committed to the store (a frame another stream stored first counts again).",
)
DUPLICATE_FRAMES = Counter(
    "novacron_coordinator_duplicate_frames",
    "Replayed frames ignored because their seq was already durable (at-least-once delivery).",
)
DROPPED_FRAMES = Counter(
    "novacron_coordinator_dropped_frames",
    "Accepted frames whose store write failed; never acknowledged, so the agent replays "
    "them. Should stay 0.",
)
REJECTED_MESSAGES = Counter(
    "novacron_coordinator_rejected_messages",
    "Agent messages that closed their stream with an error, by reason.",
    ["reason"],
)
ACK_LATENCY = Histogram(
    "novacron_coordinator_ack_latency_seconds",
    "From a FrameBatch's arrival to the Ack that covers it.",
    buckets=_LATENCY_BUCKETS,
)
STORE_WRITE_SECONDS = Histogram(
    "novacron_coordinator_store_write_seconds",
    "Duration of one batched store transaction (commit and fsync included).",
    buckets=_LATENCY_BUCKETS,
)
STORE_BATCH_FRAMES = Histogram(
    "novacron_coordinator_store_batch_frames",
    "Frames per store transaction (frames of many streams share one).",
    buckets=_BATCH_BUCKETS,
)
STORE_WRITE_FAILURES = Counter(
    "novacron_coordinator_store_write_failures",
    "Store transactions that failed (database locked, disk full, I/O error).",
)
CONNECTED_AGENTS = Gauge(
    "novacron_coordinator_connected_agents",
    "Agents with an open telemetry stream past the handshake.",
    multiprocess_mode="livesum",  # ingest workers: the sum over the running ones
)
NODES = Gauge(
    "novacron_coordinator_nodes",
    "Nodes of the fleet by liveness (live, stale, unknown).",
    ["status"],
)
MODEL_UPDATES_SENT = Counter(
    "novacron_coordinator_model_updates_sent",
    "ModelUpdate messages sent to agents, by model name.",
    ["model"],
)


#: Metrics the ingest sets: in ingest workers, each process's go through the shared
#: multiprocess files.
INGEST_METRICS = (
    FRAMES_RECEIVED,
    FRAMES_STORED,
    DUPLICATE_FRAMES,
    DROPPED_FRAMES,
    REJECTED_MESSAGES,
    ACK_LATENCY,
    STORE_WRITE_SECONDS,
    STORE_BATCH_FRAMES,
    STORE_WRITE_FAILURES,
    CONNECTED_AGENTS,
    MODEL_UPDATES_SENT,
)
#: Metrics only the main process sets; with ingest workers they are served beside the
#: workers' (``ingest_workers``). Labelled, so a worker importing this module creates
#: no series of them in the shared multiprocess files.
MAIN_PROCESS_METRICS = (NODES,)


class MetricsEndpoint:
    """A running ``/metrics`` HTTP server (a daemon thread); :meth:`close` stops it."""

    def __init__(self, listen: str, registry: CollectorRegistry | None = None) -> None:
        """Serve ``registry`` (default: this process's metrics) on ``listen``.

        ``listen``: ``HOST:PORT``, port 0 = any. OSError if it cannot bind.
        """
        host, port = parse_host_port(listen)
        self._server, self._thread = start_http_server(
            port, addr=host, registry=REGISTRY if registry is None else registry
        )
        self.host = host
        self.port = int(self._server.server_port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
