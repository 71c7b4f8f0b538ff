"""Operational: age, telemetry age and coverage, liveness, untracked VMs, scarce hosts."""

from __future__ import annotations

import math

from novacron.coordinator.placement.weighers.operational import OperationalWeigher
from novacron.models.schema import NODE
from tests.coordinator.placement.tables import host_table, request
from tests.coordinator.placement.weighers.weighing import assert_raw, weigh

NAN = math.nan


def test_host_state_and_coverage() -> None:
    seen = dict.fromkeys(NODE.feature_names[:7], 0.0)
    hosts = host_table(
        [
            {**seen, "hardware_age_years": 6.5, "vm_running_count_last_15m": 5, "vm_count": 3},
            {
                "liveness": 1,
                "seconds_since_seen": 300,
                "vm_running_count_last_15m": 1,
                "vm_count": 3,
            },
            {"liveness": 2, "vm_count": 3},
        ]
    )
    assert_raw(
        weigh(OperationalWeigher, hosts, request()),
        {
            "hardware_age_years": [6.5, NAN, NAN],
            "seconds_since_seen": [5, 300, 5],
            "host_not_live": [0, 1, 1],
            # Seven features plus the VM count; the VM count only; nothing.
            "telemetry_coverage": [8 / len(NODE.feature_names), 1 / len(NODE.feature_names), 0],
            # Two VMs run that the coordinator did not place; fewer running is not "negative".
            "untracked_vms": [2, 0, NAN],
        },
    )


def test_scarce_hosts_are_kept_for_the_vms_that_need_them() -> None:
    # "amx" is on 1 host of 11 (rare), "avx2" on every one.
    rows: list[dict[str, tuple[str, ...]]] = [
        {"cpu_flags": ("avx2", "amx"), "compliance": ("pci", "hipaa")}
    ]
    rows += [{"cpu_flags": ("avx2",)} for _ in range(10)]
    hosts = host_table(rows)
    plain = weigh(OperationalWeigher, hosts, request())
    assert plain["rare_cpu_flags_unused"].tolist() == [1] + [0] * 10
    assert plain["compliance_preservation"].tolist() == [2] + [0] * 10
    needs_them = weigh(
        OperationalWeigher, hosts, request(cpu_flags=("amx", "avx2"), compliance=("pci",))
    )
    assert needs_them["rare_cpu_flags_unused"].tolist() == [0] * 11
    assert needs_them["compliance_preservation"].tolist() == [1] + [0] * 10
