"""Disk health: SMART levels and increases as measured; any active symptom flags the host."""

from __future__ import annotations

import math

import pytest

from novacron.coordinator.placement.weighers.disk_health import DiskHealthWeigher
from tests.coordinator.placement.tables import host_table, request
from tests.coordinator.placement.weighers.weighing import weigh

CLEAN = {
    "smart_reallocated_sectors_last_1h": 0,
    "smart_reallocated_sectors_increase_1h": 0,
    "smart_reallocated_sectors_increase_24h": 0,
    "smart_pending_sectors_last_1h": 0,
    "smart_pending_sectors_increase_1h": 0,
    "smart_pending_sectors_increase_24h": 0,
    "smart_uncorrectable_errors_increase_1h": 0,
    "smart_uncorrectable_errors_increase_24h": 0,
    "smart_failing_disks_last_1h": 0,
    "smart_unavailable_disks_max_1h": 0,
    "nvme_spare_min_percent_last_1h": 100,
    "nvme_used_max_percent_last_1h": 3,
}


@pytest.mark.parametrize(
    ("changes", "symptom"),
    [
        ({}, 0.0),
        # Old, stable reallocations are wear, not a symptom.
        ({"smart_reallocated_sectors_last_1h": 120}, 0.0),
        ({"smart_failing_disks_last_1h": 1}, 1.0),
        ({"smart_unavailable_disks_max_1h": 1}, 1.0),
        ({"smart_uncorrectable_errors_increase_24h": 2}, 1.0),
        ({"smart_pending_sectors_increase_24h": 8}, 1.0),
        ({"smart_reallocated_sectors_increase_24h": 8}, 1.0),
        # Only some counters known, the known ones clean.
        (
            {"smart_failing_disks_last_1h": math.nan, "smart_unavailable_disks_max_1h": math.nan},
            0.0,
        ),
    ],
)
def test_symptom(changes: dict[str, float], symptom: float) -> None:
    values = weigh(DiskHealthWeigher, host_table([{**CLEAN, **changes}]), request())
    assert values["disk_symptom"].tolist() == [symptom]


def test_counters_pass_through_and_no_data_is_unknown() -> None:
    hosts = host_table([{**CLEAN, "smart_pending_sectors_last_1h": 16}, {}])
    values = weigh(DiskHealthWeigher, hosts, request())
    assert values["smart_pending_sectors"][0] == 16
    assert values["nvme_spare_percent"][0] == 100
    for factor_id, column in values.items():
        assert math.isnan(column[1]), factor_id
