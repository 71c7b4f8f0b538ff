"""The coordinator's durable store: what it holds, what it promises, and its interface.

The ingest talks to a :class:`Store` only, never to SQLite: the embedded default is
:class:`~novacron.coordinator.store_sqlite.SqliteStore` (SQLite through sqlite-utils,
WAL), and a PostgreSQL/TimescaleDB backend can replace it for large fleets by
implementing this same Protocol (frames become a hypertable, downsampling a continuous
aggregate, the ack rule below a per-node row updated in the same transaction).

What the store holds: per node its identity row (``nodes``), its inventory from Hello,
every frame (decoded node features as float32 in schema order plus the serialized
``Frame`` protobuf, so nothing is lost), the predictions and anomalies inside frames,
the VMs frames mention, and downsampled means of frames older than the raw retention.

Acknowledgement rule (what ``write_batch`` returns and ``Welcome`` sends)
-----------------------------------------------------------------------
The agent deletes every spooled frame with ``seq <= ack``. So the store acks, per node,
a *durable watermark* ``W``: every frame with ``seq <= W`` that the agent still held is
committed. ``W`` is persisted with the frames, in the same transaction, and is what
``Welcome.highest_durable_seq`` carries -- not ``MAX(seq)``, which may lie beyond frames
that were never committed.

* ``W`` advances over the contiguous run of stored seqs ``W+1, W+2, ...``; a frame
  beyond a gap is stored (exactly once) but not acked, so the agent keeps everything
  from the gap on and replays it; once the gap is filled, ``W`` jumps over the frames
  stored earlier.
* A gap that the agent itself made (its bounded spool dropped frames) would block the
  agent forever under that rule alone. The agent replays *everything it holds* above
  ``Welcome.highest_durable_seq``, in seq order, so the first frames of a node after a
  Welcome start at the agent's oldest frame: seqs between ``W`` and them no longer exist
  anywhere. The ingest passes such nodes in ``resumed`` for the first batch of a stream,
  and ``W`` may then start at that batch's first seq. The skipped range stays visible
  as a gap in :meth:`Store.node_summary`.
* A write that fails (:class:`StoreUnavailable`) stores nothing of its batch. The stream
  whose frames it held must not be acked again; the ingest closes it so the agent
  reconnects and replays from ``W + 1``.

Exactly once: frames are keyed by ``(node_id, seq)`` and inserted with ``INSERT OR
IGNORE``; predictions and anomalies by their frame and subject. Replays and overlapping
batches change nothing already stored.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

# Frames store node features as little-endian float32 in feature-schema order.
FEATURE_DTYPE = np.dtype("<f4")


class StoreError(Exception):
    """The store cannot be used as asked (no database file, not a coordinator database)."""


class StoreUnavailable(StoreError):
    """An operation failed for a reason outside the data: locked, disk full, I/O error.

    Nothing of the failed operation was stored; retrying later may succeed. ``cause``
    is the underlying database error.
    """

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


# The records inside a frame are NamedTuples, not frozen dataclasses: the ingest builds
# about fifteen per frame, and a NamedTuple is built several times faster.


class StoredPrediction(NamedTuple):
    """One failure prediction of a frame (see ``FailurePrediction`` in common.proto)."""

    scope: str  # subject kind: "node", "disk", "gpu", "memory", "nic", "vm"
    subject: str  # id within the kind: node id, disk serial, GPU UUID ...
    model_name: str
    model_version: str
    horizon_seconds: float
    probability: float  # 0..1
    ci_low: float
    ci_high: float


class StoredAnomaly(NamedTuple):
    """One anomaly of a frame (see ``Anomaly`` in common.proto)."""

    scope: str  # subject kind: "node" or "vm"
    subject: str  # node id or VM UUID
    model_name: str
    score: float  # 0..1
    severity: str  # "info", "warning", "critical", "unspecified"


class StoredVm(NamedTuple):
    """A VM as one frame saw it."""

    vm_uuid: str
    name: str
    vcpus: int
    memory_bytes: int


@dataclass(frozen=True)
class StoredFrame:
    """One frame as the store keeps it: indexed columns plus the full protobuf.

    ``features`` are the node features as float32 little-endian bytes in schema order
    (NaN = no data), so the fleet snapshot and downsampling never parse ``payload``.
    """

    node_id: str
    seq: int
    timestamp_seconds: float  # end of the feature window, Unix time (agent clock)
    schema_version: int
    features: bytes
    payload: bytes  # serialized telemetry Frame
    vms: tuple[StoredVm, ...] = ()
    predictions: tuple[StoredPrediction, ...] = ()
    anomalies: tuple[StoredAnomaly, ...] = ()

    @property
    def vm_count(self) -> int:
        return len(self.vms)

    def feature_values(self) -> npt.NDArray[np.float32]:
        """The node features (read-only view on ``features``)."""
        return np.frombuffer(self.features, dtype=FEATURE_DTYPE)

    def failure_probability(self) -> float:
        """Highest failure probability any model gives for anything on the node; NaN: none."""
        return max((p.probability for p in self.predictions), default=float("nan"))

    def anomaly_score(self) -> float:
        """Highest anomaly score of the frame (node or VM); NaN: none."""
        return max((a.score for a in self.anomalies), default=float("nan"))


@dataclass(frozen=True)
class NodeHello:
    """What a stream's Hello tells the store about a node."""

    node_id: str
    agent_version: str
    schema_version: int
    inventory: Mapping[str, Any] = field(default_factory=dict)  # JSON-able


