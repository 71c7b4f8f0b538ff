"""GPU health counts for GPU VMs only."""

from __future__ import annotations

import math

from novacron.coordinator.placement.weighers.gpu_health import GpuHealthWeigher
from tests.coordinator.placement.tables import host_table, request
from tests.coordinator.placement.weighers.weighing import assert_raw, weigh

NAN = math.nan
HOSTS = host_table(
    [
        {
            "gpus_total": 8,
            "gpu_ecc_uncorrected_errors_increase_24h": 3,
            "gpu_xid_events_increase_1h": 1,
            "gpu_retired_pages_last_1h": 12,
            "gpu_temp_max_celsius_last_15m": 81,
        },
        {
            "gpus_total": 8,
            "gpu_ecc_uncorrected_errors_increase_24h": 0,
            "gpu_xid_events_increase_1h": 0,
            "gpu_retired_pages_last_1h": 0,
            "gpu_temp_max_celsius_last_15m": 55,
        },
        {"gpus_total": 8},  # no GPU telemetry
    ]
)


def test_gpu_vm_sees_the_counters() -> None:
    assert_raw(
        weigh(GpuHealthWeigher, HOSTS, request(gpus=1)),
        {
            "gpu_ecc_uncorrected_24h": [3, 0, NAN],
            "gpu_xid_events_1h": [1, 0, NAN],
            "gpu_retired_pages": [12, 0, NAN],
            "gpu_temp_celsius": [81, 55, NAN],
        },
    )


def test_cpu_vm_is_indifferent() -> None:
    values = weigh(GpuHealthWeigher, HOSTS, request())
    for factor_id, column in values.items():
        assert column.tolist() == [0, 0, 0], factor_id
