"""One cycle of the agent as a wire ``Frame``: features, scores, collector health.

:func:`build_frame` is the single place where the agent's typed records (the
:class:`~novacron.agent.sample.NodeSample`, the feature matrices of
:class:`~novacron.agent.features.store.FeatureSnapshot` and the
:class:`~novacron.agent.scoring.NodeScores`) become ``telemetry_pb2.Frame``. It is a
pure function, so the daemon, the tests and the benchmark build byte-identical frames
from the same inputs.

Choices the contract leaves to the sender:

* Feature values go out exactly as the windows hold them, NaN included ("no data this
  window", never 0); the vector names its schema version and hash, so a receiver with
  another schema refuses to interpret it rather than misaligning columns.
* Anomalies: only subjects at ``warning`` or ``critical`` are sent. A score below the
  model's warning threshold is not an anomaly; sending one per VM per cycle would grow
  a 50-VM frame by about 9 KB (170 bytes each) and fill the coordinator's anomaly table
  with normality. The raw material (the VM feature vectors) is in the frame regardless.
* An anomalous feature's ``contribution`` is its signed robust z-score (distance from
  the model's median in MADs): the scorer's measure of how much that feature drives
  the anomaly; the anomaly score has no per-feature decomposition.
* ``observed_at`` is the features' time (the snapshot's), ``window`` the collection
  interval the frame covers.
* A failure prediction without a confidence interval (its model has no calibration
  table) has ``ci_low``, ``ci_high`` and ``ci_level`` all 0: proto3's "unset".
* Every score names its ``ModelVersion``; the sha256 comes from ``models`` (see
  :func:`model_versions`), without which it is empty and the rest is still exact.
* Disk feature vectors have no place in contract v1's ``Frame``; disk failure
  predictions (with their contributing factors) do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from novacron.agent.collectors._libvirt_model import DomainStats, LibvirtReadings
from novacron.agent.collectors.base import UnavailableDevice
from novacron.agent.features.store import FeatureMatrix, FeatureSnapshot
from novacron.agent.model_set import ModelSet
from novacron.agent.sample import NodeSample
from novacron.agent.scoring import Anomaly, ContributingFactor, FailurePrediction, NodeScores
from novacron.models.runtime import OnnxModel
from novacron.models.schema import DISK, NODE, VM, Schema
from novacron.protos import common_pb2, telemetry_pb2

# The scorer's intervals are 95 % Wilson intervals (see novacron.agent.score_math).
CI_LEVEL = 0.95
LIBVIRT_COLLECTOR = "libvirt"

_SCHEMA_BY_SCOPE: dict[str, Schema] = {"node": NODE, "disk": DISK, "vm": VM}
_SUBJECT_KIND = {
    "node": common_pb2.SUBJECT_KIND_NODE,
    "disk": common_pb2.SUBJECT_KIND_DISK,
    "vm": common_pb2.SUBJECT_KIND_VM,
}
_SEVERITY = {
    "warning": common_pb2.SEVERITY_WARNING,
    "critical": common_pb2.SEVERITY_CRITICAL,
}


def build_frame(
    seq: int,
    sample: NodeSample,
    snapshot: FeatureSnapshot,
    scores: NodeScores | None,
    *,
    models: Mapping[str, common_pb2.ModelVersion] | None = None,
    interval_seconds: float | None = None,
) -> telemetry_pb2.Frame:
    """The frame for one cycle.

    ``seq``: the spool's sequence number (>= 1). ``snapshot``: the features after
    ``sample`` was added (``NodeIntelligence.last_snapshot``). ``scores``: None when
    scoring is off (the frame's scores stay empty). ``models``: model name ->
    ``ModelVersion`` of the loaded models (:func:`model_versions`). ``interval_seconds``:
    the collection interval, sent as the frame's ``window``; None leaves it unset.
    Raises ValueError for a seq below 1 or a snapshot of another node.
    """
    if seq < 1:
        raise ValueError(f"seq must be >= 1, got {seq}")
    if snapshot.node.subjects != (sample.node_id,):
        raise ValueError(f"snapshot is for {snapshot.node.subjects}, sample for {sample.node_id}")
    frame = telemetry_pb2.Frame(
        seq=seq,
        observed_at=_timestamp(snapshot.timestamp_seconds),
        node_features=_vector(snapshot.node, 0),
        vm_features=_vm_features(snapshot.vms, _domains(sample)),
        collector_statuses=[
            common_pb2.CollectorStatus(
                name=name,
                ok=report.ok,
                duration_seconds=report.duration_seconds or 0.0,
                error=report.error or "",
            )
            for name, report in sample.reports.items()
        ],
        unavailable_devices=[
            common_pb2.UnavailableDevice(
                collector=collector,
                device=device.device,
                since=_timestamp(device.unavailable_since),
                reason=device.reason,
            )
            for collector, device in _unavailable(sample)
        ],
    )
    if interval_seconds is not None:
        frame.window.CopyFrom(_duration(interval_seconds))
    if scores is not None:
        frame.scores.CopyFrom(_scores(scores, sample.node_id, models or {}))
    return frame


def model_versions(models: ModelSet) -> dict[str, common_pb2.ModelVersion]:
    """``ModelVersion`` of every loaded model by name, for :func:`build_frame` and Hello."""
    loaded = [*models.node_failure, *models.disk_failure, models.node_anomaly, models.vm_anomaly]
    return {m.name: model_version(m.model) for m in loaded if m is not None}


def model_version(model: OnnxModel) -> common_pb2.ModelVersion:
    card = model.card
    return common_pb2.ModelVersion(
        name=card.name,
        version=card.version,
        sha256=card.sha256,
        feature_schema_version=model.schema.version,
    )


def frame_summary(frame: telemetry_pb2.Frame) -> dict[str, Any]:
    """A few numbers about a frame, for log lines (``extra=``)."""
    return {
        "seq": frame.seq,
        "observed_at": frame.observed_at.ToJsonString(),
        "vms": len(frame.vm_features),
        "failure_predictions": len(frame.scores.failure_predictions),
        "anomalies": len(frame.scores.anomalies),
        "collectors_failed": sum(not s.ok for s in frame.collector_statuses),
        "unavailable_devices": len(frame.unavailable_devices),
    }


# -- pieces ----------------------------------------------------------------------


def _timestamp(seconds: float) -> Timestamp:
    whole = math.floor(seconds)
    return Timestamp(seconds=whole, nanos=min(round((seconds - whole) * 1e9), 999_999_999))


def _duration(seconds: float) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


def _vector(matrix: FeatureMatrix, row: int) -> common_pb2.FeatureVector:
    return common_pb2.FeatureVector(
        schema_version=matrix.schema.version,
        schema_hash=_schema_hash(matrix.schema),
        values=matrix.features[row].tolist(),
    )


_SCHEMA_FACTS: dict[str, tuple[Schema, str, dict[str, str]]] = {}


def _facts(schema: Schema) -> tuple[str, dict[str, str]]:
    """The schema's hash and feature units, computed once per schema (the hash is a JSON
    dump and a sha256; a frame needs it once per VM)."""
    cached = _SCHEMA_FACTS.get(schema.version_tag)
    if cached is None or cached[0] is not schema:
        units = {f.name: f.unit for f in schema.features}
        cached = _SCHEMA_FACTS[schema.version_tag] = (schema, schema.hash, units)
    return cached[1], cached[2]


def _schema_hash(schema: Schema) -> str:
    return _facts(schema)[0]


def _units(schema: Schema) -> dict[str, str]:
    return _facts(schema)[1]


def _domains(sample: NodeSample) -> dict[str, DomainStats]:
    report = sample.reports.get(LIBVIRT_COLLECTOR)
    data = report.data if report is not None else None
    if not isinstance(data, LibvirtReadings):
        return {}
    return {domain.uuid: domain for domain in data.domains}


def _vm_features(
    vms: FeatureMatrix, domains: Mapping[str, DomainStats]
) -> list[telemetry_pb2.VmFeatures]:
    out = []
    for row, (uuid, name) in enumerate(zip(vms.subjects, vms.labels, strict=True)):
        vm = telemetry_pb2.VmFeatures(vm_uuid=uuid, name=name, features=_vector(vms, row))
        domain = domains.get(uuid)
        if domain is not None:
            vm.vcpus = domain.vcpu_count or 0
            vm.memory_bytes = domain.balloon_maximum_bytes or 0
        out.append(vm)
    return out


def _unavailable(sample: NodeSample) -> Iterable[tuple[str, UnavailableDevice]]:
    """Every collector's ``unavailable`` entries (each collector's readings carry one)."""
    for name, report in sample.reports.items():
        for device in getattr(report.data, "unavailable", None) or ():
            if isinstance(device, UnavailableDevice):
                yield name, device


def _scores(
    scores: NodeScores, node_id: str, models: Mapping[str, common_pb2.ModelVersion]
) -> common_pb2.Scores:
    node = common_pb2.NodeId(host=node_id)
    return common_pb2.Scores(
        failure_predictions=[_prediction(p, node, models) for p in scores.failure_predictions],
        anomalies=[_anomaly(a, node, models) for a in scores.anomalies if a.severity in _SEVERITY],
    )


def _prediction(
    p: FailurePrediction, node: common_pb2.NodeId, models: Mapping[str, common_pb2.ModelVersion]
) -> common_pb2.FailurePrediction:
    schema = _SCHEMA_BY_SCOPE[p.scope]
    out = common_pb2.FailurePrediction(
        target=_subject(p.scope, p.subject, p.label, node),
        horizon_seconds=p.horizon_seconds,
        probability=p.probability,
        contributing_factors=[_factor(f, schema) for f in p.contributing_factors],
        model=_model(p.model, p.model_version, schema, models),
    )
    if p.ci_low is not None and p.ci_high is not None:
        out.ci_low, out.ci_high, out.ci_level = p.ci_low, p.ci_high, CI_LEVEL
    if p.estimated_time_to_failure_seconds is not None:
        out.estimated_time_to_failure_seconds = p.estimated_time_to_failure_seconds
    return out


def _anomaly(
    a: Anomaly, node: common_pb2.NodeId, models: Mapping[str, common_pb2.ModelVersion]
) -> common_pb2.Anomaly:
    schema = _SCHEMA_BY_SCOPE[a.scope]
    units = _units(schema)
    return common_pb2.Anomaly(
        subject=_subject(a.scope, a.subject, a.label, node),
        score=a.score,
        severity=_SEVERITY[a.severity],
        # An anomaly's "contribution" is the feature's robust z-score: how far it sits
        # from the learned median, in MADs, signed (the score's own drivers).
        anomalous_features=[
            common_pb2.ContributingFactor(
                feature=f.feature, value=f.value, contribution=f.z, unit=units.get(f.feature, "")
            )
            for f in a.anomalous_features
        ],
        model=_model(a.model, a.model_version, schema, models),
    )


def _subject(scope: str, subject: str, label: str, node: common_pb2.NodeId) -> common_pb2.Subject:
    return common_pb2.Subject(kind=_SUBJECT_KIND[scope], id=subject, node=node, display_name=label)


def _factor(f: ContributingFactor, schema: Schema) -> common_pb2.ContributingFactor:
    return common_pb2.ContributingFactor(
        feature=f.feature,
        value=f.value,
        contribution=f.contribution,
        unit=_units(schema).get(f.feature, ""),
    )


def _model(
    name: str, version: str, schema: Schema, models: Mapping[str, common_pb2.ModelVersion]
) -> common_pb2.ModelVersion:
    known = models.get(name)
    if known is not None and known.version == version:
        return known
    return common_pb2.ModelVersion(
        name=name, version=version, feature_schema_version=schema.version
    )
