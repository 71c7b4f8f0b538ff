"""Property: a host the resource and scope filters keep truly has what the VM needs.

Random small tables and requests (hypothesis); each surviving host is checked in plain
per-host Python against the request, and each removed host is checked to really lack
something, so the vectorised masks are neither too lenient nor too strict.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from novacron.coordinator.placement.filters.base import Filter
from novacron.coordinator.placement.filters.capacity import CapacityFilter
from novacron.coordinator.placement.filters.cpu_arch import CpuArchFilter
from novacron.coordinator.placement.filters.cpu_flags import CpuFlagsFilter
from novacron.coordinator.placement.filters.gpu import GpuFilter
from novacron.coordinator.placement.filters.numa import NumaFilter
from novacron.coordinator.placement.filters.zone import ZoneFilter
from novacron.coordinator.placement.request import NumaPolicy, PlacementRequest
from novacron.coordinator.placement.settings import PlacementSettings
from tests.coordinator.placement.tables import host_table

FLAGS = ("avx2", "aes", "avx512f", "sev")
MODELS = ("", "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB")
ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
# Each filter and what a host it removes must lack (see problems()).
CHECKS: dict[type[Filter], set[str]] = {
    CapacityFilter: {"vcpus", "memory", "disk"},
    GpuFilter: {"gpus", "gpu model"},
    CpuFlagsFilter: {"flags"},
    ZoneFilter: {"zone"},
    CpuArchFilter: {"arch"},
    NumaFilter: {"numa"},
}

GIB = 1024


@st.composite
def host_rows(draw: st.DrawFn) -> dict[str, Any]:
    nodes = draw(st.integers(0, 4))
    gpus_total = draw(st.integers(0, 8))
    return {
        "vcpus_total": draw(st.one_of(st.just(math.nan), st.integers(0, 32))),
        "vcpus_used": draw(st.integers(0, 64)),
        "memory_mib_total": draw(st.one_of(st.just(math.nan), st.integers(0, 64).map(GIB.__mul__))),
        "memory_mib_used": draw(st.integers(0, 64).map(GIB.__mul__)),
        "disk_gib_total": draw(st.one_of(st.just(math.nan), st.integers(0, 200))),
        "disk_gib_used": draw(st.integers(0, 200)),
        "gpus_total": gpus_total,
        "gpus_used": draw(st.integers(0, gpus_total)),
        "gpu_model": draw(st.sampled_from(MODELS)) if gpus_total else "",
        "cpu_flags": draw(st.sets(st.sampled_from(FLAGS))),
        "zone": draw(st.sampled_from(("", "z1", "z2"))),
        "arch": draw(st.sampled_from(("", "x86_64", "aarch64"))),
        "numa_free_vcpus": draw(st.lists(st.integers(-2, 16), min_size=nodes, max_size=nodes)),
        "numa_free_memory_mib": draw(
            st.lists(st.integers(-2, 32).map(GIB.__mul__), min_size=nodes, max_size=nodes)
        ),
    }


requests = st.builds(
    PlacementRequest,
    vcpus=st.integers(1, 24),
    memory_mib=st.one_of(st.integers(1, 48).map(GIB.__mul__), st.integers(1, 48 * GIB)),
    disk_gib=st.integers(0, 100),
    gpus=st.integers(0, 3),
    gpu_model=st.sampled_from(("", "h100", "A100-SXM4")),
    cpu_flags=st.lists(st.sampled_from(FLAGS), max_size=3).map(tuple),
    numa_policy=st.sampled_from((NumaPolicy.NONE, NumaPolicy.STRICT)),
    numa_nodes=st.integers(1, 3),
    image_arch=st.sampled_from(("", "amd64", "x86_64", "arm64")),
    zone=st.sampled_from(("", "z1", "z2")),
)
ratios = st.sampled_from((0.5, 1.0, 1.5, 4.0))


def enough(total: float, used: float, ratio: float, amount: float) -> bool:
    return not math.isnan(total) and total * ratio - used >= amount


def numa_fits(row: dict[str, Any], vcpus: int, memory_mib: int, guest_nodes: int) -> bool:
    """Some distinct host nodes each hold one guest node (brute force over assignments)."""
    nodes = list(zip(row["numa_free_vcpus"], row["numa_free_memory_mib"], strict=True))
    per_vcpus, per_memory = math.ceil(vcpus / guest_nodes), math.ceil(memory_mib / guest_nodes)
    return any(
        all(nodes[i][0] >= per_vcpus and nodes[i][1] >= per_memory for i in chosen)
        for chosen in itertools.permutations(range(len(nodes)), guest_nodes)
    )


def problems(row: dict[str, Any], request: PlacementRequest, s: PlacementSettings) -> list[str]:
    """Everything this host lacks for ``request``, checked one host at a time."""
    lacking = []
    if not enough(row["vcpus_total"], row["vcpus_used"], s.cpu_allocation_ratio, request.vcpus):
        lacking.append("vcpus")
    if not enough(
        row["memory_mib_total"], row["memory_mib_used"], s.ram_allocation_ratio, request.memory_mib
    ):
        lacking.append("memory")
    if request.disk_gib and not enough(
        row["disk_gib_total"], row["disk_gib_used"], s.disk_allocation_ratio, request.disk_gib
    ):
        lacking.append("disk")
    if request.gpus:
        if row["gpus_total"] - row["gpus_used"] < request.gpus:
            lacking.append("gpus")
        model = row["gpu_model"]
        if request.gpu_model and not (model and request.gpu_model.lower() in model.lower()):
            lacking.append("gpu model")
    if not set(request.cpu_flags) <= row["cpu_flags"]:
        lacking.append("flags")
    if request.zone and row["zone"] != request.zone:
        lacking.append("zone")
    if request.image_arch and ARCH.get(row["arch"], "") != ARCH[request.image_arch]:
        lacking.append("arch")
    if request.numa_policy is NumaPolicy.STRICT and not numa_fits(
        row, request.vcpus, request.memory_mib, request.numa_nodes
    ):
        lacking.append("numa")
    return lacking


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(host_rows(), min_size=1, max_size=8),
    request=requests,
    cpu_ratio=ratios,
    ram_ratio=ratios,
    disk_ratio=ratios,
)
def test_each_filter_keeps_exactly_the_hosts_that_have_what_it_checks(
    rows: list[dict[str, Any]],
    request: PlacementRequest,
    cpu_ratio: float,
    ram_ratio: float,
    disk_ratio: float,
) -> None:
    s = PlacementSettings(
        cpu_allocation_ratio=cpu_ratio,
        ram_allocation_ratio=ram_ratio,
        disk_allocation_ratio=disk_ratio,
    )
    hosts = host_table(rows)
    lacking = [set(problems(row, request, s)) for row in rows]
    # Rounding a guest node up is conservative: only an even split must fit exactly.
    exact_numa = request.vcpus % request.numa_nodes == 0 and (
        request.memory_mib % request.numa_nodes == 0
    )
    for filter_class, checks in CHECKS.items():
        removed = filter_class(s).verdict(hosts, request).rejected(len(hosts))
        for row, gone, missing in zip(rows, removed.tolist(), lacking, strict=True):
            if not gone:
                assert not missing & checks, f"{filter_class.__name__} kept {row}"
            elif filter_class is not NumaFilter or exact_numa:
                assert missing & checks, f"{filter_class.__name__} removed {row}"
