"""GPU capacity: free GPUs and model match for GPU VMs, GPU hosts kept for GPU VMs."""

from __future__ import annotations

import pytest

from novacron.coordinator.placement.weighers.gpu import (
    EXACT_MATCH,
    FAMILY_MATCH,
    GpuWeigher,
    model_match,
)
from tests.coordinator.placement.tables import host_table, request
from tests.coordinator.placement.weighers.weighing import assert_raw, weigh

HOSTS = host_table(
    [
        {
            "host_id": "a100_sxm",
            "gpu_model": "NVIDIA A100-SXM4-80GB",
            "gpus_total": 8,
            "gpus_used": 2,
        },
        {"host_id": "a100", "gpu_model": "A100", "gpus_total": 4},
        {"host_id": "h100", "gpu_model": "H100", "gpus_total": 4, "gpus_used": 4},
        {"host_id": "cpu_only"},
    ]
)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"gpus": 1, "gpu_model": "a100"},
            {
                "free_gpus": [6, 4, 0, 0],
                "gpu_model_match": [FAMILY_MATCH, EXACT_MATCH, 0, 0],
                "gpu_preservation": [0, 0, 0, 0],
            },
        ),
        (
            {"gpus": 2},  # any model: nothing to match
            {"free_gpus": [6, 4, 0, 0], "gpu_model_match": [0, 0, 0, 0]},
        ),
        (
            {},  # CPU-only VM: hosts with free GPUs count against
            {
                "free_gpus": [0, 0, 0, 0],
                "gpu_model_match": [0, 0, 0, 0],
                "gpu_preservation": [6, 4, 0, 0],
            },
        ),
    ],
)
def test_gpu_factors(fields: dict[str, object], expected: dict[str, list[float]]) -> None:
    assert_raw(weigh(GpuWeigher, HOSTS, request(**fields)), expected)


@pytest.mark.parametrize(
    ("wanted", "offered", "score"),
    [
        ("A100", "a100 ", EXACT_MATCH),
        ("A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB", FAMILY_MATCH),
        ("NVIDIA H100 80GB HBM3", "H100", FAMILY_MATCH),
        ("A100", "H100", 0.0),
        ("A100", "", 0.0),
    ],
)
def test_model_match(wanted: str, offered: str, score: float) -> None:
    assert model_match(wanted, offered) == score
