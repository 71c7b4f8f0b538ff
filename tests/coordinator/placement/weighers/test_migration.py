"""Migration targets: rack, zone, CPU model and CPU flags shared with the source."""

from __future__ import annotations

import math

import pytest

from novacron.coordinator.placement.weighers.migration import MigrationWeigher
from tests.coordinator.placement.tables import host_table, request
from tests.coordinator.placement.weighers.weighing import assert_raw, weigh

NAN = math.nan
SOURCE = {"rack": "r1", "zone": "z1", "cpu_model": "EPYC 9654", "cpu_flags": ("avx2", "avx512f")}
HOSTS = host_table(
    [
        {"host_id": "src", **SOURCE},
        {"host_id": "twin", **SOURCE, "cpu_flags": ("avx2", "avx512f", "amx")},
        {
            "host_id": "older",
            "rack": "r2",
            "zone": "z1",
            "cpu_model": "EPYC 7763",
            "cpu_flags": ("avx2",),
        },
        {
            "host_id": "far",
            "rack": "r9",
            "zone": "z2",
            "cpu_model": "EPYC 9654",
            "cpu_flags": ("avx2", "avx512f"),
        },
        {"host_id": "unknown"},
    ]
)


def test_live_migration_prefers_close_and_alike() -> None:
    assert_raw(
        weigh(MigrationWeigher, HOSTS, request(current_host="src")),
        {
            "migration_same_rack": [1, 1, 0, 0, NAN],
            "migration_same_zone": [1, 1, 1, 0, NAN],
            "migration_cpu_model_match": [1, 1, 0, 1, NAN],
            "migration_cpu_flags_superset": [1, 1, 0, 1, 0],
        },
    )


@pytest.mark.parametrize("current_host", ["", "not-in-fleet", "unknown"])
def test_nothing_to_be_close_to(current_host: str) -> None:
    values = weigh(MigrationWeigher, HOSTS, request(current_host=current_host))
    for factor_id, column in values.items():
        assert column.tolist() == [0] * 5, factor_id