@dataclass(frozen=True)
class NodeSummary:
    """One node's row of ``novacron-coordinator fleet``: what the store holds for it."""

    node_id: str
    connection: str  # "connected" or "disconnected" (last Hello / stream end seen)
    last_seen_seconds: float | None  # last frame received, coordinator clock; None: never
    frames_stored: int  # raw frames (older ones are downsampled)
    lowest_seq: int | None
    highest_seq: int | None
    gaps: int  # missing seq ranges between lowest_seq and highest_seq
    missing_frames: int  # seqs missing in those ranges
    acked_seq: int  # durable watermark (the last ack / Welcome value)


@dataclass(frozen=True)
class LatestFrame:
    """A node's newest stored frame, reduced to what the fleet snapshot needs."""

    node_id: str
    seq: int
    timestamp_seconds: float
    last_seen_seconds: float  # coordinator clock
    schema_version: int
    features: npt.NDArray[np.float32]
    failure_probability: float  # NaN: no prediction in the frame
    anomaly_score: float  # NaN: no anomaly in the frame


@dataclass(frozen=True)
class CompactionResult:
    """What one retention/downsampling pass did."""

    frames_downsampled: int  # raw frames folded into downsampled rows and deleted
    downsampled_rows_written: int  # rows inserted or merged
    downsampled_rows_deleted: int  # downsampled rows past their retention
    predictions_deleted: int
    anomalies_deleted: int


class Store(Protocol):
    """The coordinator's durable store (SQLite today; see the module docstring)."""

    def record_hello(self, hello: NodeHello, *, now: float) -> int:
        """Upsert the node and its inventory; return its watermark for ``Welcome``."""
        ...

    def record_disconnect(self, node_id: str, *, now: float) -> None:
        """Mark the node's stream as ended."""
        ...

    def highest_durable_seq(self, node_id: str) -> int:
        """The node's durable watermark (0 for an unknown node)."""
        ...

    def write_batch(
        self,
        frames: Sequence[StoredFrame],
        *,
        resumed: Collection[str] = (),
        now: float | None = None,
    ) -> dict[str, int]:
        """Commit ``frames`` and what they carry in ONE transaction; return the acks.

        Returns the durable watermark of every node in the batch (the ack rule in the
        module docstring). ``resumed``: nodes whose frames here are the first of a
        stream after its Welcome. ``now`` (coordinator clock, default: time.time()) is
        recorded as the nodes' ``last_seen``. Raises :class:`StoreUnavailable` when
        nothing could be committed.
        """
        ...

    def node_summary(self) -> list[NodeSummary]:
        """Per node: frames stored, lowest/highest seq, gaps; sorted by node id."""
        ...

    def latest_frames(self) -> list[LatestFrame]:
        """Every node's newest frame, to rebuild the fleet snapshot at start-up."""
        ...

    def compact(self, now: float) -> CompactionResult:
        """Apply retention: downsample old raw frames, delete expired rows."""
        ...

    def close(self) -> None: ...

    def inventories(self) -> dict[str, dict[str, Any]]:
        """Every node's inventory from its latest Hello (node id -> the stored JSON object)."""
        ...

    def current_vms(self) -> dict[str, list[StoredVm]]:
        """The VMs each node runs now (node id -> VMs; nodes without VMs are left out).

        "Now" is the node's newest frame; a VM that frame no longer lists may still be
        returned for up to the store's VM refresh interval (SQLite: 60 s), so used
        capacity is over- rather than under-counted.
        """
        ...
