"""The coordinator's current recommendations, and how they change over time.

Recommendations come from independent *sources* (capacity forecasts, right-sizing,
consolidation), each a function of the clock that returns ``Recommendation`` messages
with stable ids: the same advice about the same subject keeps its id from one refresh
to the next, so a watcher sees ``UPDATED`` rather than a withdraw-and-add. The book
keeps the latest answer of every source; a source that fails keeps its previous answer
(logged once per failure streak), so one broken input never empties the list.

Everything here is plain data: :func:`diff`, :func:`select` and :func:`paginate` are
pure, which is what GetRecommendations, WatchRecommendations and the tests share.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from novacron.protos import common_pb2, optimization_pb2

log = logging.getLogger(__name__)

Recommendation = optimization_pb2.Recommendation
Event = optimization_pb2.RecommendationEvent
Kind = optimization_pb2.RecommendationKind
RecommendationSource = Callable[[float], Sequence[optimization_pb2.Recommendation]]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# Subscribers slower than this many unread events lose their stream (they resubscribe
# with include_current), instead of the coordinator buffering without bound.
MAX_PENDING_EVENTS = 10_000


@dataclass(frozen=True)
class NodePlacement:
    """Where a node sits, for scope filtering: its zone and aggregates."""

    zone: str = ""
    aggregates: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Snapshot:
    """One refresh's recommendations (ordered: highest saving first) and its time."""

    recommendations: tuple[optimization_pb2.Recommendation, ...] = ()
    taken_at_seconds: float = 0.0
    nodes: Mapping[str, NodePlacement] = field(default_factory=dict)


def ordered(
    recommendations: Iterable[optimization_pb2.Recommendation],
) -> tuple[optimization_pb2.Recommendation, ...]:
    """Highest expected saving first; forecasts (no saving) soonest threshold first."""

    def key(rec: optimization_pb2.Recommendation) -> tuple[float, float, str]:
        forecast = rec.forecast
        soon = (
            forecast.time_to_threshold_seconds
            if rec.HasField("forecast") and forecast.HasField("time_to_threshold_seconds")
            else float("inf")
        )
        return (-rec.expected_saving_per_hour, soon, rec.recommendation_id)

    return tuple(sorted(recommendations, key=key))


def diff(
    old: Sequence[optimization_pb2.Recommendation],
    new: Sequence[optimization_pb2.Recommendation],
) -> list[optimization_pb2.RecommendationEvent]:
    """Events turning ``old`` into ``new``: added, updated (content changed), withdrawn.

    ``created_at`` and ``valid_until`` are restamped on every refresh, so they do not
    count as a change; anything else does.
    """
    before = {rec.recommendation_id: rec for rec in old}
    after = {rec.recommendation_id: rec for rec in new}
    events: list[optimization_pb2.RecommendationEvent] = []
    types = optimization_pb2.RecommendationEventType
    for rec in new:
        previous = before.get(rec.recommendation_id)
        if previous is None:
            events.append(
                Event(event_type=types.RECOMMENDATION_EVENT_TYPE_ADDED, recommendation=rec)
            )
        elif _content(previous) != _content(rec):
            events.append(
                Event(event_type=types.RECOMMENDATION_EVENT_TYPE_UPDATED, recommendation=rec)
            )
    for rec_id in before.keys() - after.keys():
        events.append(
            Event(
                event_type=types.RECOMMENDATION_EVENT_TYPE_WITHDRAWN,
                # id, kind and subject only: enough for a watcher's scope filter
                recommendation=Recommendation(
                    recommendation_id=rec_id,
                    kind=before[rec_id].kind,
                    subject=before[rec_id].subject,
                ),
            )
        )
    return events


def _content(rec: optimization_pb2.Recommendation) -> bytes:
    copy = Recommendation()
    copy.CopyFrom(rec)
    copy.ClearField("created_at")
    copy.ClearField("valid_until")
    if copy.HasField("forecast"):
        for point in copy.forecast.points:
            point.ClearField("at")  # forecast points move with "now" on every refresh
    return copy.SerializeToString(deterministic=True)


