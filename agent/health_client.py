"""``novacron-agent health``: ask the running agent on its socket, print what it says.

The command is what an operator (or a monitoring check) runs on a sick node, so every
failure to get an answer is one clear line, never a traceback: no socket (agent not
running), a socket nobody answers on (agent died), no answer within the deadline.
"""

from __future__ import annotations

import json
import stat
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import grpc
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from novacron.agent.scores_view import format_duration, format_horizon
from novacron.protos import CONTRACT_MINOR_VERSION, __version__, common_pb2, health_pb2
from novacron.protos.health_pb2_grpc import HealthServiceStub

# health.proto recommends 2 s for GetNodeHealth.
DEFAULT_TIMEOUT_SECONDS = 2.0
MAX_DISKS_SHOWN = 5
MAX_FACTORS_SHOWN = 3
MAX_ANOMALIES_SHOWN = 10


class HealthQueryError(Exception):
    """No health answer from the agent; the message is one line for the operator."""


def fetch_node_health(
    socket_path: Path, *, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
) -> health_pb2.NodeHealth:
    """The agent's ``NodeHealth`` from its socket; HealthQueryError when there is none."""
    try:
        mode = socket_path.stat().st_mode
    except FileNotFoundError:
        raise HealthQueryError(
            f"no agent health socket at {socket_path} (is novacron-agent running?)"
        ) from None
    except OSError as exc:
        raise HealthQueryError(f"cannot reach {socket_path}: {exc.strerror}") from None
    if not stat.S_ISSOCK(mode):
        raise HealthQueryError(f"{socket_path} is not a socket")
    request = health_pb2.GetNodeHealthRequest(
        header=common_pb2.RequestHeader(
            contract_minor_version=CONTRACT_MINOR_VERSION,
            request_id=str(uuid.uuid4()),
            client=f"novacron-agent/{__version__}",
        )
    )
    with grpc.insecure_channel(f"unix:{socket_path}") as channel:
        try:
            response = HealthServiceStub(channel).GetNodeHealth(request, timeout=timeout_seconds)
        except grpc.RpcError as exc:
            raise HealthQueryError(_describe(exc, socket_path, timeout_seconds)) from None
    if len(response.nodes) != 1:
        raise HealthQueryError(f"agent at {socket_path} answered with {len(response.nodes)} nodes")
    return response.nodes[0]


def _describe(exc: grpc.RpcError, socket_path: Path, timeout_seconds: float) -> str:
    code = exc.code() if isinstance(exc, grpc.Call) else None
    details = (exc.details() if isinstance(exc, grpc.Call) else None) or str(exc)
    details = " ".join(details.split())  # one line, whatever gRPC put in it
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"agent at {socket_path} did not answer within {timeout_seconds:g} s"
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"agent at {socket_path} is not answering ({details})"
    name = code.name if code is not None else "error"
    return f"health query to {socket_path} failed: {name}: {details}"


def health_json(node: health_pb2.NodeHealth) -> str:
    """The answer as one JSON object (proto3 JSON names; every field, zero or not)."""
    document = json_format.MessageToDict(
        node,
        always_print_fields_with_no_presence=True,
        preserving_proto_field_name=True,
        unquote_int64_if_possible=True,
    )
    return json.dumps(document)


def render_health(node: health_pb2.NodeHealth, *, now: float | None = None) -> str:
    """The answer as a readable report (see docs/health-socket.md for an example)."""
    now = time.time() if now is None else now
    status = health_pb2.HealthStatus.Name(node.status).removeprefix("HEALTH_STATUS_")
    lines = [f"node {node.node.host}  {status}"]
    lines += [f"  because  {reason}" for reason in node.status_reasons]
    seen = _when(node.last_seen_at, now) if node.HasField("last_seen_at") else "never"
    lines.append(f"last sample {seen}, frame seq {node.last_frame_seq}, agent {node.agent_version}")
    for title, block in (
        ("failure risk", _risk_lines(node.latest_scores.failure_predictions)),
        ("anomalies", _anomaly_lines(node.latest_scores.anomalies)),
        ("collectors", _collector_lines(node.collector_statuses, now)),
        ("unavailable devices", _unavailable_lines(node.unavailable_devices, now)),
        ("coordinator", _coordinator_lines(node, now)),
        ("models", _model_lines(node.models_loaded)),
    ):
        lines += ["", f"== {title}", *[f"  {line}" for line in block]]
    return "\n".join(lines)


def _when(stamp: Timestamp, now: float) -> str:
    seconds = stamp.ToNanoseconds() / 1e9
    text = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))
    age = now - seconds
    span = f"{abs(age):.0f} s" if abs(age) < 120 else format_duration(abs(age))
    return f"{text} ({span} ago)" if age >= 0 else f"{text} (in {span})"


