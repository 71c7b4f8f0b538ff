"""Balance: spread of the used shares over the resources a host has, before and after."""

from __future__ import annotations

import math
import statistics

import pytest

from novacron.coordinator.placement.settings import PlacementSettings
from novacron.coordinator.placement.weighers.balance import BalanceWeigher
from tests.coordinator.placement.tables import host_table, request
from tests.coordinator.placement.weighers.weighing import weigh

NO_OVERCOMMIT = PlacementSettings(cpu_allocation_ratio=1.0)
# 32 vCPUs, 128 GiB, 1000 GiB disk.
HOSTS = host_table(
    [
        {"host_id": "even", "vcpus_used": 16, "memory_mib_used": 65536, "disk_gib_used": 500},
        {"host_id": "no_disk", "vcpus_used": 24, "disk_gib_total": math.nan},
        {"host_id": "gpu", "gpus_total": 4, "gpus_used": 3, "vcpus_used": 8},
        {"host_id": "unknown", "vcpus_total": math.nan},
    ]
)


@pytest.mark.parametrize(
    ("fields", "before", "after"),
    [
        (
            {"vcpus": 4, "memory_mib": 4096},
            [[0.5, 0.5, 0.5], [0.75, 0.0], [0.25, 0.0, 0.0, 0.75]],
            [
                [20 / 32, 69632 / 131072, 0.5],
                [28 / 32, 4096 / 131072],
                [12 / 32, 4096 / 131072, 0.0, 0.75],
            ],
        ),
        (
            {"vcpus": 2, "memory_mib": 8192, "disk_gib": 100, "gpus": 1},
            [[0.5, 0.5, 0.5], [0.75, 0.0], [0.25, 0.0, 0.0, 0.75]],
            [
                [18 / 32, 73728 / 131072, 0.6],
                [26 / 32, 8192 / 131072],
                [10 / 32, 8192 / 131072, 0.1, 1.0],
            ],
        ),
    ],
)
def test_imbalance_over_the_resources_each_host_has(
    fields: dict[str, int], before: list[list[float]], after: list[list[float]]
) -> None:
    values = weigh(BalanceWeigher, HOSTS, request(**fields), NO_OVERCOMMIT)
    expected_after = [statistics.pstdev(shares) for shares in after]
    expected_before = [statistics.pstdev(shares) for shares in before]
    assert values["balance_stddev_after"][:3].tolist() == pytest.approx(expected_after)
    assert values["balance_improvement"][:3].tolist() == pytest.approx(
        [b - a for b, a in zip(expected_before, expected_after, strict=True)]
    )
    assert values["dominant_share_after"][:3].tolist() == pytest.approx(
        [max(shares) for shares in after]
    )
    for factor_id in ("balance_stddev_after", "dominant_share_after"):
        assert math.isnan(values[factor_id][3]), factor_id


def test_filling_the_idle_resource_improves_balance() -> None:
    # CPU-heavy host: a memory-heavy VM evens it out, a CPU-heavy one makes it worse.
    hosts = host_table([{"vcpus_used": 24, "disk_gib_total": math.nan}])
    memory_heavy = weigh(BalanceWeigher, hosts, request(vcpus=1, memory_mib=65536), NO_OVERCOMMIT)
    cpu_heavy = weigh(BalanceWeigher, hosts, request(vcpus=8, memory_mib=1024), NO_OVERCOMMIT)
    assert memory_heavy["balance_improvement"][0] > 0 > cpu_heavy["balance_improvement"][0]