def in_scope(
    rec: optimization_pb2.Recommendation,
    scope: optimization_pb2.Scope,
    nodes: Mapping[str, NodePlacement],
    kinds: Sequence[Kind] = (),
) -> bool:
    """Whether ``rec`` matches every set field of ``scope`` and one of ``kinds``."""
    if kinds and rec.kind not in kinds:
        return False
    host = rec.subject.node.host or (
        rec.subject.id if rec.subject.kind == common_pb2.SUBJECT_KIND_NODE else ""
    )
    if scope.nodes and host not in {node.host for node in scope.nodes}:
        return False
    where = nodes.get(host, NodePlacement())
    if scope.zone and where.zone != scope.zone:
        return False
    return not (scope.aggregate and scope.aggregate not in where.aggregates)


def select(
    snapshot: Snapshot,
    scope: optimization_pb2.Scope,
    kinds: Sequence[Kind] = (),
) -> list[optimization_pb2.Recommendation]:
    return [rec for rec in snapshot.recommendations if in_scope(rec, scope, snapshot.nodes, kinds)]


def paginate(
    items: Sequence[optimization_pb2.Recommendation], page: common_pb2.PageRequest
) -> tuple[list[optimization_pb2.Recommendation], str]:
    """One page and the next token (the offset, opaque to callers); ValueError if bad."""
    size = min(page.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    try:
        start = int(page.page_token) if page.page_token else 0
    except ValueError:
        raise ValueError(f"page_token {page.page_token!r} is not one this server issued") from None
    if start < 0 or start > len(items):
        raise ValueError(f"page_token {page.page_token!r} is out of range")
    end = start + size
    return list(items[start:end]), (str(end) if end < len(items) else "")


class RecommendationBook:
    """The latest recommendations of every source, and the watchers to tell of changes.

    ``refresh`` runs the sources (call it from a worker thread: forecasting and
    consolidation take real CPU) and publishes the differences to every subscriber's
    queue on its event loop.
    """

    def __init__(
        self,
        sources: Mapping[str, RecommendationSource],
        *,
        nodes: Callable[[], Mapping[str, NodePlacement]] = dict,
    ) -> None:
        self._sources = dict(sources)
        self._nodes = nodes
        self._latest: dict[str, tuple[optimization_pb2.Recommendation, ...]] = {}
        self._failing: set[str] = set()
        self._snapshot = Snapshot()
        self._lock = threading.Lock()
        self._watchers: set[_Watcher] = set()

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def refresh(self, now: float) -> list[optimization_pb2.RecommendationEvent]:
        """Recompute every source; publish and return the changes."""
        for name, source in self._sources.items():
            try:
                self._latest[name] = tuple(source(now))
            except Exception:
                if name not in self._failing:
                    log.exception(
                        "recommendation source failed; keeping its previous advice",
                        extra={"source": name},
                    )
                self._failing.add(name)
                continue
            if name in self._failing:
                log.info("recommendation source recovered", extra={"source": name})
                self._failing.discard(name)
        try:
            nodes = dict(self._nodes())
        except Exception:
            log.exception("node zones unavailable; scope filters use the previous ones")
            nodes = dict(self._snapshot.nodes)
        merged = ordered(rec for recs in self._latest.values() for rec in recs)
        with self._lock:
            events = diff(self._snapshot.recommendations, merged)
            self._snapshot = Snapshot(merged, now, nodes)
            watchers = tuple(self._watchers)
        for watcher in watchers:
            watcher.publish(events)
        return events

    def subscribe(self) -> _Watcher:
        """A queue of events from now on, plus the snapshot it starts from (atomically)."""
        with self._lock:
            watcher = _Watcher(asyncio.get_running_loop(), self._snapshot)
            self._watchers.add(watcher)
        return watcher

    def unsubscribe(self, watcher: _Watcher) -> None:
        with self._lock:
            self._watchers.discard(watcher)


class _Watcher:
    """One WatchRecommendations stream's pending events, fed from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, start: Snapshot) -> None:
        self.start = start
        self.overflowed = False
        self._loop = loop
        self._queue: asyncio.Queue[list[optimization_pb2.RecommendationEvent]] = asyncio.Queue()
        self._pending = 0

    def publish(self, events: list[optimization_pb2.RecommendationEvent]) -> None:
        if not events or self._loop.is_closed():
            return
        self._pending += len(events)
        if self._pending > MAX_PENDING_EVENTS:
            self.overflowed = True
        self._loop.call_soon_threadsafe(self._queue.put_nowait, events)

    async def next(self) -> list[optimization_pb2.RecommendationEvent]:
        events = await self._queue.get()
        self._pending -= len(events)
        return events