def _risk_lines(predictions: Sequence[common_pb2.FailurePrediction]) -> list[str]:
    if not predictions:
        return ["no failure predictions (no failure model loaded or scoring off)"]
    nodes = [p for p in predictions if p.target.kind == common_pb2.SUBJECT_KIND_NODE]
    disks = sorted(
        (p for p in predictions if p.target.kind == common_pb2.SUBJECT_KIND_DISK),
        key=lambda p: -p.probability,
    )
    lines: list[str] = []
    for p in [*nodes, *disks[:MAX_DISKS_SHOWN]]:
        lines.append(_prediction_line(p))
        lines += [
            f"  because {f.feature} = {f.value:g}{' ' + f.unit if f.unit else ''}: "
            f"{f.contribution:+.3f}"
            for f in p.contributing_factors[:MAX_FACTORS_SHOWN]
        ]
    if len(disks) > MAX_DISKS_SHOWN:
        lines.append(f"... {len(disks) - MAX_DISKS_SHOWN} more disks at lower risk")
    return lines


def _prediction_line(p: common_pb2.FailurePrediction) -> str:
    kind = "node" if p.target.kind == common_pb2.SUBJECT_KIND_NODE else "disk"
    subject = p.target.display_name or p.target.id
    interval = (
        f" ({p.ci_level:.0%} CI {p.ci_low:.3f}-{p.ci_high:.3f})" if p.ci_level > 0 else " (no CI)"
    )
    eta = (
        f", time to failure ~{format_duration(p.estimated_time_to_failure_seconds)}"
        if p.HasField("estimated_time_to_failure_seconds")
        else ""
    )
    return (
        f"{kind} {subject:<12} {format_horizon(p.horizon_seconds):>4}  p={p.probability:.3f}"
        f"{interval}{eta}  [{p.model.name} {p.model.version}]"
    )


def _anomaly_lines(anomalies: Sequence[common_pb2.Anomaly]) -> list[str]:
    if not anomalies:
        return ["none"]
    flagged = sorted(
        (a for a in anomalies if a.severity >= common_pb2.SEVERITY_WARNING),
        key=lambda a: -a.score,
    )
    lines = [f"{len(flagged)} subjects anomalous"]
    for a in flagged[:MAX_ANOMALIES_SHOWN]:
        kind = "node" if a.subject.kind == common_pb2.SUBJECT_KIND_NODE else "vm"
        severity = common_pb2.Severity.Name(a.severity).removeprefix("SEVERITY_")
        features = ", ".join(
            f"{f.feature} z={f.contribution:+.1f}" for f in a.anomalous_features[:MAX_FACTORS_SHOWN]
        )
        lines.append(
            f"{kind} {a.subject.display_name or a.subject.id}  score {a.score:.3f} {severity}"
            + (f": {features}" if features else "")
            + f"  [{a.model.name} {a.model.version}]"
        )
    return lines


def _collector_lines(statuses: Sequence[common_pb2.CollectorStatus], now: float) -> list[str]:
    if not statuses:
        return ["no collection cycle yet"]
    lines = [f"{'COLLECTOR':<10} {'STATUS':<7} {'DURATION':>10}  LAST SUCCESS"]
    for s in statuses:
        took = f"{s.duration_seconds * 1000:.1f} ms" if s.duration_seconds else "-"
        last = _when(s.last_success_at, now) if s.HasField("last_success_at") else "never"
        lines.append(f"{s.name:<10} {'ok' if s.ok else 'FAILED':<7} {took:>10}  {last}")
        if not s.ok:
            lines.append(f"  error: {s.error}")
    return lines


def _unavailable_lines(devices: Sequence[common_pb2.UnavailableDevice], now: float) -> list[str]:
    if not devices:
        return ["none"]
    return [f"{d.collector} {d.device}: {d.reason}, since {_when(d.since, now)}" for d in devices]


def _coordinator_lines(node: health_pb2.NodeHealth, now: float) -> list[str]:
    link = node.coordinator_connection
    state = health_pb2.ConnectionState.Name(link.state).removeprefix("CONNECTION_STATE_")
    target = f" to {link.address}" if link.address else ""
    since = f" since {_when(link.since, now)}" if link.HasField("since") else ""
    lines = [f"connection {state}{target}{since}"]
    if link.last_error:
        lines.append(f"last error {link.last_error}")
    lines.append(
        f"spool      {node.spool_depth_frames} frames waiting for acknowledgement "
        f"(last frame seq {node.last_frame_seq}, last acked seq {link.last_acked_seq})"
    )
    return lines


def _model_lines(models: Sequence[common_pb2.ModelVersion]) -> list[str]:
    if not models:
        return ["none loaded"]
    return [
        f"{m.name:<18} {m.version:<14} sha256 {m.sha256[:12] or '-'}  "
        f"schema v{m.feature_schema_version}"
        for m in models
    ]
