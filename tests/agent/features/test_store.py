"""NodeFeatures: windows per node, VM and disk; bounded memory; save and restore."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from novacron.agent.collectors._libvirt_model import (
    DiskCounters,
    DiskRates,
    DiskStats,
    DomainStateCounts,
    DomainStats,
    LibvirtReadings,
)
from novacron.agent.collectors.base import UnavailableDevice
from novacron.agent.collectors.hwmon import HwmonReadings
from novacron.agent.collectors.smart.model import DiskHealth, SmartReadings
from novacron.agent.collectors.smart.parse_json import parse_disk_json
from novacron.agent.features.state_file import read_state, write_state
from novacron.agent.features.store import (
    MIN_SAMPLE_SPACING_SECONDS,
    STATE_FILE_NAME,
    FeatureSnapshot,
    NodeFeatures,
)
from novacron.agent.sample import CollectorReport, NodeSample
from novacron.models.schema import DAY, DISK, HOUR, MINUTE, NODE, VM
from tests.agent.node_cycles import collect_cycles
from tests.fixtures.smartctl import FAILING_ATA, FIXTURES

T0 = 1_800_000_000.0
STEP = 10.0


@cache
def _ata_disk() -> DiskHealth:
    return parse_disk_json(json.loads((FIXTURES / FAILING_ATA).read_text()), "/dev/sda")


def _disk(device: str, serial: str, reallocated: int) -> DiskHealth:
    base = _ata_disk()
    attributes = tuple(
        replace(a, raw_value=reallocated) if a.id == 5 else a for a in base.ata_attributes
    )
    return replace(base, device=device, serial=serial, ata_attributes=attributes)


def _domain(index: int, read_bytes_per_second: float) -> DomainStats:
    return DomainStats(
        name=f"vm-{index}",
        uuid=f"uuid-{index}",
        state="running",
        state_reason="booted",
        vcpu_count=2,
        cpu_time_seconds=100.0,
        balloon_maximum_bytes=2**31,
        memory_rss_bytes=2**30,
        disks=(
            DiskStats(
                "vda", DiskCounters(), DiskRates(read_bytes_per_second=read_bytes_per_second)
            ),
        ),
    )


def _sample(
    k: int, *, vms: range = range(3), disks: int = 2, node_id: str = "hv-1", t0: float = T0
) -> NodeSample:
    """Cycle ``k``: values that change every cycle, so windows hold real history."""
    t = t0 + k * STEP
    hwmon = HwmonReadings((), (), 40.0 + (k % 7), 30.0 - (k % 5), ())
    smart = SmartReadings(
        "7.3",
        "json",
        tuple(_disk(f"/dev/sd{chr(97 + i)}", f"SER{i}", k // 3 + i) for i in range(disks)),
        (),
    )
    domains = tuple(_domain(i, 1000.0 * i + k) for i in vms)
    libvirt = LibvirtReadings(
        "test:///x", True, None, DomainStateCounts(running=len(domains)), domains, ()
    )
    reports = {
        name: CollectorReport(name, True, 0.01, None, data)
        for name, data in (("hwmon", hwmon), ("smart", smart), ("libvirt", libvirt))
    }
    return NodeSample(node_id, t, reports)


def _fed(cycles: int, **kwargs: object) -> NodeFeatures:
    features = NodeFeatures("hv-1")
    for k in range(cycles):
        features.update(_sample(k, **kwargs))  # type: ignore[arg-type]
    return features


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    """Messages with their context (the JSON log's extra fields), one per line."""
    return "\n".join(
        f"{r.message} {getattr(r, 'error', '')} {getattr(r, 'scope', '')}" for r in caplog.records
    )


def _assert_same(a: FeatureSnapshot, b: FeatureSnapshot) -> None:
    for name in ("node", "vms", "disks"):
        left, right = getattr(a, name), getattr(b, name)
        assert left.subjects == right.subjects, name
        assert left.labels == right.labels, name
        np.testing.assert_array_equal(left.features, right.features, err_msg=name)


# --- windows per subject ---------------------------------------------------------------


def test_snapshot_has_one_row_per_subject_in_schema_order() -> None:
    snapshot = _fed(20).snapshot()
    assert snapshot.timestamp_seconds == T0 + 19 * STEP
    assert snapshot.node.subjects == ("hv-1",)
    assert snapshot.node.features.shape == (1, len(NODE.features))
    assert snapshot.vms.subjects == ("uuid-0", "uuid-1", "uuid-2")
    assert snapshot.vms.labels == ("vm-0", "vm-1", "vm-2")
    assert snapshot.vms.features.shape == (3, len(VM.features))
    assert snapshot.disks.subjects == ("SER0", "SER1")
    assert snapshot.disks.labels == ("/dev/sda", "/dev/sdb")
    assert snapshot.disks.features.shape == (2, len(DISK.features))
    # spot checks against the generated values
    node = dict(zip(NODE.feature_names, snapshot.node.features[0], strict=True))
    assert node["temp_max_celsius_last_15m"] == 40.0 + 19 % 7
    assert node["vm_running_count_last_15m"] == 3.0
    assert math.isnan(node["cpu_util_percent_mean_15m"])  # no host collector: no data
    disk = dict(zip(DISK.feature_names, snapshot.disks.features[1], strict=True))
    assert disk["reallocated_sectors_last_24h"] == 19 // 3 + 1
    vm = dict(zip(VM.feature_names, snapshot.vms.features[2], strict=True))
    assert vm["vm_disk_read_bytes_per_second_mean_15m"] == pytest.approx(2000.0 + 9.5)


def test_model_input_fills_no_data_and_is_float32() -> None:
    matrix = _fed(3).snapshot().node
    rows = matrix.model_input()
    assert rows.dtype == np.float32
    fills = np.asarray(NODE.fills(), dtype=np.float32)
    missing = np.isnan(matrix.features[0])
    assert missing.any()
    np.testing.assert_array_equal(rows[0][missing], fills[missing])


def test_snapshot_lists_only_subjects_seen_in_the_latest_cycle() -> None:
    features = _fed(5)
    features.update(_sample(5, vms=range(1), disks=1))
    snapshot = features.snapshot()
    assert snapshot.vms.subjects == ("uuid-0",)
    assert snapshot.disks.subjects == ("SER0",)
    assert features.subject_count("vm") == 3  # the others' windows are kept for a while


def test_snapshot_before_any_update_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        NodeFeatures("hv-1").snapshot()


def test_vm_churn_keeps_memory_bounded() -> None:
    """A new VM every cycle for 3 hours: only the last 15 minutes' VMs keep windows."""
    features = NodeFeatures("hv-1")
    cycles = int(3 * HOUR / STEP)
    for k in range(cycles):
        features.update(_sample(k, vms=range(k, k + 2), disks=0))
    longest_vm_window = VM.longest_window_seconds
    assert longest_vm_window == 15 * MINUTE
    assert features.subject_count("vm") <= longest_vm_window / STEP + 3
    assert features.subject_count("vm") < cycles / 10


def test_a_cap_bounds_windows_even_under_extreme_churn(caplog: pytest.LogCaptureFixture) -> None:
    features = NodeFeatures("hv-1", max_vms=10)
    with caplog.at_level(logging.WARNING):
        features.update(_sample(0, vms=range(50), disks=0))
        features.update(_sample(1, vms=range(50, 60), disks=0))
    assert features.subject_count("vm") == 10
    assert features.snapshot().vms.subjects == tuple(f"uuid-{i}" for i in range(50, 60))
    assert sum("too many subjects" in r.message for r in caplog.records) == 1


def test_a_very_fast_loop_neither_blows_up_the_windows_nor_shortens_them(
    tmp_path: Path,
) -> None:
    """``interval_seconds = 0.001`` must not size rings for millions of rows."""
    features = NodeFeatures("hv-1", interval_hint_seconds=0.001)
    assert features.interval_hint_seconds == MIN_SAMPLE_SPACING_SECONDS
    for k in range(100):  # one sample per second for 100 s
        features.update(replace(_sample(k), timestamp_seconds=T0 + k))
    assert features.snapshot().timestamp_seconds == T0 + 95.0
    features.save(tmp_path / STATE_FILE_NAME, T0 + 100)
    meta, subjects = read_state(tmp_path / STATE_FILE_NAME)
    node = [s["scope"] for s in meta["subjects"]].index("node")
    np.testing.assert_array_equal(subjects[node]["fine_t"], T0 + np.arange(0, 100, 5.0))


def test_disks_outlive_vms_by_their_longer_window() -> None:
    features = _fed(3)
    features.update(_sample(int(HOUR / STEP), vms=range(0), disks=0))
    assert features.subject_count("vm") == 0  # gone for more than 15 min
    assert features.subject_count("disk") == 2  # disks keep 7 days
    features.update(_sample(int(8 * DAY / STEP), vms=range(0), disks=0))
    assert features.subject_count("disk") == 0


def test_a_sample_older_than_the_windows_is_skipped_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    features = _fed(3)
    before = features.snapshot()
    with caplog.at_level(logging.WARNING):
        features.update(_sample(1))  # clock went back
    assert "not newer than the last one" in _logged(caplog)
    np.testing.assert_array_equal(before.node.features, features.snapshot().node.features)


# --- persistence -------------------------------------------------------------------------


def test_save_restore_round_trip_gives_identical_features(tmp_path: Path) -> None:
    original = _fed(200)
    path = tmp_path / STATE_FILE_NAME
    now = T0 + 199 * STEP
    assert original.save(path, now)
    restored = NodeFeatures("hv-1")
    assert restored.restore(path, now + STEP)
    nxt = _sample(200)
    original.update(nxt)
    restored.update(nxt)
    _assert_same(original.snapshot(), restored.snapshot())
    # and the restored windows keep going exactly alike
    for k in range(201, 260):
        original.update(_sample(k))
        restored.update(_sample(k))
    _assert_same(original.snapshot(), restored.snapshot())
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_round_trip_on_a_real_fixture_node(tmp_path: Path) -> None:
    samples = collect_cycles(tmp_path / "node", cycles=3)
    original = NodeFeatures(samples[0].node_id)
    for sample in samples[:2]:
        original.update(sample)
    path = tmp_path / "state" / STATE_FILE_NAME
    assert original.save(path, samples[1].timestamp_seconds)
    restored = NodeFeatures(samples[0].node_id)
    assert restored.restore(path, samples[2].timestamp_seconds)
    original.update(samples[2])
    restored.update(samples[2])
    _assert_same(original.snapshot(), restored.snapshot())
    assert len(restored.snapshot().disks) == 6
    assert len(restored.snapshot().vms) == 4


def test_the_signal_carry_is_restored_too(tmp_path: Path) -> None:
    """A disk that is silent right after a restart still counts in the node sums."""
    original = _fed(3)
    path = tmp_path / STATE_FILE_NAME
    original.save(path, T0 + 2 * STEP)
    restored = NodeFeatures("hv-1")
    restored.restore(path, T0 + 3 * STEP)
    silent = _sample(3, disks=1)
    smart = silent.reports["smart"].data
    assert isinstance(smart, SmartReadings)
    smart = replace(smart, unavailable=(UnavailableDevice("/dev/sdb", T0, "timed out"),))
    silent.reports["smart"] = replace(silent.reports["smart"], data=smart)
    signals = restored.update(silent)
    assert signals.node["smart_reallocated_sectors"] == (3 // 3) + (2 // 3 + 1)


def test_missing_state_file_is_a_quiet_empty_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    features = NodeFeatures("hv-1")
    with caplog.at_level(logging.WARNING):
        assert not features.restore(tmp_path / STATE_FILE_NAME, T0)
    assert caplog.records == []


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"this is not a zip file",
        lambda data: data[: len(data) // 2],  # torn write of a non-atomic writer
        lambda data: b"",
    ],
    ids=["garbage", "truncated", "empty"],
)
def test_corrupt_state_file_is_logged_and_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: object
) -> None:
    path = tmp_path / STATE_FILE_NAME
    _fed(20).save(path, T0 + 19 * STEP)
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    features = NodeFeatures("hv-1")
    with caplog.at_level(logging.WARNING):
        assert not features.restore(path, T0 + 20 * STEP)
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "unusable; starting with empty windows" in record.message
    assert record.path == str(path)  # type: ignore[attr-defined]
    assert features.subject_count("disk") == 0
    features.update(_sample(21))  # and the agent goes on
    assert len(features.snapshot().disks) == 2


