"""The feature schema: the single source of names, order, units and windows.

The agent builds feature vectors from it, the training code trains on columns in its
order, the coordinator decodes frames with it. A frame carries ``schema.version`` and
``schema.hash``; a model card carries the hash it was trained on. Any mismatch is a
:class:`SchemaMismatch` error, never a silent misalignment of columns.

Two layers:

* **Signals** are scalar values read from one collection cycle (``cpu_util_percent``,
  ``smart_reallocated_sectors`` ...). ``kind`` says how they behave over time: a
  ``gauge`` is a level; a ``counter`` only grows while its source lives, so windows keep
  its *cumulative increase* (a drop is a reset: the increase since is the new value).
* **Features** aggregate one signal over a trailing window: ``mean``, ``std``, ``p95``,
  ``p99``, ``min``, ``max``, ``last``, ``trend`` (least-squares slope per minute),
  ``increase`` (counter growth over the window, reset-aware) and ``rate_per_hour``
  (increase scaled to one hour). A feature with too little data in its window is
  ``NaN`` on the wire and ``fill`` (a neutral value) in front of a model.

Schemas: ``NODE`` (one vector per node and cycle), ``VM`` (one per VM), ``DISK`` (one
per disk; the disk failure model, trainable on Backblaze Drive Stats columns), ``SERIES``
(one per point of any univariate series; its signals are scale-free deviations that
:mod:`novacron.models.series` derives from the raw values, so one model fits every series).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Literal

SignalKind = Literal["gauge", "counter"]
Aggregation = Literal[
    "mean", "std", "p95", "p99", "min", "max", "last", "trend", "increase", "rate_per_hour"
]
AGGREGATIONS: tuple[Aggregation, ...] = (
    "mean",
    "std",
    "p95",
    "p99",
    "min",
    "max",
    "last",
    "trend",
    "increase",
    "rate_per_hour",
)
MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0


class SchemaMismatch(ValueError):
    """Data or a model built for another schema version/hash than the one in use."""


@dataclass(frozen=True)
class Signal:
    name: str
    unit: str
    kind: SignalKind
    source: str  # collector and field(s) it is read from
    description: str


@dataclass(frozen=True)
class Feature:
    name: str
    signal: str
    aggregation: Aggregation
    window_seconds: float
    unit: str
    fill: float  # neutral value a model sees when the feature is NaN (no data)
    description: str


@dataclass(frozen=True)
class Schema:
    name: str
    version: int
    signals: tuple[Signal, ...]
    features: tuple[Feature, ...]

    def __post_init__(self) -> None:
        signal_names = [s.name for s in self.signals]
        if len(set(signal_names)) != len(signal_names):
            raise ValueError(f"{self.name}: duplicate signal names")
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: duplicate feature names")
        for f in self.features:
            if f.signal not in signal_names:
                raise ValueError(f"{self.name}: feature {f.name} uses unknown signal {f.signal}")
            if f.aggregation not in AGGREGATIONS:
                raise ValueError(f"{self.name}: feature {f.name}: bad aggregation")

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def signal_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.signals)

    @property
    def version_tag(self) -> str:
        return f"{self.name}-v{self.version}"

    @property
    def longest_window_seconds(self) -> float:
        return max(f.window_seconds for f in self.features)

    @functools.cached_property
    def hash(self) -> str:
        """sha256 of the canonical JSON: changes whenever any name/order/window changes."""
        canonical = json.dumps(self.to_json_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def fills(self) -> tuple[float, ...]:
        return tuple(f.fill for f in self.features)

    def check(self, version_tag: str, schema_hash: str) -> None:
        """Raise SchemaMismatch unless data/model were built for exactly this schema."""
        if version_tag != self.version_tag or schema_hash != self.hash:
            raise SchemaMismatch(
                f"feature schema mismatch: expected {self.version_tag} ({self.hash[:12]}), "
                f"got {version_tag} ({schema_hash[:12]})"
            )

    def to_json_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "signals": [asdict(s) for s in self.signals],
            "features": [asdict(f) for f in self.features],
        }


def _features(
    signal: str, unit: str, fill: float, *specs: tuple[Aggregation, float, str]
) -> list[Feature]:
    """Several aggregations of one signal, named ``<signal>_<agg>_<window>``."""
    out = []
    for aggregation, window, description in specs:
        suffix = _window_suffix(window)
        out.append(
            Feature(
                f"{signal}_{aggregation}_{suffix}",
                signal,
                aggregation,
                window,
                _agg_unit(aggregation, unit),
                _neutral(aggregation, fill),
                description,
            )
        )
    return out


def _neutral(aggregation: Aggregation, level_fill: float) -> float:
    """The no-data value of one aggregation: a level's neutral value for levels, but
    "no change" for changes. A trend or an increase with too few samples (an agent that
    just started) must read as steady, never as 40 degrees per minute."""
    if aggregation in ("trend", "increase", "rate_per_hour", "std"):
        return 0.0
    return level_fill


def _window_suffix(seconds: float) -> str:
    if seconds % DAY == 0:
        return f"{int(seconds // DAY * 24)}h"
    if seconds % HOUR == 0:
        return f"{int(seconds // HOUR)}h"
    return f"{int(seconds // MINUTE)}m"


def _agg_unit(aggregation: Aggregation, unit: str) -> str:
    if aggregation == "trend":
        return f"{unit}/min"
    if aggregation == "rate_per_hour":
        return f"{unit}/h"
    return unit


# --- node -------------------------------------------------------------------------

_NODE_SIGNALS = (
    Signal(
        "cpu_util_percent",
        "percent",
        "gauge",
        "host.cpu_total",
        "busy share of all CPUs (100 - idle - iowait - steal)",
    ),
    Signal("cpu_iowait_percent", "percent", "gauge", "host.cpu_total", "CPU time waiting on I/O"),
    Signal(
        "cpu_steal_percent",
        "percent",
        "gauge",
        "host.cpu_total",
        "CPU time stolen by the hypervisor underneath (nested or cloud hosts)",
    ),
    Signal(
        "load_per_cpu",
        "ratio",
        "gauge",
        "host.load + cpuinfo",
        "1-minute load average divided by logical CPUs",
    ),
    Signal(
        "mem_used_percent",
        "percent",
        "gauge",
        "host.memory",
        "used (total - available) share of memory",
    ),
    Signal("swap_out_bytes_per_second", "bytes/s", "gauge", "host.swap", "swap-out rate"),
    Signal(
        "disk_await_ms",
        "ms",
        "gauge",
        "host.disks",
        "worst average I/O latency over the node's disks this cycle",
    ),
    Signal(
        "net_errors_per_second",
        "1/s",
        "gauge",
        "host.interfaces",
        "receive + transmit errors per second over all interfaces",
    ),
    Signal(
        "net_drops_per_second",
        "1/s",
        "gauge",
        "host.interfaces",
        "receive + transmit drops per second over all interfaces",
    ),
    Signal("temp_max_celsius", "celsius", "gauge", "hwmon", "hottest sensor or thermal zone"),
    Signal(
        "temp_margin_celsius",
        "celsius",
        "gauge",
        "hwmon",
        "smallest headroom to any critical limit (crit - temperature)",
    ),
    Signal(
        "fan_min_rpm",
        "rpm",
        "gauge",
        "hwmon.fans",
        "slowest fan (a failing fan slows down or stops)",
    ),
    Signal(
        "smart_reallocated_sectors",
        "sectors",
        "counter",
        "smart (ATA 5, SCSI grown defects)",
        "reallocated sectors summed over disks",
    ),
    Signal(
        "smart_pending_sectors",
        "sectors",
        "counter",
        "smart (ATA 197)",
        "sectors pending reallocation summed over disks",
    ),
    Signal(
        "smart_uncorrectable_errors",
        "errors",
        "counter",
        "smart (ATA 187+198, NVMe media errors, SCSI uncorrected)",
        "uncorrectable read/media errors summed over disks",
    ),
    Signal(
        "smart_failing_disks",
        "disks",
        "gauge",
        "smart.smart_passed / exit status",
        "disks whose SMART overall status is failing or with a prefail attribute at threshold",
    ),
    Signal(
        "smart_unavailable_disks",
        "disks",
        "gauge",
        "smart.unavailable",
        "disks seen before that stopped answering",
    ),
    Signal(
        "nvme_spare_min_percent",
        "percent",
        "gauge",
        "smart.nvme available_spare",
        "lowest available spare over NVMe disks",
    ),
    Signal(
        "nvme_used_max_percent",
        "percent",
        "gauge",
        "smart.nvme percentage_used",
        "highest endurance used over NVMe disks",
    ),
    Signal(
        "ecc_corrected_errors",
        "errors",
        "counter",
        "edac ce counts",
        "DRAM correctable errors, all controllers",
    ),
    Signal(
        "ecc_uncorrected_errors",
        "errors",
        "counter",
        "edac ue counts",
        "DRAM uncorrectable errors, all controllers",
    ),
    Signal(
        "gpu_ecc_uncorrected_errors",
        "errors",
        "counter",
        "nvml ECC volatile uncorrected",
        "GPU uncorrectable ECC errors, all GPUs",
    ),
    Signal(
        "gpu_xid_events",
        "events",
        "counter",
        "nvml XID critical events",
        "GPU XID errors seen, all GPUs (cumulative since agent start)",
    ),
    Signal(
        "gpu_retired_pages",
        "pages",
        "gauge",
        "nvml retired pages / remapped rows",
        "retired pages or remapped rows, all GPUs",
    ),
    Signal("gpu_temp_max_celsius", "celsius", "gauge", "nvml temperature", "hottest GPU"),
    Signal("vm_running_count", "vms", "gauge", "libvirt", "running domains"),
)

_NODE_FEATURES = (
    _features(
        "cpu_util_percent",
        "percent",
        0.0,
        ("mean", 15 * MINUTE, "average CPU busy"),
        ("std", 15 * MINUTE, "CPU busy variability"),
    )
    + _features("cpu_iowait_percent", "percent", 0.0, ("mean", 15 * MINUTE, "I/O wait"))
    + _features("cpu_steal_percent", "percent", 0.0, ("mean", 15 * MINUTE, "steal time"))
    + _features("load_per_cpu", "ratio", 0.0, ("mean", 15 * MINUTE, "run-queue pressure"))
    + _features("mem_used_percent", "percent", 0.0, ("p95", 15 * MINUTE, "memory pressure peak"))
    + _features("swap_out_bytes_per_second", "bytes/s", 0.0, ("mean", 15 * MINUTE, "swapping"))
    + _features("disk_await_ms", "ms", 0.0, ("p99", 15 * MINUTE, "I/O latency tail"))
    + _features("net_errors_per_second", "1/s", 0.0, ("mean", 15 * MINUTE, "NIC error rate"))
    + _features("net_drops_per_second", "1/s", 0.0, ("mean", 15 * MINUTE, "NIC drop rate"))
    + _features(
        "temp_max_celsius",
        "celsius",
        40.0,
        ("last", 15 * MINUTE, "current hottest temperature"),
        ("trend", 30 * MINUTE, "temperature rise (thermal runaway)"),
    )
    + _features(
        "temp_margin_celsius",
        "celsius",
        40.0,
        ("min", 15 * MINUTE, "closest approach to a critical limit"),
    )
    + _features(
        "fan_min_rpm",
        "rpm",
        3000.0,
        ("last", 15 * MINUTE, "slowest fan now"),
        ("trend", 30 * MINUTE, "fan slowing down"),
    )
    + _features(
        "smart_reallocated_sectors",
        "sectors",
        0.0,
        ("last", HOUR, "reallocated sectors (level)"),
        ("increase", HOUR, "new reallocations, last hour"),
        ("increase", DAY, "new reallocations, last day"),
    )
    + _features(
        "smart_pending_sectors",
        "sectors",
        0.0,
        ("last", HOUR, "pending sectors (level)"),
        ("increase", HOUR, "new pending sectors, last hour"),
        ("increase", DAY, "new pending sectors, last day"),
    )
    + _features(
        "smart_uncorrectable_errors",
        "errors",
        0.0,
        ("increase", HOUR, "new uncorrectable errors, last hour"),
        ("increase", DAY, "new uncorrectable errors, last day"),
    )
    + _features("smart_failing_disks", "disks", 0.0, ("last", HOUR, "disks SMART calls failing"))
    + _features(
        "smart_unavailable_disks", "disks", 0.0, ("max", HOUR, "disks that stopped answering")
    )
    + _features("nvme_spare_min_percent", "percent", 100.0, ("last", HOUR, "NVMe spare left"))
    + _features("nvme_used_max_percent", "percent", 0.0, ("last", HOUR, "NVMe wear"))
    + _features(
        "ecc_corrected_errors",
        "errors",
        0.0,
        ("rate_per_hour", HOUR, "correctable ECC rate, last hour"),
        ("rate_per_hour", DAY, "correctable ECC rate, last day"),
    )
    + _features(
        "ecc_uncorrected_errors",
        "errors",
        0.0,
        ("increase", DAY, "uncorrectable ECC errors, last day"),
    )
    + _features(
        "gpu_ecc_uncorrected_errors",
        "errors",
        0.0,
        ("increase", DAY, "GPU uncorrectable ECC, last day"),
    )
    + _features("gpu_xid_events", "events", 0.0, ("increase", HOUR, "GPU XID errors, last hour"))
    + _features("gpu_retired_pages", "pages", 0.0, ("last", HOUR, "GPU retired pages"))
    + _features("gpu_temp_max_celsius", "celsius", 40.0, ("last", 15 * MINUTE, "hottest GPU"))
    + _features("vm_running_count", "vms", 0.0, ("last", 15 * MINUTE, "running VMs"))
)

NODE = Schema("node", 1, _NODE_SIGNALS, tuple(_NODE_FEATURES))

# --- VM ---------------------------------------------------------------------------

_VM_SIGNALS = (
    Signal(
        "vm_cpu_util_percent",
        "percent",
        "gauge",
        "libvirt cpu.time / vcpus",
        "vCPU busy share (100 = every vCPU fully busy)",
    ),
    Signal(
        "vm_mem_used_percent",
        "percent",
        "gauge",
        "libvirt balloon.rss / maximum",
        "resident memory share of the VM's maximum",
    ),
    Signal("vm_disk_read_bytes_per_second", "bytes/s", "gauge", "libvirt block rd.bytes", ""),
    Signal("vm_disk_write_bytes_per_second", "bytes/s", "gauge", "libvirt block wr.bytes", ""),
    Signal("vm_disk_ops_per_second", "1/s", "gauge", "libvirt block rd+wr reqs", ""),
    Signal("vm_net_rx_bytes_per_second", "bytes/s", "gauge", "libvirt net rx.bytes", ""),
    Signal("vm_net_tx_bytes_per_second", "bytes/s", "gauge", "libvirt net tx.bytes", ""),
    Signal(
        "vm_net_packets_per_second",
        "1/s",
        "gauge",
        "libvirt net rx+tx pkts",
        "packet rate (floods and scans show here before bytes do)",
    ),
    Signal("vm_net_errors_drops_per_second", "1/s", "gauge", "libvirt net errs+drop", ""),
)

_VM_FEATURES = (
    _features(
        "vm_cpu_util_percent",
        "percent",
        0.0,
        ("mean", 15 * MINUTE, "vCPU busy"),
        ("p95", 15 * MINUTE, "vCPU busy peak"),
    )
    + _features("vm_mem_used_percent", "percent", 0.0, ("p95", 15 * MINUTE, "memory peak"))
    + _features(
        "vm_disk_read_bytes_per_second", "bytes/s", 0.0, ("mean", 15 * MINUTE, "disk reads")
    )
    + _features(
        "vm_disk_write_bytes_per_second", "bytes/s", 0.0, ("mean", 15 * MINUTE, "disk writes")
    )
    + _features("vm_disk_ops_per_second", "1/s", 0.0, ("p95", 15 * MINUTE, "disk IOPS peak"))
    + _features("vm_net_rx_bytes_per_second", "bytes/s", 0.0, ("mean", 15 * MINUTE, "net in"))
    + _features("vm_net_tx_bytes_per_second", "bytes/s", 0.0, ("mean", 15 * MINUTE, "net out"))
    + _features(
        "vm_net_packets_per_second",
        "1/s",
        0.0,
        ("mean", 15 * MINUTE, "packet rate"),
        ("p95", 15 * MINUTE, "packet rate peak"),
    )
    + _features(
        "vm_net_errors_drops_per_second", "1/s", 0.0, ("mean", 15 * MINUTE, "net errors and drops")
    )
)

VM = Schema("vm", 1, _VM_SIGNALS, tuple(_VM_FEATURES))

# --- disk -------------------------------------------------------------------------
# Columns Backblaze Drive Stats publishes daily (smart_<id>_raw), so the disk model can
# be trained on that public fleet data and scored on the agent's own SMART readings.
# NVMe and SCSI disks map onto the same columns (documented in docs/features.md):
# reallocated <- SCSI grown defects; reported_uncorrect <- NVMe media errors or SCSI
# uncorrected read+write errors.

_DISK_SIGNALS = (
    Signal("reallocated_sectors", "sectors", "counter", "ATA 5 raw / SCSI grown defects", ""),
    Signal("reported_uncorrect", "errors", "counter", "ATA 187 raw / NVMe media errors", ""),
    Signal("command_timeout", "events", "counter", "ATA 188 raw", ""),
    Signal("current_pending_sectors", "sectors", "gauge", "ATA 197 raw", ""),
    Signal("offline_uncorrectable", "sectors", "counter", "ATA 198 raw", ""),
    Signal("udma_crc_errors", "errors", "counter", "ATA 199 raw", ""),
    Signal("power_on_hours", "hours", "gauge", "ATA 9 raw / NVMe power_on_hours", ""),
    Signal("temperature_celsius", "celsius", "gauge", "ATA 194 raw / NVMe temperature", ""),
)

_DISK_FEATURES = (
    _features(
        "reallocated_sectors",
        "sectors",
        0.0,
        ("last", DAY, "reallocated sectors"),
        ("increase", 7 * DAY, "new in 7 days"),
    )
    + _features(
        "reported_uncorrect",
        "errors",
        0.0,
        ("last", DAY, "reported uncorrectable"),
        ("increase", 7 * DAY, "new in 7 days"),
    )
    + _features("command_timeout", "events", 0.0, ("last", DAY, "command timeouts"))
    + _features(
        "current_pending_sectors",
        "sectors",
        0.0,
        ("last", DAY, "pending sectors"),
        ("max", 7 * DAY, "most pending in 7 days"),
    )
    + _features(
        "offline_uncorrectable",
        "sectors",
        0.0,
        ("last", DAY, "offline uncorrectable"),
        ("increase", 7 * DAY, "new in 7 days"),
    )
    + _features("udma_crc_errors", "errors", 0.0, ("last", DAY, "interface CRC errors"))
    + _features("power_on_hours", "hours", 0.0, ("last", DAY, "age"))
    + _features("temperature_celsius", "celsius", 35.0, ("last", DAY, "drive temperature"))
)

DISK = Schema("disk", 1, _DISK_SIGNALS, tuple(_DISK_FEATURES))

# --- univariate series -------------------------------------------------------------
# A series model sees how unusual the latest values are against the series' own trailing
# day, never the raw values: CPU percent, bytes per second and request counts then share
# one model (trained and evaluated on the Numenta Anomaly Benchmark). The signals are
# computed by novacron.models.series from the raw series, one per point, causally.

_SERIES_SIGNALS = (
    Signal(
        "value_z",
        "ratio",
        "gauge",
        "models.series (trailing 24 h, current point excluded)",
        "value minus the trailing mean, in trailing standard deviations",
    ),
    Signal(
        "value_robust_z",
        "ratio",
        "gauge",
        "models.series (trailing 24 h, current point excluded)",
        "value minus the trailing median, in 1.4826 x trailing MAD",
    ),
    Signal(
        "exceedance",
        "ratio",
        "gauge",
        "models.series (trailing 24 h, current point excluded)",
        "distance outside the trailing min..max range, in units of that range (0 inside)",
    ),
    Signal(
        "diff_z",
        "ratio",
        "gauge",
        "models.series (trailing 24 h, current point excluded)",
        "change since the previous value, in trailing standard deviations of changes",
    ),
)

_SERIES_FEATURES = (
    _features(
        "value_z",
        "ratio",
        0.0,
        ("last", 15 * MINUTE, "current deviation"),
        ("mean", HOUR, "sustained deviation (level shift)"),
        ("max", HOUR, "highest deviation, last hour"),
        ("min", HOUR, "lowest deviation, last hour"),
        ("std", HOUR, "local variability against the day's (flat or noisy stretch)"),
    )
    + _features(
        "value_robust_z",
        "ratio",
        0.0,
        ("last", 15 * MINUTE, "current deviation, robust"),
        ("mean", HOUR, "sustained deviation, robust"),
    )
    + _features(
        "exceedance",
        "ratio",
        0.0,
        ("last", 15 * MINUTE, "outside the day's range now"),
        ("max", HOUR, "furthest outside the day's range, last hour"),
    )
    + _features(
        "diff_z",
        "ratio",
        0.0,
        ("last", 15 * MINUTE, "current jump"),
        ("max", HOUR, "largest rise, last hour"),
        ("min", HOUR, "largest drop, last hour"),
        ("std", HOUR, "local jumpiness against the day's"),
    )
)

SERIES = Schema("series", 1, _SERIES_SIGNALS, tuple(_SERIES_FEATURES))

SCHEMAS = {s.name: s for s in (NODE, VM, DISK, SERIES)}


def schema_for(version_tag: str) -> Schema:
    """The schema named by a frame or card (``node-v1``); unknown tags are an error."""
    for schema in SCHEMAS.values():
        if schema.version_tag == version_tag:
            return schema
    raise SchemaMismatch(f"unknown feature schema {version_tag!r}")
