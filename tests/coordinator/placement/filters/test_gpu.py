"""GPU count and model."""

from __future__ import annotations

import numpy as np
import pytest

from novacron.coordinator.placement.filters.gpu import GpuFilter, gpu_model_matches
from tests.coordinator.placement.tables import host_table, rejected, request

H100 = "NVIDIA H100 80GB HBM3"
A100 = "NVIDIA A100-SXM4-80GB"
HOSTS = host_table(
    [
        {"host_id": "cpu_only"},
        {"host_id": "h100_full", "gpus_total": 8, "gpus_used": 8, "gpu_model": H100},
        {"host_id": "h100_two", "gpus_total": 8, "gpus_used": 6, "gpu_model": H100},
        {"host_id": "a100_four", "gpus_total": 4, "gpu_model": A100},
    ]
)
SHORT = "not enough free GPUs"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, {}),
        ({"gpu_model": "H100"}, {}),  # no GPU asked for: the model alone filters nothing
        ({"gpus": 1}, {SHORT: ["cpu_only", "h100_full"]}),
        ({"gpus": 3}, {SHORT: ["cpu_only", "h100_full", "h100_two"]}),
        (
            {"gpus": 1, "gpu_model": "h100"},
            {SHORT: ["cpu_only", "h100_full"], "GPU model is not h100": ["cpu_only", "a100_four"]},
        ),
        (
            {"gpus": 2, "gpu_model": "A100-SXM4-80GB"},
            {
                SHORT: ["cpu_only", "h100_full"],
                "GPU model is not A100-SXM4-80GB": ["cpu_only", "h100_full", "h100_two"],
            },
        ),
    ],
)
def test_gpu(fields: dict[str, object], expected: dict[str, list[str]]) -> None:
    assert rejected(GpuFilter, HOSTS, request(**fields)) == expected


def test_model_match_is_a_case_insensitive_substring_and_never_matches_no_gpu() -> None:
    models = np.array([H100, "", A100, "nvidia h100 pcie"])
    assert gpu_model_matches(models, "H100").tolist() == [True, False, False, True]
    assert gpu_model_matches(models, "").tolist() == [True, False, True, True]
    assert gpu_model_matches(models, "V100").tolist() == [False] * 4