def _rewrite_meta(path: Path, change: object) -> None:
    meta, subjects = read_state(path)
    change(meta)  # type: ignore[operator]
    write_state(path, {k: v for k, v in meta.items() if k != "format"}, subjects)


def test_another_schema_is_ignored_with_a_log_line_per_scope(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / STATE_FILE_NAME
    _fed(20).save(path, T0 + 19 * STEP)
    _rewrite_meta(path, lambda meta: meta["schemas"].update(node="0" * 64))
    features = NodeFeatures("hv-1")
    with caplog.at_level(logging.INFO):
        assert features.restore(path, T0 + 20 * STEP)
    assert [r.scope for r in caplog.records if "another schema" in r.message] == ["node"]  # type: ignore[attr-defined]
    assert features.subject_count("node") == 0
    assert features.subject_count("vm") == 3
    assert features.subject_count("disk") == 2


def test_windows_saved_under_another_schema_hash_are_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The per-window hash is checked too (a file edited or mixed by hand)."""
    path = tmp_path / STATE_FILE_NAME
    _fed(20).save(path, T0 + 19 * STEP)
    meta, subjects = read_state(path)
    subjects[0]["schema_hash"] = np.array("f" * 64)
    write_state(path, {k: v for k, v in meta.items() if k != "format"}, subjects)
    features = NodeFeatures("hv-1")
    with caplog.at_level(logging.WARNING):
        assert not features.restore(path, T0 + 20 * STEP)
    assert "SchemaMismatch" in _logged(caplog)
    assert features.subject_count("node") == 0


def test_state_older_than_the_longest_window_is_discarded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / STATE_FILE_NAME
    saved_at = T0 + 19 * STEP
    _fed(20).save(path, saved_at)
    features = NodeFeatures("hv-1")
    with caplog.at_level(logging.INFO):
        assert features.restore(path, saved_at + 25 * HOUR)
    # node windows (24 h) and VM windows (15 min) are stale; disk windows (7 days) are not
    assert features.subject_count("node") == 0
    assert features.subject_count("vm") == 0
    assert features.subject_count("disk") == 2
    stale = [r.scope for r in caplog.records if "older than their longest window" in r.message]  # type: ignore[attr-defined]
    assert sorted(stale) == ["node", "vm"]
    assert not NodeFeatures("hv-1").restore(path, saved_at + 8 * DAY)


def test_state_from_the_future_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / STATE_FILE_NAME
    _fed(20).save(path, T0 + 19 * STEP)
    features = NodeFeatures("hv-1")
    with caplog.at_level(logging.WARNING):
        assert not features.restore(path, T0 - HOUR)
    assert "saved in the future" in _logged(caplog)


def test_state_of_another_node_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / STATE_FILE_NAME
    _fed(20).save(path, T0 + 19 * STEP)
    with caplog.at_level(logging.WARNING):
        assert not NodeFeatures("hv-2").restore(path, T0 + 20 * STEP)
    assert "not hv-2" in _logged(caplog)


def test_a_failing_save_is_logged_once_and_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory should be")
    path = blocker / STATE_FILE_NAME
    features = _fed(3)
    with caplog.at_level(logging.ERROR):
        assert not features.save(path, T0)
        assert not features.save(path, T0 + STEP)
    assert sum("cannot save feature windows" in r.message for r in caplog.records) == 1


def test_a_save_replaces_the_previous_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE_NAME
    features = _fed(3)
    features.save(path, T0 + 2 * STEP)
    first_inode = path.stat().st_ino
    features.update(_sample(3))
    features.save(path, T0 + 3 * STEP)
    assert path.stat().st_ino != first_inode  # a new file renamed over the old one
    meta, _ = read_state(path)
    assert meta["saved_at_seconds"] == T0 + 3 * STEP
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILE_NAME]
