"""The in-memory fleet: what the decision engines read, kept current by the ingest.

The engines (placement filters and weighers, the optimizer, remediation rules) are
vectorised over all nodes, so they read a :class:`FleetSnapshot`: immutable, read-only
numpy arrays, one row per node. They never touch the database and never see a half
updated fleet. :class:`FleetState` is the mutable side: the ingest calls
:meth:`FleetState.observe` once per frame (O(1): one row written into preallocated
arrays), and :meth:`FleetState.snapshot` copies the rows into a new snapshot, reusing
the previous copy when no frame arrived since.

Liveness comes from the coordinator's clock, not the agents': a node whose last frame
was received more than ``stale_after_seconds`` ago is ``STALE`` (still planned with,
carefully), after ``unknown_after_seconds`` ``UNKNOWN`` (its data is too old to use).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from novacron.coordinator.config import CoordinatorSettings
from novacron.coordinator.store import Store, StoredFrame
from novacron.models.schema import NODE
from novacron.protos.runtime.jsonlog import LogOnce

log = logging.getLogger(__name__)
_once = LogOnce(log)


class Liveness(IntEnum):
    """Status codes in :attr:`FleetSnapshot.status` (ordered: higher is worse)."""

    LIVE = 0
    STALE = 1
    UNKNOWN = 2

    @property
    def label(self) -> str:
        return self.name.lower()


def liveness(
    last_seen_seconds: float | None,
    now: float,
    *,
    stale_after_seconds: float,
    unknown_after_seconds: float,
) -> Liveness:
    """The status of a node last heard from at ``last_seen_seconds`` (None: never)."""
    if last_seen_seconds is None:
        return Liveness.UNKNOWN
    silent = now - last_seen_seconds
    if silent > unknown_after_seconds:
        return Liveness.UNKNOWN
    if silent > stale_after_seconds:
        return Liveness.STALE
    return Liveness.LIVE


@dataclass(frozen=True, eq=False)
class FleetSnapshot:
    """The fleet at one instant; row ``i`` of every array is node ``node_ids[i]``.

    All arrays are read-only copies: a snapshot never changes after it was taken.
    """

    taken_at_seconds: float
    feature_names: tuple[str, ...]  # columns of ``features`` (the NODE schema)
    node_ids: npt.NDArray[np.str_]
    status: npt.NDArray[np.int8]  # Liveness codes
    last_seen_seconds: npt.NDArray[np.float64]  # last frame received, coordinator clock
    last_seq: npt.NDArray[np.int64]
    features: npt.NDArray[np.float32]  # (nodes, features); NaN = no data
    failure_probability: npt.NDArray[np.float32]  # latest frame's highest; NaN: none
    anomaly_score: npt.NDArray[np.float32]  # latest frame's highest; NaN: none
    index: Mapping[str, int]  # node id -> row

    def __len__(self) -> int:
        return len(self.node_ids)

    def row(self, node_id: str) -> int:
        """Row of ``node_id``; KeyError if the fleet has no such node."""
        return self.index[node_id]

    def mask(self, status: Liveness) -> npt.NDArray[np.bool_]:
        """Boolean mask of the nodes in ``status``."""
        return np.equal(self.status, int(status))


class FleetState:
    """The mutable fleet the ingest updates; thread-safe, cheap to snapshot."""

    def __init__(
        self,
        *,
        stale_after_seconds: float = 60.0,
        unknown_after_seconds: float = 600.0,
        clock: Callable[[], float] = time.time,
        feature_names: tuple[str, ...] = NODE.feature_names,
        schema_version: int = NODE.version,
        initial_capacity: int = 64,
    ) -> None:
        self.stale_after_seconds = stale_after_seconds
        self.unknown_after_seconds = unknown_after_seconds
        self.feature_names = feature_names
        self.schema_version = schema_version
        self._clock = clock
        self._lock = threading.Lock()
        self._index: dict[str, int] = {}
        self._ids: list[str] = []
        self._allocate(max(1, initial_capacity))
        self._changes = 0
        self._cached: FleetSnapshot | None = None
        self._cached_changes = -1

    @classmethod
    def from_settings(
        cls, settings: CoordinatorSettings, *, clock: Callable[[], float] = time.time
    ) -> FleetState:
        return cls(
            stale_after_seconds=settings.stale_after_seconds,
            unknown_after_seconds=settings.unknown_after_seconds,
            clock=clock,
        )

    def __len__(self) -> int:
        return len(self._ids)

    def load(self, store: Store) -> int:
        """Fill the fleet from every node's newest stored frame (start-up); return the count."""
        latest = store.latest_frames()
        for frame in latest:
            self.observe_values(
                frame.node_id,
                seq=frame.seq,
                received_at_seconds=frame.last_seen_seconds,
                schema_version=frame.schema_version,
                features=frame.features,
                failure_probability=frame.failure_probability,
                anomaly_score=frame.anomaly_score,
            )
        return len(latest)

    def observe(self, frame: StoredFrame, *, received_at_seconds: float | None = None) -> None:
        """Account for one stored frame (default receive time: the clock's now)."""
        self.observe_values(
            frame.node_id,
            seq=frame.seq,
            received_at_seconds=self._clock()
            if received_at_seconds is None
            else received_at_seconds,
            schema_version=frame.schema_version,
            features=frame.feature_values(),
            failure_probability=frame.failure_probability(),
            anomaly_score=frame.anomaly_score(),
        )

    def observe_frames(self, frames: Sequence[StoredFrame], received_at_seconds: float) -> None:
        """Account for committed frames, all received at ``received_at_seconds``.

        The writer's commit observer (see ``BatchWriter``): it passes one frame per node.
        """
        for frame in frames:
            self.observe(frame, received_at_seconds=received_at_seconds)

    def observe_values(
        self,
        node_id: str,
        *,
        seq: int,
        received_at_seconds: float,
        schema_version: int,
        features: npt.NDArray[np.float32],
        failure_probability: float,
        anomaly_score: float,
    ) -> None:
        """Record a frame. Any frame proves the node alive; only a newer seq replaces data."""
        with self._lock:
            row = self._index.get(node_id)
            if row is None:
                row = self._add(node_id)
            self._last_seen[row] = max(self._last_seen[row], received_at_seconds)
            self._changes += 1
            if seq <= self._last_seq[row]:
                return  # a replayed older frame: liveness only
            self._last_seq[row] = seq
            self._failure[row] = failure_probability
            self._anomaly[row] = anomaly_score
            if schema_version == self.schema_version and features.shape == (
                len(self.feature_names),
            ):
                self._features[row] = features
                _once.recovered(node_id, "node features usable again", node_id=node_id)
            else:
                self._features[row] = np.nan
                _once.problem(
                    node_id,
                    logging.WARNING,
                    "node features do not match the fleet's feature schema; shown as no data",
                    node_id=node_id,
                    schema_version=schema_version,
                    feature_count=int(features.size),
                )

    def snapshot(self, now: float | None = None) -> FleetSnapshot:
        """An immutable copy of the fleet with liveness as of ``now`` (default: the clock)."""
        at = self._clock() if now is None else now
        with self._lock:
            base = self._cached
            if base is None or self._cached_changes != self._changes:
                base = self._copy(at)
                self._cached, self._cached_changes = base, self._changes
        status = _readonly(self._status(base.last_seen_seconds, at))
        return FleetSnapshot(
            taken_at_seconds=at,
            feature_names=base.feature_names,
            node_ids=base.node_ids,
            status=status,
            last_seen_seconds=base.last_seen_seconds,
            last_seq=base.last_seq,
            features=base.features,
            failure_probability=base.failure_probability,
            anomaly_score=base.anomaly_score,
            index=base.index,
        )

    # ---------------------------------------------------------------- internals

    def _status(self, last_seen: npt.NDArray[np.float64], now: float) -> npt.NDArray[np.int8]:
        silent = now - last_seen
        status = np.full(last_seen.shape, Liveness.LIVE, dtype=np.int8)
        status[silent > self.stale_after_seconds] = Liveness.STALE
        status[silent > self.unknown_after_seconds] = Liveness.UNKNOWN
        return status

    def _copy(self, at: float) -> FleetSnapshot:
        n = len(self._ids)
        return FleetSnapshot(
            taken_at_seconds=at,
            feature_names=self.feature_names,
            node_ids=_readonly(np.array(self._ids, dtype=np.str_)),
            status=_readonly(np.zeros(n, dtype=np.int8)),
            last_seen_seconds=_readonly(self._last_seen[:n].copy()),
            last_seq=_readonly(self._last_seq[:n].copy()),
            features=_readonly(self._features[:n].copy()),
            failure_probability=_readonly(self._failure[:n].copy()),
            anomaly_score=_readonly(self._anomaly[:n].copy()),
            index=MappingProxyType(dict(self._index)),
        )

    def _add(self, node_id: str) -> int:
        row = len(self._ids)
        if row == len(self._last_seen):
            self._grow()
        self._ids.append(node_id)
        self._index[node_id] = row
        return row

    def _allocate(self, capacity: int) -> None:
        self._last_seen = np.full(capacity, -np.inf, dtype=np.float64)
        self._last_seq = np.zeros(capacity, dtype=np.int64)
        self._features = np.full((capacity, len(self.feature_names)), np.nan, dtype=np.float32)
        self._failure = np.full(capacity, np.nan, dtype=np.float32)
        self._anomaly = np.full(capacity, np.nan, dtype=np.float32)

    def _grow(self) -> None:
        """Double the capacity (amortised O(1) per new node)."""
        old = (self._last_seen, self._last_seq, self._features, self._failure, self._anomaly)
        self._allocate(2 * len(self._last_seen))
        n = len(old[0])
        self._last_seen[:n] = old[0]
        self._last_seq[:n] = old[1]
        self._features[:n] = old[2]
        self._failure[:n] = old[3]
        self._anomaly[:n] = old[4]


_Array = TypeVar("_Array", bound="np.ndarray[Any, Any]")


def _readonly(array: _Array) -> _Array:
    array.setflags(write=False)
    return array
