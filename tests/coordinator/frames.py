"""Realistic telemetry frames for coordinator tests and the store benchmark.

A frame here is shaped like what an agent sends for one cycle: the NODE feature vector
(35 values, some NaN), ten VMs with the VM vector (11 values each), failure predictions
for the node and its disks, anomalies, and every collector's status.
"""

from __future__ import annotations

import numpy as np

from novacron.coordinator.store import StoredFrame
from novacron.coordinator.store_frames import stored_frame
from novacron.models.schema import NODE, VM
from novacron.protos import common_pb2, telemetry_pb2

COLLECTORS = ("host", "cpuinfo", "smart", "edac", "hwmon", "nvml", "libvirt")
# Schema.hash recomputes its canonical JSON on every call.
NODE_HASH = NODE.hash
VM_HASH = VM.hash


def node_features(seq: int, width: int = len(NODE.features)) -> list[float]:
    """Deterministic values: feature i of frame seq is seq + i / 100; every 7th is NaN."""
    return [float("nan") if i % 7 == 6 else seq + i / 100 for i in range(width)]


def make_frame(
    node_id: str,
    seq: int,
    *,
    timestamp_seconds: float | None = None,
    vms: int = 10,
    features: list[float] | None = None,
    probability: float = 0.02,
    anomaly_score: float = 0.1,
    schema_version: int = NODE.version,
) -> telemetry_pb2.Frame:
    """One agent frame; ``timestamp_seconds`` defaults to 1_700_000_000 + 10 * seq."""
    when = 1_700_000_000.0 + 10.0 * seq if timestamp_seconds is None else timestamp_seconds
    frame = telemetry_pb2.Frame(seq=seq)
    frame.observed_at.FromNanoseconds(round(when * 1e9))
    frame.window.FromSeconds(600)
    frame.node_features.schema_version = schema_version
    frame.node_features.schema_hash = NODE_HASH
    frame.node_features.values.extend(node_features(seq) if features is None else features)
    rng = np.random.default_rng(seq)
    for v in range(vms):
        vm = frame.vm_features.add(
            vm_uuid=f"00000000-0000-4000-8000-{v:012d}",
            name=f"{node_id}-vm{v}",
            vcpus=4,
            memory_bytes=8 << 30,
        )
        vm.features.schema_version = VM.version
        vm.features.schema_hash = VM_HASH
        vm.features.values.extend(rng.random(len(VM.features)).tolist())
    model = common_pb2.ModelVersion(
        name="node_failure", version="2025.11.3", sha256="ab" * 32, feature_schema_version=1
    )
    node = common_pb2.NodeId(host=node_id)
    for horizon in (1800.0, 86400.0):
        prediction = frame.scores.failure_predictions.add(
            horizon_seconds=horizon,
            probability=probability,
            ci_low=probability / 2,
            ci_high=min(1.0, probability * 2),
            ci_level=0.95,
        )
        prediction.target.CopyFrom(
            common_pb2.Subject(kind=common_pb2.SUBJECT_KIND_NODE, id=node_id, node=node)
        )
        prediction.model.CopyFrom(model)
        prediction.contributing_factors.add(
            feature="cpu_temp_celsius_max_10m", value=71.0, contribution=0.01, unit="celsius"
        )
    disk = frame.scores.failure_predictions.add(
        horizon_seconds=7 * 86400.0, probability=probability / 2, ci_low=0.0, ci_high=0.1
    )
    disk.target.CopyFrom(
        common_pb2.Subject(kind=common_pb2.SUBJECT_KIND_DISK, id="S4EVNF0M123456", node=node)
    )
    disk.model.name, disk.model.version = "disk_failure", "2025.11.3"
    anomaly = frame.scores.anomalies.add(score=anomaly_score, severity=common_pb2.SEVERITY_INFO)
    anomaly.subject.CopyFrom(
        common_pb2.Subject(kind=common_pb2.SUBJECT_KIND_NODE, id=node_id, node=node)
    )
    anomaly.model.name, anomaly.model.version = "node_anomaly", "2025.11.3"
    for name in COLLECTORS:
        frame.collector_statuses.add(name=name, ok=True, duration_seconds=0.004)
    return frame


def stored(node_id: str, seq: int, **kwargs: object) -> StoredFrame:
    """``make_frame`` as the store record the ingest would build."""
    return stored_frame(node_id, make_frame(node_id, seq, **kwargs))  # type: ignore[arg-type]


def stored_range(node_id: str, first: int, last: int, **kwargs: object) -> list[StoredFrame]:
    """Frames ``first..last`` (inclusive) of one node."""
    return [stored(node_id, seq, **kwargs) for seq in range(first, last + 1)]
