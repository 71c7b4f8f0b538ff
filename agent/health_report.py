"""What the agent knows about its own node's health, and its answer on the health socket.

:class:`HealthState` is the one place the daemon's threads write to: the cycle loop once
a cycle's frame is spooled (``record_cycle``), whoever touches the spool after an append,
an acknowledgement or a spool failure (``record_spool``), the stream client when its
link changes (``record_connection``) and the model loader (``record_models``). The
health server's threads only take :meth:`HealthState.snapshot`, an immutable view, and
turn it into ``health.proto`` messages with the pure builders below, so an answer never
sees half an update and a slow client never holds up the daemon.

The answer reports the newest *frame* (as ``health.proto`` defines it): its scores,
collector statuses and silent devices are the frame's own messages, built once by
:mod:`novacron.agent.frames`, so what an operator reads on the socket is exactly what
the coordinator stores.

The status follows ``health.proto``: UNKNOWN before the first frame; AT_RISK when a
failure prediction reaches its model's alert threshold or an anomaly is critical;
DEGRADED when a collector failed, a device stopped answering, an anomaly is a warning
or the spool cannot store frames; HEALTHY otherwise. Each reason is one short line.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from novacron.agent.sample import NodeSample
from novacron.agent.scores_view import format_horizon
from novacron.agent.scoring import NodeScores
from novacron.protos import (
    CONTRACT_MINOR_VERSION,
    __version__,
    common_pb2,
    health_pb2,
    telemetry_pb2,
)

ConnectionStateName = Literal["connecting", "connected", "disconnected"]
HealthStatusName = Literal["healthy", "degraded", "at_risk", "unknown"]

# A node with hundreds of anomalous VMs still gets a readable list.
MAX_STATUS_REASONS = 20
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

_CONNECTION_STATE = {
    "connecting": health_pb2.CONNECTION_STATE_CONNECTING,
    "connected": health_pb2.CONNECTION_STATE_CONNECTED,
    "disconnected": health_pb2.CONNECTION_STATE_DISCONNECTED,
}
_HEALTH_STATUS = {
    "healthy": health_pb2.HEALTH_STATUS_HEALTHY,
    "degraded": health_pb2.HEALTH_STATUS_DEGRADED,
    "at_risk": health_pb2.HEALTH_STATUS_AT_RISK,
    "unknown": health_pb2.HEALTH_STATUS_UNKNOWN,
}
T = TypeVar("T")


@dataclass(frozen=True)
class CoordinatorLink:
    """The agent's telemetry stream to the coordinator, as the stream client sees it."""

    state: ConnectionStateName
    since_seconds: float  # unix time the state last changed
    address: str = ""  # "coord.example:7443"
    last_error: str = ""  # why the link is down; empty while connected


@dataclass(frozen=True)
class LatestCycle:
    """The newest spooled cycle: the typed records and the frame made of them."""

    sample: NodeSample
    scores: NodeScores | None  # None when scoring is off
    frame: telemetry_pb2.Frame  # never mutated once recorded


@dataclass(frozen=True)
class HealthSnapshot:
    """Everything one answer is built from, taken atomically from :class:`HealthState`."""

    node_id: str
    machine_id: str
    agent_version: str
    latest: LatestCycle | None  # None before the first frame
    spool_depth_frames: int
    spool_error: str  # why the spool cannot store frames; empty when it can
    last_acked_seq: int  # 0: nothing acknowledged yet
    link: CoordinatorLink
    models: tuple[common_pb2.ModelVersion, ...]
    # Collector name -> unix time its source was last read successfully.
    collector_last_success: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class HealthAssessment:
    status: HealthStatusName
    reasons: tuple[str, ...]


