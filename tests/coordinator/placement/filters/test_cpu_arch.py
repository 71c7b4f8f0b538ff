"""The image's architecture, with the usual alias spellings."""

from __future__ import annotations

import pytest

from novacron.coordinator.placement.filters.cpu_arch import CpuArchFilter, canonical_arch
from tests.coordinator.placement.tables import host_table, rejected, request

HOSTS = host_table(
    [
        {"host_id": "x86", "arch": "x86_64"},
        {"host_id": "arm", "arch": "aarch64"},
        {"host_id": "mystery", "arch": ""},
    ]
)


@pytest.mark.parametrize(
    ("image_arch", "expected"),
    [
        ("", {}),
        (
            "x86_64",
            {"CPU architecture unknown": ["mystery"], "CPU architecture is not x86_64": ["arm"]},
        ),
        (
            "AMD64",
            {"CPU architecture unknown": ["mystery"], "CPU architecture is not x86_64": ["arm"]},
        ),
        (
            "arm64",
            {"CPU architecture unknown": ["mystery"], "CPU architecture is not aarch64": ["x86"]},
        ),
        (
            "riscv64",
            {
                "CPU architecture unknown": ["mystery"],
                "CPU architecture is not riscv64": ["x86", "arm"],
            },
        ),
    ],
)
def test_cpu_arch(image_arch: str, expected: dict[str, list[str]]) -> None:
    assert rejected(CpuArchFilter, HOSTS, request(image_arch=image_arch)) == expected


def test_canonical_arch() -> None:
    assert [canonical_arch(a) for a in ("amd64", " X86_64 ", "arm64", "ppc64el", "s390x")] == [
        "x86_64",
        "x86_64",
        "aarch64",
        "ppc64le",
        "s390x",
    ]
