"""Synthetic fleets for tests, the demo and the benchmarks (1k to 50k hosts and more).

Realistic enough that placement decisions are interesting: mixed host models, GPU
hosts, zones and racks, NUMA nodes, partial use, hosts in maintenance or silent, a few
failing (with the telemetry to show it) and every NODE feature filled plausibly.
Vectorised, so 50k hosts take well under a second.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from novacron.coordinator.fleet import Liveness
from novacron.coordinator.placement.hosts import BoolArray, FlagMatrix, FloatArray, HostTable
from novacron.coordinator.placement.hosts_columns import assemble
from novacron.coordinator.placement.settings import PlacementSettings
from novacron.models.schema import NODE


class _Shape(NamedTuple):
    """One host model of a synthetic fleet."""

    name: str
    share: float  # fraction of the fleet
    vcpus: int
    memory_mib: int
    numa_nodes: int
    gpus: int
    arch: str
    generation: int  # index into _CPU_FLAGS
    power_idle_watts: float
    power_max_watts: float
    cost_per_hour: float
    aggregate: str
    cpu_model: str


# Host models, one a line (columns as in _Shape; memory in GiB; the CPU model last).
_SHAPE_TABLE = """
small   0.28  32 128  2 0 x86_64  0 110  350 0.45 general Intel(R) Xeon(R) Silver 4314
medium  0.30  64 256  2 0 x86_64  2 140  480 0.80 general AMD EPYC 7543 32-Core Processor
large   0.15 128 512  2 0 x86_64  2 190  720 1.40 general AMD EPYC 7763 64-Core Processor
highmem 0.10  96 1024 4 0 x86_64  1 220  780 1.90 highmem Intel(R) Xeon(R) Platinum 8380
gpu     0.09  96 768  2 8 x86_64  2 450 3200 9.50 gpu     AMD EPYC 7V13 64-Core Processor
arm     0.08  80 256  1 0 aarch64 3  90  300 0.60 arm     Ampere Altra Q80-30
"""


def _shape(line: str) -> _Shape:
    name, share, vcpus, memory_gib, numa, gpus, arch, gen, idle, peak, cost, aggregate, model = (
        line.split(maxsplit=12)
    )
    return _Shape(
        name,
        float(share),
        int(vcpus),
        int(memory_gib) * 1024,
        int(numa),
        int(gpus),
        arch,
        int(gen),
        float(idle),
        float(peak),
        float(cost),
        aggregate,
        model,
    )


_SHAPES = tuple(_shape(line) for line in _SHAPE_TABLE.strip().splitlines())
_CPU_FLAGS = (
    ("sse4_2", "avx", "avx2", "aes", "vmx", "fma", "popcnt"),  # Skylake-era Xeon Silver
    (
        "sse4_2",
        "avx",
        "avx2",
        "aes",
        "vmx",
        "fma",
        "popcnt",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "vaes",
    ),
    ("sse4_2", "avx", "avx2", "aes", "svm", "fma", "popcnt", "sev", "sha_ni"),  # EPYC
    ("asimd", "aes", "sha2", "crc32", "atomics"),  # Neoverse N1
)
_GPU_MODELS = ("NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3", "NVIDIA L40S")
_ZONES = ("zone-a", "zone-b", "zone-c")
_ZONE_CARBON_G_PER_KWH = (120.0, 350.0, 520.0)  # hydro-heavy, mixed, coal-heavy grids
_HOSTS_PER_RACK = 40


def synthetic_hosts(
    n: int,
    seed: int = 0,
    *,
    settings: PlacementSettings | None = None,
    taken_at_seconds: float = 1_700_000_000.0,
) -> HostTable:
    """A realistic fleet of ``n`` hosts, the same for the same ``seed``.

    Six host models (small/medium/large x86, high-memory, 8-GPU, ARM) in three zones of
    40-host racks; partly used (vCPUs overcommitted up to 2x); 1 % in maintenance,
    0.5 % cordoned, 1 % stale and 0.5 % unknown; about 2 % degraded (failing disks or
    memory, failure probability 0.3..0.95, telemetry to match) and 2 % anomalous; every
    NODE feature drawn from the host's load and health; power, cost, carbon, age and
    NIC speed columns for the energy and cost factors. Vectorised: 50k hosts in well
    under a second.
    """
    settings = settings or PlacementSettings()
    rng = np.random.default_rng(seed)
    shape_index = rng.choice(len(_SHAPES), size=n, p=[s.share for s in _SHAPES])

    def per_shape(attribute: str) -> FloatArray:
        return np.array([float(getattr(s, attribute)) for s in _SHAPES])[shape_index]

    vcpus_total = per_shape("vcpus")
    memory_total = per_shape("memory_mib")
    gpus_total = per_shape("gpus")
    disk_total = rng.choice([1788.0, 3576.0, 7153.0], size=n, p=[0.3, 0.5, 0.2])
    cpu_load = rng.beta(2.0, 3.0, size=n)
    mem_load = np.clip(cpu_load * rng.uniform(0.7, 1.3, size=n), 0.0, 0.95)
    vcpus_used = np.round(cpu_load * vcpus_total * 2.0)
    memory_used = np.round(mem_load * memory_total / 1024.0) * 1024.0
    vm_count = np.maximum(np.round(vcpus_used / rng.choice([2.0, 4.0, 8.0], size=n)), 0.0)
    gpus_used = np.minimum(
        rng.binomial(gpus_total.astype(np.int64), 0.5).astype(np.float64), gpus_total
    )

    status = rng.random(n)
    liveness = np.select(
        [status < 0.005, status < 0.015], [float(Liveness.UNKNOWN), float(Liveness.STALE)], 0.0
    )
    seconds_since_seen = np.select(
        [liveness == Liveness.UNKNOWN, liveness == Liveness.STALE],
        [rng.uniform(700.0, 7200.0, n), rng.uniform(70.0, 500.0, n)],
        rng.uniform(0.0, 15.0, n),
    )
    degraded = rng.random(n) < 0.02
    anomalous = rng.random(n) < 0.02
    failure = np.where(degraded, rng.uniform(0.3, 0.95, n), rng.beta(0.6, 60.0, n))
    anomaly = np.where(anomalous, rng.uniform(0.6, 0.99, n), rng.beta(1.0, 25.0, n))
    failure[liveness == Liveness.UNKNOWN] = np.nan
    anomaly[liveness == Liveness.UNKNOWN] = np.nan

    zone_index = (np.arange(n) // _HOSTS_PER_RACK) % len(_ZONES)
    racks = np.array(
        [
            f"{_ZONES[z]}-r{r:03d}"
            for z, r in zip(zone_index, np.arange(n) // _HOSTS_PER_RACK, strict=True)
        ]
    )
    gpu_model = np.where(
        gpus_total > 0, np.array(_GPU_MODELS)[rng.integers(0, len(_GPU_MODELS), n)], ""
    )
    numbers: dict[str, FloatArray] = {
        "vcpus_total": vcpus_total,
        "memory_mib_total": memory_total,
        "disk_gib_total": disk_total,
        "gpus_total": gpus_total,
        "vcpus_used": vcpus_used,
        "memory_mib_used": memory_used,
        "disk_gib_used": np.round(disk_total * rng.beta(2.0, 4.0, n)),
        "gpus_used": gpus_used,
        "vm_count": vm_count,
        "max_vms": np.where(rng.random(n) < 0.1, 60.0, np.nan),
        "liveness": liveness,
        "seconds_since_seen": seconds_since_seen,
        "maintenance": (rng.random(n) < 0.01).astype(np.float64),
        "cordoned": (rng.random(n) < 0.005).astype(np.float64),
        "failure_probability": failure,
        "anomaly_score": anomaly,
        "power_idle_watts": per_shape("power_idle_watts") * rng.uniform(0.9, 1.1, n),
        "power_max_watts": per_shape("power_max_watts") * rng.uniform(0.9, 1.1, n),
        "cost_per_hour": per_shape("cost_per_hour") * rng.uniform(0.95, 1.05, n),
        "carbon_g_per_kwh": np.array(_ZONE_CARBON_G_PER_KWH)[zone_index],
        "hardware_age_years": rng.uniform(0.2, 7.0, n),
        "nic_speed_mbps": np.where(
            gpus_total > 0, 100_000.0, rng.choice([10_000.0, 25_000.0], size=n, p=[0.4, 0.6])
        ),
    }
    numa_vcpus, numa_memory = _synthetic_numa(shape_index, numbers, settings, rng)
    return assemble(
        [f"host-{i:05d}" for i in range(n)],
        numbers=numbers,
        texts={
            "zone": np.array(_ZONES)[zone_index],
            "arch": np.array([s.arch for s in _SHAPES])[shape_index],
            "cpu_model": np.array([s.cpu_model for s in _SHAPES])[shape_index],
            "gpu_model": gpu_model,
            "rack": racks,
        },
        flags=_synthetic_flags(shape_index, disk_total, rng),
        labels={
            "tier": np.array(["gold", "silver", "bronze"])[
                rng.choice(3, size=n, p=[0.2, 0.5, 0.3])
            ],
            "rack": racks,
        },
        numa_free_vcpus=numa_vcpus,
        numa_free_memory_mib=numa_memory,
        features=_synthetic_features(
            numbers=numbers,
            cpu_load=cpu_load,
            mem_load=mem_load,
            degraded=degraded,
            anomalous=anomalous,
            rng=rng,
        ),
        taken_at_seconds=taken_at_seconds,
    )


def _synthetic_numa(
    shape_index: npt.NDArray[np.intp],
    numbers: Mapping[str, FloatArray],
    settings: PlacementSettings,
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray]:
    """Equal nodes per host; the used capacity spread unevenly (Dirichlet) over them."""
    nodes = np.array([s.numa_nodes for s in _SHAPES])[shape_index]
    width = int(nodes.max(initial=0))
    n = len(shape_index)
    present = np.arange(width)[None, :] < nodes[:, None]
    weights = np.where(present, rng.gamma(4.0, 1.0, (n, width)), 0.0)
    weights /= weights.sum(axis=1, keepdims=True)
    result = []
    for total, used, ratio in (
        ("vcpus_total", "vcpus_used", settings.cpu_allocation_ratio),
        ("memory_mib_total", "memory_mib_used", settings.ram_allocation_ratio),
    ):
        per_node = (numbers[total] * ratio / nodes)[:, None] - numbers[used][:, None] * weights
        result.append(np.where(present, per_node, np.nan))
    return result[0], result[1]


def _synthetic_flags(
    shape_index: npt.NDArray[np.intp], disk_total: FloatArray, rng: np.random.Generator
) -> dict[str, FlagMatrix]:
    n = len(shape_index)
    vocabulary = tuple(sorted({flag for flags in _CPU_FLAGS for flag in flags}))
    by_generation = np.array([[flag in flags for flag in vocabulary] for flags in _CPU_FLAGS])
    generations = np.array([s.generation for s in _SHAPES])[shape_index]
    aggregates = ("arm", "general", "gpu", "highmem", "nvme")
    aggregate_of_shape = np.array([aggregates.index(s.aggregate) for s in _SHAPES])[shape_index]
    aggregate_matrix = np.zeros((n, len(aggregates)), dtype=np.bool_)
    aggregate_matrix[np.arange(n), aggregate_of_shape] = True
    aggregate_matrix[:, aggregates.index("nvme")] = disk_total > 2000
    compliance = ("hipaa", "pci-dss", "soc2")
    compliance_matrix = rng.random((n, len(compliance))) < np.array([0.1, 0.2, 0.6])
    return {
        "cpu_flags": FlagMatrix(vocabulary, by_generation[generations]),
        "aggregates": FlagMatrix(aggregates, aggregate_matrix),
        "compliance": FlagMatrix(compliance, compliance_matrix),
    }


def _synthetic_features(
    *,
    numbers: Mapping[str, FloatArray],
    cpu_load: FloatArray,
    mem_load: FloatArray,
    degraded: BoolArray,
    anomalous: BoolArray,
    rng: np.random.Generator,
) -> npt.NDArray[np.float32]:
    """Every NODE feature, consistent with the host's load, health and hardware."""
    n = len(cpu_load)
    has_gpu = numbers["gpus_total"] > 0
    # A degraded host fails by disk or by memory, and shows it in its telemetry.
    disk_trouble = degraded & (rng.random(n) < 0.6)
    memory_trouble = degraded & ~disk_trouble
    hot = anomalous | (rng.random(n) < 0.03)
    util = np.clip(cpu_load * 100.0 * rng.uniform(0.6, 1.1, n), 0.0, 100.0)
    temp = 45.0 + util * 0.3 + rng.normal(0.0, 3.0, n) + np.where(hot, 18.0, 0.0)
    reallocated = np.where(disk_trouble, rng.integers(50, 4000, n), rng.poisson(0.05, n)).astype(
        np.float64
    )
    pending_increase = np.where(disk_trouble, rng.integers(1, 40, n), 0).astype(np.float64)
    ecc_rate = np.where(memory_trouble, rng.uniform(20.0, 400.0, n), rng.exponential(0.05, n))
    gpu = {
        "gpu_ecc_uncorrected_errors_increase_24h": rng.poisson(0.01, n).astype(np.float64),
        "gpu_xid_events_increase_1h": rng.poisson(0.02, n).astype(np.float64),
        "gpu_retired_pages_last_1h": rng.poisson(0.2, n).astype(np.float64),
        "gpu_temp_max_celsius_last_15m": 50.0 + util * 0.3 + rng.normal(0.0, 4.0, n),
    }
    values: dict[str, FloatArray] = {
        "cpu_util_percent_mean_15m": util,
        "cpu_util_percent_std_15m": util * rng.uniform(0.05, 0.3, n),
        "cpu_iowait_percent_mean_15m": rng.gamma(1.5, 0.8, n) + np.where(disk_trouble, 8.0, 0.0),
        "cpu_steal_percent_mean_15m": np.clip(
            rng.gamma(1.2, 0.4, n) * (1.0 + cpu_load * 3.0), 0.0, 30.0
        ),
        "load_per_cpu_mean_15m": cpu_load * rng.uniform(0.6, 1.4, n),
        "mem_used_percent_p95_15m": np.clip(mem_load * 100.0 + rng.normal(3.0, 2.0, n), 0.0, 100.0),
        "swap_out_bytes_per_second_mean_15m": np.where(
            mem_load > 0.85, rng.exponential(2e6, n), 0.0
        ),
        "disk_await_ms_p99_15m": rng.gamma(2.0, 2.5, n)
        + np.where(disk_trouble, rng.uniform(40.0, 400.0, n), 0.0),
        "net_errors_per_second_mean_15m": rng.exponential(0.002, n),
        "net_drops_per_second_mean_15m": rng.exponential(0.05, n),
        "temp_max_celsius_last_15m": temp,
        "temp_max_celsius_trend_30m": rng.normal(0.0, 0.05, n) + np.where(hot, 0.4, 0.0),
        "temp_margin_celsius_min_15m": np.clip(95.0 - temp, 0.0, None),
        "fan_min_rpm_last_15m": 2500.0 + util * 40.0 + rng.normal(0.0, 150.0, n),
        "fan_min_rpm_trend_30m": rng.normal(0.0, 5.0, n),
        "smart_reallocated_sectors_last_1h": reallocated,
        "smart_reallocated_sectors_increase_1h": np.where(
            disk_trouble, rng.integers(1, 30, n), 0
        ).astype(np.float64),
        "smart_reallocated_sectors_increase_24h": np.where(
            disk_trouble, rng.integers(30, 600, n), 0
        ).astype(np.float64),
        "smart_pending_sectors_last_1h": pending_increase * 3.0,
        "smart_pending_sectors_increase_1h": pending_increase,
        "smart_pending_sectors_increase_24h": pending_increase * 6.0,
        "smart_uncorrectable_errors_increase_1h": np.where(
            disk_trouble, rng.poisson(2.0, n), 0
        ).astype(np.float64),
        "smart_uncorrectable_errors_increase_24h": np.where(
            disk_trouble, rng.poisson(15.0, n), 0
        ).astype(np.float64),
        "smart_failing_disks_last_1h": (disk_trouble & (rng.random(n) < 0.5)).astype(np.float64),
        "smart_unavailable_disks_max_1h": (rng.random(n) < 0.002).astype(np.float64),
        "nvme_spare_min_percent_last_1h": np.clip(
            100.0 - rng.gamma(1.5, 4.0, n) - np.where(disk_trouble, 60.0, 0.0), 0.0, 100.0
        ),
        "nvme_used_max_percent_last_1h": np.clip(
            numbers["hardware_age_years"] * rng.uniform(3.0, 12.0, n), 0.0, 255.0
        ),
        "ecc_corrected_errors_rate_per_hour_1h": ecc_rate * rng.uniform(0.5, 1.5, n),
        "ecc_corrected_errors_rate_per_hour_24h": ecc_rate,
        "ecc_uncorrected_errors_increase_24h": np.where(
            memory_trouble & (rng.random(n) < 0.4), 1.0, 0.0
        ),
        "vm_running_count_last_15m": numbers["vm_count"],
        **{name: np.where(has_gpu, column, np.nan) for name, column in gpu.items()},
    }
    missing = set(NODE.feature_names) - set(values)
    if missing:
        raise AssertionError(f"synthetic fleet lacks NODE features: {sorted(missing)}")
    matrix = np.column_stack([values[name] for name in NODE.feature_names]).astype(np.float32)
    # Hosts that never reported keep no telemetry; a few sensors are missing anywhere.
    matrix[numbers["liveness"] == Liveness.UNKNOWN] = np.nan
    matrix[rng.random(matrix.shape) < 0.005] = np.nan
    return matrix