class HealthState:
    """Thread-safe holder of the node's latest health (see the module docstring).

    Every ``record_*`` method replaces part of the state under one lock and returns at
    once; none of them does I/O.
    """

    def __init__(
        self,
        node_id: str,
        *,
        machine_id: str = "",
        agent_version: str = __version__,
        coordinator_address: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot = HealthSnapshot(
            node_id=node_id,
            machine_id=machine_id,
            agent_version=agent_version,
            latest=None,
            spool_depth_frames=0,
            spool_error="",
            last_acked_seq=0,
            link=CoordinatorLink("disconnected", clock(), coordinator_address),
            models=(),
        )

    def record_cycle(
        self, sample: NodeSample, scores: NodeScores | None, frame: telemetry_pb2.Frame
    ) -> None:
        """A cycle whose frame is spooled: the sample, its scores and the frame
        (``frames.build_frame`` of them). The frame must not be changed afterwards."""
        successes = {
            name: report.collected_at_seconds or sample.timestamp_seconds
            for name, report in sample.reports.items()
            if report.ok
        }
        with self._lock:
            current = self._snapshot
            self._snapshot = replace(
                current,
                latest=LatestCycle(sample, scores, frame),
                collector_last_success={**current.collector_last_success, **successes},
            )

    def record_spool(
        self, *, depth_frames: int, last_acked_seq: int | None = None, error: str = ""
    ) -> None:
        """Frames waiting for an acknowledgement, the highest acknowledged seq, and
        why the spool refused the last frame ("" once it stores frames again).

        The acknowledged seq only grows (acknowledgements are cumulative), so a late,
        older report from another thread cannot move it back.
        """
        with self._lock:
            current = self._snapshot
            self._snapshot = replace(
                current,
                spool_depth_frames=max(0, depth_frames),
                spool_error=error,
                last_acked_seq=max(current.last_acked_seq, last_acked_seq or 0),
            )

    def record_connection(
        self, state: ConnectionStateName, *, address: str | None = None, error: str = ""
    ) -> None:
        """The stream's state; ``since`` moves only when the state really changes."""
        now = self._clock()
        with self._lock:
            current = self._snapshot
            link = current.link
            self._snapshot = replace(
                current,
                link=CoordinatorLink(
                    state=state,
                    since_seconds=link.since_seconds if link.state == state else now,
                    address=address if address is not None else link.address,
                    last_error="" if state == "connected" else error,
                ),
            )

    def record_models(self, models: Iterable[common_pb2.ModelVersion]) -> None:
        """The models now in use, e.g. ``frames.model_versions(model_set).values()``
        (at start and after every model swap)."""
        loaded = tuple(models)
        with self._lock:
            self._snapshot = replace(self._snapshot, models=loaded)

    def snapshot(self) -> HealthSnapshot:
        with self._lock:
            return self._snapshot


def assess(snapshot: HealthSnapshot) -> HealthAssessment:
    """The node's status and why (see the module docstring for the rules)."""
    latest = snapshot.latest
    if latest is None:
        return HealthAssessment("unknown", ("no frame produced yet",))
    at_risk: list[str] = []
    degraded: list[str] = []
    if latest.scores is not None:
        for p in latest.scores.failure_predictions:
            if p.alert:
                at_risk.append(
                    f"{p.scope} {p.label}: failure p={p.probability:.3f} within "
                    f"{format_horizon(p.horizon_seconds)} reaches the alert threshold "
                    f"[{p.model} {p.model_version}]"
                )
        for a in latest.scores.anomalies:
            if a.severity != "none":
                line = (
                    f"{a.severity} anomaly on {a.scope} {a.label}: score {a.score:.3f} [{a.model}]"
                )
                (at_risk if a.severity == "critical" else degraded).append(line)
    for status in latest.frame.collector_statuses:
        if not status.ok:
            degraded.append(f"collector {status.name} failed: {status.error}")
    for device in latest.frame.unavailable_devices:
        degraded.append(f"{device.collector}: {device.device} not answering: {device.reason}")
    if snapshot.spool_error:
        degraded.append(f"spool cannot store frames: {snapshot.spool_error}")
    reasons = _capped([*at_risk, *degraded])
    if at_risk:
        return HealthAssessment("at_risk", reasons)
    if degraded:
        return HealthAssessment("degraded", reasons)
    return HealthAssessment("healthy", ())


def _capped(reasons: list[str]) -> tuple[str, ...]:
    if len(reasons) <= MAX_STATUS_REASONS:
        return tuple(reasons)
    kept = reasons[: MAX_STATUS_REASONS - 1]
    return (*kept, f"... and {len(reasons) - len(kept)} more")


def timestamp(unix_seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(round(unix_seconds * 1e9))
    return stamp


def build_node_health(snapshot: HealthSnapshot) -> health_pb2.NodeHealth:
    """The node's ``NodeHealth``, every field the agent has a source for filled.

    ``cordoned`` and ``maintenance_until`` stay unset: the agent has no source for them
    (the coordinator's answer carries them).
    """
    verdict = assess(snapshot)
    link = snapshot.link
    health = health_pb2.NodeHealth(
        node=common_pb2.NodeId(host=snapshot.node_id, machine_id=snapshot.machine_id),
        status=_HEALTH_STATUS[verdict.status],
        status_reasons=verdict.reasons,
        spool_depth_frames=snapshot.spool_depth_frames,
        coordinator_connection=health_pb2.CoordinatorConnection(
            state=_CONNECTION_STATE[link.state],
            since=timestamp(link.since_seconds),
            address=link.address,
            last_acked_seq=snapshot.last_acked_seq,
            last_error=link.last_error,
        ),
        models_loaded=snapshot.models,
        agent_version=snapshot.agent_version,
    )
    latest = snapshot.latest
    if latest is not None:
        frame = latest.frame
        health.last_seen_at.CopyFrom(frame.observed_at)
        health.last_frame_seq = frame.seq
        health.latest_scores.CopyFrom(frame.scores)
        for status in frame.collector_statuses:
            copy = health.collector_statuses.add()
            copy.CopyFrom(status)
            last = snapshot.collector_last_success.get(status.name)
            if last is not None:
                copy.last_success_at.CopyFrom(timestamp(last))
        health.unavailable_devices.extend(frame.unavailable_devices)
    return health


def response_header(request_id: str) -> common_pb2.ResponseHeader:
    return common_pb2.ResponseHeader(
        contract_minor_version=CONTRACT_MINOR_VERSION,
        server=f"novacron-agent/{__version__}",
        request_id=request_id,
    )


def build_get_node_health_response(
    snapshot: HealthSnapshot, request_id: str = ""
) -> health_pb2.GetNodeHealthResponse:
    return health_pb2.GetNodeHealthResponse(
        header=response_header(request_id), nodes=[build_node_health(snapshot)]
    )


class PageTokenError(ValueError):
    """A page token this server did not hand out."""


def page(items: Sequence[T], request: common_pb2.PageRequest) -> tuple[list[T], str]:
    """One page of ``items`` and the token of the next one ("" on the last page)."""
    size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    start = 0
    if request.page_token:
        if not request.page_token.isdigit():
            raise PageTokenError(f"page_token {request.page_token!r} is not one of ours")
        start = int(request.page_token)
    end = start + size
    return list(items[start:end]), str(end) if end < len(items) else ""


def _newest_frame_in(
    snapshot: HealthSnapshot, time_range: common_pb2.TimeRange
) -> telemetry_pb2.Frame | None:
    """The newest frame if it was observed inside ``time_range`` (open bounds unset)."""
    if snapshot.latest is None:
        return None
    frame = snapshot.latest.frame
    observed = frame.observed_at.ToNanoseconds()
    if time_range.HasField("start") and observed < time_range.start.ToNanoseconds():
        return None
    if time_range.HasField("end") and observed >= time_range.end.ToNanoseconds():
        return None
    return frame


def build_list_predictions_response(
    snapshot: HealthSnapshot, request: health_pb2.ListPredictionsRequest
) -> health_pb2.ListPredictionsResponse:
    """The newest frame's predictions that pass the request's filters, most probable
    first (the agent keeps no history: the coordinator holds the record)."""
    frame = _newest_frame_in(snapshot, request.time_range)
    kinds = set(request.target_kinds)
    records = (
        []
        if frame is None
        else [
            health_pb2.PredictionRecord(
                observed_at=frame.observed_at, frame_seq=frame.seq, prediction=prediction
            )
            for prediction in frame.scores.failure_predictions
            if prediction.probability >= request.min_probability
            and (not kinds or prediction.target.kind in kinds)
        ]
    )
    records.sort(key=lambda r: -r.prediction.probability)
    items, token = page(records, request.page)
    return health_pb2.ListPredictionsResponse(
        header=response_header(request.header.request_id), predictions=items, next_page_token=token
    )


def build_list_anomalies_response(
    snapshot: HealthSnapshot, request: health_pb2.ListAnomaliesRequest
) -> health_pb2.ListAnomaliesResponse:
    """The newest frame's anomalies that pass the request's filters, highest score first."""
    frame = _newest_frame_in(snapshot, request.time_range)
    records = (
        []
        if frame is None
        else [
            health_pb2.AnomalyRecord(observed_at=frame.observed_at, frame_seq=frame.seq, anomaly=a)
            for a in frame.scores.anomalies
            if a.severity >= request.min_severity
            and (not request.scope or a.subject.kind == request.scope)
            and (not request.vm_uuid or a.subject.id == request.vm_uuid)
            and (request.include_masked or not a.masked)
        ]
    )
    records.sort(key=lambda r: -r.anomaly.score)
    items, token = page(records, request.page)
    return health_pb2.ListAnomaliesResponse(
        header=response_header(request.header.request_id), anomalies=items, next_page_token=token
    )
