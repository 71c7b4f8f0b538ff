"""CPU flags: one reason per missing flag."""

from __future__ import annotations

import pytest

from novacron.coordinator.placement.filters.cpu_flags import CpuFlagsFilter
from tests.coordinator.placement.tables import host_table, rejected, request

HOSTS = host_table(
    [
        {"host_id": "skylake", "cpu_flags": ("avx2", "aes", "vmx")},
        {"host_id": "icelake", "cpu_flags": ("avx2", "aes", "vmx", "avx512f")},
        {"host_id": "epyc", "cpu_flags": ("avx2", "aes", "svm", "sev")},
        {"host_id": "unknown"},
    ]
)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ((), {}),
        (("avx2",), {"CPU lacks flag avx2": ["unknown"]}),
        (
            ("avx512f", "aes", "avx512f"),
            {
                "CPU lacks flag avx512f": ["skylake", "epyc", "unknown"],
                "CPU lacks flag aes": ["unknown"],
            },
        ),
        (("amx_tile",), {"CPU lacks flag amx_tile": ["skylake", "icelake", "epyc", "unknown"]}),
    ],
)
def test_cpu_flags(flags: tuple[str, ...], expected: dict[str, list[str]]) -> None:
    assert rejected(CpuFlagsFilter, HOSTS, request(cpu_flags=flags)) == expected
