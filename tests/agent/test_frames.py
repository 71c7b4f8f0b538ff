"""Frames built from a real fixture node: real collectors, feature windows, tiny models.

Every field of the frame is compared with the record it came from, after a round trip
through the wire encoding (``SerializeToString`` / ``FromString``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from novacron.agent.collectors._libvirt_model import LibvirtReadings
from novacron.agent.collectors.base import UnavailableDevice
from novacron.agent.collectors.smart.model import SmartReadings
from novacron.agent.features.store import FeatureSnapshot, NodeFeatures
from novacron.agent.frames import CI_LEVEL, build_frame, frame_summary, model_versions
from novacron.agent.sample import CollectorReport, NodeSample
from novacron.agent.scoring import NodeScores, Scorer
from novacron.models.card import CARD_SUFFIX, ModelCard
from novacron.models.schema import DISK, NODE, VM
from novacron.protos import common_pb2, telemetry_pb2
from tests.agent.node_cycles import collect_cycles
from tests.agent.tiny_models import write_tiny_models

DOMAINS = 62  # every fifth fixture domain is shut off: 50 VMs run
RUNNING_VMS = 50


@dataclass(frozen=True)
class Cycle:
    sample: NodeSample
    snapshot: FeatureSnapshot
    scores: NodeScores
    models: dict[str, common_pb2.ModelVersion]
    models_dir: Path


@pytest.fixture(scope="module")
def cycle(tmp_path_factory: pytest.TempPathFactory) -> Cycle:
    tiny = write_tiny_models(tmp_path_factory.mktemp("models"))
    samples = collect_cycles(tmp_path_factory.mktemp("node"), cycles=2, domains=DOMAINS)
    features = NodeFeatures(samples[0].node_id)
    for sample in samples:
        features.update(sample)
    scorer = Scorer.load(tiny.directory)
    snapshot = features.snapshot()
    return Cycle(
        samples[-1], snapshot, scorer.score(snapshot), model_versions(scorer.models), tiny.directory
    )


def wire(frame: telemetry_pb2.Frame) -> telemetry_pb2.Frame:
    return telemetry_pb2.Frame.FromString(frame.SerializeToString())


def same_values(sent: list[float], expected: np.ndarray) -> bool:
    """Equal value by value, NaN where NaN ("no data" must not turn into 0)."""
    return len(sent) == len(expected) and all(
        (math.isnan(a) and math.isnan(b)) or a == b
        for a, b in zip(sent, expected.tolist(), strict=True)
    )


def test_frame_round_trips_with_seq_time_and_window(cycle: Cycle) -> None:
    built = build_frame(
        42, cycle.sample, cycle.snapshot, cycle.scores, models=cycle.models, interval_seconds=10
    )
    frame = wire(built)
    assert frame == built
    assert frame.seq == 42
    observed = frame.observed_at.seconds + frame.observed_at.nanos / 1e9
    assert observed == pytest.approx(cycle.snapshot.timestamp_seconds, abs=1e-6)
    assert frame.window.ToTimedelta().total_seconds() == 10


def test_node_features_follow_the_node_schema(cycle: Cycle) -> None:
    node = wire(build_frame(1, cycle.sample, cycle.snapshot, None)).node_features
    assert node.schema_version == NODE.version
    assert node.schema_hash == NODE.hash
    assert len(node.values) == len(NODE.features)
    assert same_values(list(node.values), cycle.snapshot.node.features[0])
    assert any(math.isnan(v) for v in node.values)  # a short history leaves gaps
    assert any(not math.isnan(v) for v in node.values)


def test_one_vm_entry_per_running_domain_with_its_allocation(cycle: Cycle) -> None:
    frame = wire(build_frame(1, cycle.sample, cycle.snapshot, None))
    libvirt = cycle.sample.reports["libvirt"].data
    assert isinstance(libvirt, LibvirtReadings)
    domains = {d.uuid: d for d in libvirt.domains}
    assert len(frame.vm_features) == len(cycle.snapshot.vms) == RUNNING_VMS
    for row, vm in enumerate(frame.vm_features):
        domain = domains[vm.vm_uuid]
        assert vm.vm_uuid == cycle.snapshot.vms.subjects[row]
        assert vm.name == domain.name
        assert vm.vcpus == domain.vcpu_count
        assert vm.memory_bytes == domain.balloon_maximum_bytes
        assert vm.memory_bytes >= 1024**3  # the fixture gives every domain 1 GiB or more
        assert vm.features.schema_version == VM.version
        assert vm.features.schema_hash == VM.hash
        assert same_values(list(vm.features.values), cycle.snapshot.vms.features[row])


def test_failure_predictions_carry_everything_the_scorer_said(cycle: Cycle) -> None:
    frame = wire(build_frame(1, cycle.sample, cycle.snapshot, cycle.scores, models=cycle.models))
    sent = frame.scores.failure_predictions
    assert len(sent) == len(cycle.scores.failure_predictions) == 2 + 6  # node 30m+24h, 6 disks
    for wire_p, p in zip(sent, cycle.scores.failure_predictions, strict=True):
        kind = common_pb2.SUBJECT_KIND_NODE if p.scope == "node" else common_pb2.SUBJECT_KIND_DISK
        assert wire_p.target.kind == kind
        assert (wire_p.target.id, wire_p.target.display_name) == (p.subject, p.label)
        assert wire_p.target.node.host == cycle.sample.node_id
        assert wire_p.horizon_seconds == p.horizon_seconds
        assert wire_p.probability == p.probability
        assert (wire_p.ci_low, wire_p.ci_high, wire_p.ci_level) == (p.ci_low, p.ci_high, CI_LEVEL)
        if p.estimated_time_to_failure_seconds is None:
            assert not wire_p.HasField("estimated_time_to_failure_seconds")
        else:
            assert wire_p.estimated_time_to_failure_seconds == p.estimated_time_to_failure_seconds
        schema = NODE if p.scope == "node" else DISK
        units = {f.name: f.unit for f in schema.features}
        assert [
            (f.feature, f.value, f.contribution, f.unit) for f in wire_p.contributing_factors
        ] == [
            (f.feature, f.value, f.contribution, units[f.feature]) for f in p.contributing_factors
        ]
        card = ModelCard.read(cycle.models_dir / f"{p.model}{CARD_SUFFIX}")
        assert wire_p.model == common_pb2.ModelVersion(
            name=card.name,
            version=card.version,
            sha256=card.sha256,
            feature_schema_version=schema.version,
        )
    disks = [p for p in sent if p.target.kind == common_pb2.SUBJECT_KIND_DISK]
    riskiest = max(disks, key=lambda p: p.probability)
    assert riskiest.target.display_name == "/dev/sda"  # the fixture's failing disk
    assert riskiest.contributing_factors  # and why


def test_only_warning_and_critical_anomalies_are_sent(cycle: Cycle) -> None:
    frame = wire(build_frame(1, cycle.sample, cycle.snapshot, cycle.scores, models=cycle.models))
    flagged = [a for a in cycle.scores.anomalies if a.severity != "none"]
    assert flagged  # the tiny models flag some of the fixture's subjects
    assert len(frame.scores.anomalies) == len(flagged)
    severity = {"warning": common_pb2.SEVERITY_WARNING, "critical": common_pb2.SEVERITY_CRITICAL}
    for wire_a, a in zip(frame.scores.anomalies, flagged, strict=True):
        kind = common_pb2.SUBJECT_KIND_NODE if a.scope == "node" else common_pb2.SUBJECT_KIND_VM
        assert (wire_a.subject.kind, wire_a.subject.id) == (kind, a.subject)
        assert wire_a.subject.display_name == a.label
        assert (wire_a.score, wire_a.severity) == (a.score, severity[a.severity])
        assert [(f.feature, f.value, f.contribution) for f in wire_a.anomalous_features] == [
            (f.feature, f.value, f.z) for f in a.anomalous_features
        ]
        assert all(f.unit for f in wire_a.anomalous_features)
        assert wire_a.model.sha256 == cycle.models[a.model].sha256
        assert not wire_a.masked


def test_collector_statuses_and_unavailable_devices(cycle: Cycle) -> None:
    smart = cycle.sample.reports["smart"].data
    assert isinstance(smart, SmartReadings)
    gone = UnavailableDevice("/dev/sdf", 1_800_000_000.25, "smartctl exit status 2")
    reports = dict(cycle.sample.reports)
    reports["smart"] = replace(reports["smart"], data=replace(smart, unavailable=(gone,)))
    reports["hwmon"] = CollectorReport("hwmon", False, None, "timed out: still running", None)
    sample = replace(cycle.sample, reports=reports)
    frame = wire(build_frame(1, sample, cycle.snapshot, None))
    statuses = {s.name: s for s in frame.collector_statuses}
    assert list(statuses) == list(reports)
    assert statuses["hwmon"] == common_pb2.CollectorStatus(
        name="hwmon", ok=False, duration_seconds=0.0, error="timed out: still running"
    )
    libvirt = reports["libvirt"]
    assert statuses["libvirt"].ok
    assert statuses["libvirt"].duration_seconds == libvirt.duration_seconds
    assert statuses["libvirt"].error == ""
    (device,) = frame.unavailable_devices
    assert (device.collector, device.device, device.reason) == (
        "smart",
        "/dev/sdf",
        "smartctl exit status 2",
    )
    assert (device.since.seconds, device.since.nanos) == (1_800_000_000, 250_000_000)
    assert frame_summary(frame)["collectors_failed"] == 1
    assert frame_summary(frame)["unavailable_devices"] == 1


def test_without_scores_or_model_hashes(cycle: Cycle) -> None:
    bare = wire(build_frame(7, cycle.sample, cycle.snapshot, None))
    assert not bare.HasField("scores")
    assert not bare.HasField("window")
    unhashed = wire(build_frame(7, cycle.sample, cycle.snapshot, cycle.scores))
    model = unhashed.scores.failure_predictions[0].model
    assert (model.name, model.version, model.sha256) == ("node-failure-30m", "2026.01.01.1", "")
    assert model.feature_schema_version == NODE.version


def test_prediction_without_interval_or_time_to_failure(cycle: Cycle) -> None:
    first = cycle.scores.failure_predictions[0]
    plain = replace(first, ci_low=None, ci_high=None, estimated_time_to_failure_seconds=None)
    scores = replace(cycle.scores, failure_predictions=(plain,), anomalies=())
    (p,) = wire(build_frame(1, cycle.sample, cycle.snapshot, scores)).scores.failure_predictions
    assert (p.ci_low, p.ci_high, p.ci_level) == (0.0, 0.0, 0.0)
    assert not p.HasField("estimated_time_to_failure_seconds")


def test_frame_for_50_vms_stays_small(cycle: Cycle) -> None:
    """Features are ~210 bytes per VM; scores add what the models flag."""
    bare = build_frame(1, cycle.sample, cycle.snapshot, None, interval_seconds=10)
    full = build_frame(1, cycle.sample, cycle.snapshot, cycle.scores, models=cycle.models)
    vms = len(bare.vm_features)
    bare_bytes, full_bytes = bare.ByteSize(), full.ByteSize()
    print(f"frame for {vms} VMs: {bare_bytes} B without scores, {full_bytes} B with")
    assert bare_bytes < 1024 + 256 * vms
    per_score = (full_bytes - bare_bytes) / (
        len(full.scores.failure_predictions) + len(full.scores.anomalies)
    )
    assert per_score < 1024  # a score with up to 10 factors and its model version


def test_bad_input_is_refused(cycle: Cycle) -> None:
    with pytest.raises(ValueError, match="seq"):
        build_frame(0, cycle.sample, cycle.snapshot, None)
    other = replace(cycle.sample, node_id="someone-else")
    with pytest.raises(ValueError, match="someone-else"):
        build_frame(1, other, cycle.snapshot, None)
