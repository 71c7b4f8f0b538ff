"""A simulated hypervisor fleet: telemetry with failure precursors, confounders and truth.

Public data has no labelled *node* failures with the signals our agent reads, so the
node failure models are trained here, on a fleet whose physics is written down (every
assumption and its source are in ``docs/simulator.md``). The simulator is numpy only:
the coordinator's simulated fleet uses it too, and must not pull scikit-learn.

What a node gets, sample by sample (``interval_seconds``), in schema signal names:

* **workload**: VMs with a profile (web, db, batch, idle), a daily cycle in the tenants'
  time zone, churn; the host's CPU, I/O wait, disk latency, memory and network follow
  from its VMs. Some nodes are simply busy all day (and healthy).
* **failure modes** with precursors, then death at ``failure_time`` (every signal NaN
  afterwards): ``disk`` (reallocated then pending sectors growing, uncorrectable errors,
  SMART failing, the disk stops answering), ``dram`` (correctable-ECC bursts growing
  before an uncorrectable error), ``fan`` (a fan slowing down, the temperature climbing),
  ``thermal`` (runaway with fans at full speed), ``gpu`` (XID errors, retired pages).
  Some failures are *sudden*: little or no warning, as in the field studies.
* **confounders** that look like precursors but end well: noisy neighbours and other
  VM anomalies, hot-aisle episodes, a benign one-off reallocated sector, a DIMM with a
  steady trickle of correctable errors, application XIDs, a disk that dies in a redundant
  array while the node carries on, sensor glitches, collector outages (NaN stretches),
  dropped cycles, and counter resets on driver reloads.

Everything is drawn from ``numpy.random.default_rng([seed, ...])``: the same config gives
bit-identical traces, and ``simulate_node(config, i)`` builds node ``i`` alone (the fleet
plan is a few cheap draws), so nodes can be simulated in parallel. Ground truth comes
back as :class:`Event` records.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from novacron.models.schema import DAY, DISK, HOUR, MINUTE, NODE, VM

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Rng = np.random.Generator
Signals = dict[str, FloatArray]
SampleValues = dict[str, float | None]

FAILURE_MODES = ("disk", "dram", "fan", "thermal", "gpu")
# Relative frequency of each mode among failing nodes (gpu only on GPU nodes).
# Disks and memory dominate hardware replacements in the field studies (docs/simulator.md).
_MODE_WEIGHTS = {"disk": 0.4, "dram": 0.25, "fan": 0.15, "thermal": 0.1, "gpu": 0.35}

# Which collector delivers each node signal: a collector outage blanks exactly these.
COLLECTOR_SIGNALS: dict[str, tuple[str, ...]] = {
    "host": (
        "cpu_util_percent",
        "cpu_iowait_percent",
        "cpu_steal_percent",
        "load_per_cpu",
        "mem_used_percent",
        "swap_out_bytes_per_second",
        "disk_await_ms",
        "net_errors_per_second",
        "net_drops_per_second",
    ),
    "hwmon": ("temp_max_celsius", "temp_margin_celsius", "fan_min_rpm"),
    "smart": (
        "smart_reallocated_sectors",
        "smart_pending_sectors",
        "smart_uncorrectable_errors",
        "smart_failing_disks",
        "smart_unavailable_disks",
        "nvme_spare_min_percent",
        "nvme_used_max_percent",
    ),
    "edac": ("ecc_corrected_errors", "ecc_uncorrected_errors"),
    "nvml": (
        "gpu_ecc_uncorrected_errors",
        "gpu_xid_events",
        "gpu_retired_pages",
        "gpu_temp_max_celsius",
    ),
    "libvirt": ("vm_running_count",),
}

# Event kinds that reset counters (a driver reload zeroes what the driver counts).
RESET_EVENTS: dict[str, tuple[str, ...]] = {
    "reset:edac_reload": ("ecc_corrected_errors", "ecc_uncorrected_errors"),
    "reset:gpu_driver_reload": ("gpu_ecc_uncorrected_errors", "gpu_xid_events"),
}
# A disk that stops answering leaves the node's SMART sums: they drop at that moment.
DISK_UNAVAILABLE_EVENT = "disk_unavailable"
VM_ANOMALIES = ("noisy_neighbour", "vm_network_flood", "vm_cpu_runaway", "vm_memory_leak")


# --- public types -------------------------------------------------------------------


@dataclass(frozen=True)
class SimConfig:
    """One simulated fleet. Same config, same traces (bit for bit)."""

    nodes: int = 50
    days: float = 3.0
    interval_seconds: float = 60.0
    seed: int = 0
    failure_fraction: float = 0.2  # share of nodes that fail during the run
    vms_per_node: tuple[int, int] = (2, 12)
    disks_per_node: int = 4
    gpus_per_node: int = 4  # on GPU nodes; 0 = no GPUs anywhere
    gpu_node_fraction: float = 0.15
    anomaly_rate_per_node_day: float = 0.5  # VM anomalies (noisy neighbour, flood ...)
    confounder_rate_per_node_day: float = 0.6  # hot aisle, ECC burst, benign XID ... each
    outage_rate_per_node_day: float = 0.2  # collector outages (NaN stretches)
    reset_rate_per_node_day: float = 0.1  # driver reloads zeroing EDAC / GPU counters
    nonfatal_disk_failure_fraction: float = 0.03  # nodes losing a disk but not their life
    start_unix: float = 1.7e9

    def __post_init__(self) -> None:
        checks = (
            ("nodes", self.nodes >= 1, "must be >= 1"),
            ("days", self.days > 0, "must be > 0"),
            ("interval_seconds", 1 <= self.interval_seconds <= HOUR, "must be 1..3600"),
            ("days", self.days * DAY / self.interval_seconds >= 10, "gives fewer than 10 samples"),
            ("failure_fraction", 0 <= self.failure_fraction <= 1, "must be 0..1"),
            (
                "vms_per_node",
                len(self.vms_per_node) == 2 and 0 <= self.vms_per_node[0] <= self.vms_per_node[1],
                "must be (low, high) with 0 <= low <= high",
            ),
            ("disks_per_node", self.disks_per_node >= 1, "must be >= 1"),
            ("gpus_per_node", self.gpus_per_node >= 0, "must be >= 0"),
            ("gpu_node_fraction", 0 <= self.gpu_node_fraction <= 1, "must be 0..1"),
            ("anomaly_rate_per_node_day", self.anomaly_rate_per_node_day >= 0, "must be >= 0"),
            (
                "confounder_rate_per_node_day",
                self.confounder_rate_per_node_day >= 0,
                "must be >= 0",
            ),
            ("outage_rate_per_node_day", self.outage_rate_per_node_day >= 0, "must be >= 0"),
            ("reset_rate_per_node_day", self.reset_rate_per_node_day >= 0, "must be >= 0"),
            (
                "nonfatal_disk_failure_fraction",
                0 <= self.nonfatal_disk_failure_fraction <= 1,
                "must be 0..1",
            ),
        )
        for name, ok, problem in checks:
            if not ok:
                raise ValueError(f"{name}: {problem}")

    @property
    def samples(self) -> int:
        return round(self.days * DAY / self.interval_seconds)

    @property
    def end_unix(self) -> float:
        return self.start_unix + self.samples * self.interval_seconds


@dataclass(frozen=True)
class Event:
    """Ground truth: a failure, its precursor period, an anomaly, a confounder, a gap.

    ``kind`` is ``<category>:<name>`` (``failure:disk``, ``precursor:dram``,
    ``anomaly:noisy_neighbour``, ``confounder:hot_aisle``, ``missing:smart``,
    ``reset:edac_reload``) or ``disk_unavailable``; ``subject`` is the node id, VM id or
    disk serial it concerns; ``start == end`` for an instant.
    """

    kind: str
    start: float
    end: float
    subject: str


@dataclass(frozen=True, eq=False)
class NodeTrace:
    """One node's whole run. Arrays are (T,) aligned with ``times``; NaN = no data."""

    node_id: str
    times: FloatArray
    signals: Signals  # every schema.NODE signal
    failure_time: float | None
    failure_mode: str | None
    vms: dict[str, Signals]  # vm id -> every schema.VM signal
    disks: dict[str, Signals]  # disk serial -> every schema.DISK signal
    disk_failure_times: dict[str, float]
    events: tuple[Event, ...]
    gpus: int = 0
    disk_kind: str = "ata"  # "ata" or "nvme"
    busy: bool = False


def simulate_fleet(config: SimConfig) -> list[NodeTrace]:
    return [simulate_node(config, index) for index in range(config.nodes)]


def simulate_node(config: SimConfig, index: int) -> NodeTrace:
    """Node ``index`` of the fleet ``config`` describes (independent of the other nodes)."""
    return _NodeSim(config, _plan_fleet(config)[index]).run()


def iter_samples(
    trace: NodeTrace,
) -> Iterator[tuple[float, SampleValues, dict[str, SampleValues], dict[str, SampleValues]]]:
    """Replay a trace cycle by cycle: (t, node, per-VM, per-disk) signals, NaN -> None."""
    node_rows = _rows(trace.signals, NODE.signal_names)
    vm_rows = {vm: _rows(s, VM.signal_names) for vm, s in trace.vms.items()}
    disk_rows = {disk: _rows(s, DISK.signal_names) for disk, s in trace.disks.items()}
    for k, t in enumerate(trace.times.tolist()):
        yield (
            t,
            node_rows[k],
            {vm: rows[k] for vm, rows in vm_rows.items()},
            {disk: rows[k] for disk, rows in disk_rows.items()},
        )


def iter_node_samples(trace: NodeTrace) -> Iterator[tuple[float, SampleValues]]:
    """Just the node signals of :func:`iter_samples` (cheaper for node-level training)."""
    yield from zip(trace.times.tolist(), _rows(trace.signals, NODE.signal_names), strict=True)


def _rows(signals: Mapping[str, FloatArray], names: tuple[str, ...]) -> list[SampleValues]:
    matrix = np.column_stack([signals[n] for n in names]).tolist()
    return [
        {n: (None if math.isnan(v) else v) for n, v in zip(names, row, strict=True)}
        for row in matrix
    ]


# --- fleet plan -------------------------------------------------------------------


@dataclass(frozen=True)
class _NodePlan:
    index: int
    node_id: str
    gpus: int
    failure_mode: str | None
    failure_time: float | None
    redundant_disk_failure: bool


@functools.lru_cache(maxsize=8)
def _plan_fleet(config: SimConfig) -> tuple[_NodePlan, ...]:
    """Fleet-level draws: which nodes have GPUs, which fail, how and when."""
    rng = np.random.default_rng([config.seed, 0])
    n = config.nodes
    has_gpu = (rng.random(n) < config.gpu_node_fraction) & (config.gpus_per_node > 0)
    failing = rng.choice(n, size=round(config.failure_fraction * n), replace=False)
    modes: dict[int, str] = {}
    for gpu_nodes in (False, True):  # every mode gets its share, even in a small fleet
        group = [int(i) for i in failing if bool(has_gpu[i]) == gpu_nodes]
        allowed = [m for m in FAILURE_MODES if m != "gpu" or gpu_nodes]
        modes.update(zip(group, _allocate(rng, allowed, len(group)), strict=True))
    redundant = rng.random(n) < config.nonfatal_disk_failure_fraction
    duration = config.samples * config.interval_seconds
    when = config.start_unix + rng.uniform(0.05, 1.0, n) * duration - config.interval_seconds
    return tuple(
        _NodePlan(
            index=i,
            node_id=f"sim{config.seed}-node{i:03d}",
            gpus=config.gpus_per_node if has_gpu[i] else 0,
            failure_mode=modes.get(i),
            failure_time=float(when[i]) if i in modes else None,
            redundant_disk_failure=bool(redundant[i]) and modes.get(i) != "disk",
        )
        for i in range(n)
    )


def _allocate(rng: Rng, modes: list[str], count: int) -> list[str]:
    """``count`` modes in proportion to their weights (largest remainder), shuffled."""
    if count == 0:
        return []
    weights = np.array([_MODE_WEIGHTS[m] for m in modes])
    quota = weights / weights.sum() * count
    whole = np.floor(quota).astype(int)
    for k in np.argsort(-(quota - whole), kind="stable")[: count - int(whole.sum())]:
        whole[k] += 1
    out = [m for m, c in zip(modes, whole, strict=True) for _ in range(int(c))]
    return [out[k] for k in rng.permutation(count)]


# --- random-process helpers ---------------------------------------------------------


def _smooth_noise(rng: Rng, n: int, tau_samples: float, sigma: float) -> FloatArray:
    """Zero-mean noise with standard deviation ``sigma`` and correlation time ``tau``
    (an AR(1)-like process, computed by convolution instead of a Python loop)."""
    tau = max(tau_samples, 1e-9)
    length = max(1, min(int(5 * tau) + 1, 4 * n))
    kernel = np.exp(-np.arange(length) / tau)
    kernel /= math.sqrt(float(kernel @ kernel))
    white = rng.normal(size=n + length - 1)
    return sigma * np.convolve(white, kernel, mode="valid")[:n]


def _ramp(times: FloatArray, start: float, end: float, power: float = 1.0) -> FloatArray:
    """0 before ``start``, rising as ((t-start)/(end-start))**power, 1 after ``end``."""
    u = np.clip((times - start) / max(end - start, 1e-9), 0.0, 1.0)
    return np.asarray(u**power, dtype=np.float64)


def _accelerating_counts(
    rng: Rng, times: FloatArray, onset: float, end: float, *, total: float, sharpness: float
) -> FloatArray:
    """Poisson counts per sample whose rate grows exponentially from ``onset`` to ``end``,
    expecting ``total`` events in all (degradation feeds on itself)."""
    inside = (times >= onset) & (times < end)
    if not inside.any() or total <= 0:
        return np.zeros_like(times)
    u = (times - onset) / max(end - onset, 1e-9)
    weight = np.where(inside, np.exp(sharpness * np.clip(u, 0.0, 1.0)), 0.0)
    # Probability mass before the trace starts (onset < times[0]) is simply never seen.
    full_span = max(end - onset, 1e-9)
    step = float(times[1] - times[0]) if len(times) > 1 else 1.0
    norm = (math.exp(sharpness) - 1.0) / sharpness * full_span / step if sharpness else 1.0
    return rng.poisson(total * weight / max(norm, 1e-9)).astype(np.float64)


def _episodes(
    rng: Rng, times: FloatArray, rate_per_day: float, min_s: float, max_s: float
) -> list[tuple[float, float]]:
    """Poisson-arriving episodes with log-uniform durations, as (start, end) pairs."""
    span = float(times[-1] - times[0]) + float(times[1] - times[0])
    count = int(rng.poisson(rate_per_day * span / DAY))
    starts = np.sort(rng.uniform(times[0], times[0] + span, size=count))
    durations = np.exp(rng.uniform(math.log(min_s), math.log(max_s), size=count))
    return [(float(s), float(s + d)) for s, d in zip(starts, durations, strict=True)]


def _cumulative_with_resets(
    initial: float, increments: FloatArray, times: FloatArray, resets: list[float]
) -> FloatArray:
    """A counter: ``initial`` + running total, back to zero at each reset time."""
    total = initial + np.cumsum(increments)
    for reset in sorted(resets):
        k = int(np.searchsorted(times, reset))
        if k < len(times):
            before = total[k - 1] if k > 0 else 0.0
            total[k:] -= before
    return total


# --- one node ---------------------------------------------------------------------


@dataclass
class _Disk:
    """One disk's history under construction: initial counter values and per-sample
    increments (counters) or levels (``failing``, ``spare``, ``used``)."""

    realloc0: float
    uncorrect0: float
    timeout0: float
    crc0: float
    hours0: float
    temp_offset: float
    realloc: FloatArray
    pending: FloatArray
    uncorrect: FloatArray
    offline: FloatArray
    timeout: FloatArray
    crc: FloatArray
    failing: FloatArray
    spare: FloatArray
    used: FloatArray


_PROFILES = {
    # cpu level %, diurnal amplitude, disk bytes/s, net bytes/s, memory %
    "web": ((8, 35), (0.4, 0.8), (5e4, 1e6), (2e5, 2e7), (30, 70)),
    "db": ((15, 45), (0.3, 0.6), (5e5, 8e6), (1e5, 5e6), (60, 92)),
    "batch": ((40, 90), (0.0, 0.2), (1e5, 4e6), (1e4, 1e6), (40, 85)),
    "idle": ((0.5, 4), (0.0, 0.3), (1e3, 3e4), (1e3, 3e4), (10, 40)),
}


class _NodeSim:
    """Builds one node's trace; each ``_step`` method owns one part of the physics."""

    def __init__(self, config: SimConfig, plan: _NodePlan) -> None:
        self.cfg = config
        self.plan = plan
        self.rng = np.random.default_rng([config.seed, 1, plan.index])
        self.dt = config.interval_seconds
        self.n = config.samples
        self.times: FloatArray = config.start_unix + np.arange(self.n, dtype=np.float64) * self.dt
        self.end = config.end_unix
        self.node_id = plan.node_id
        self.failure_time = plan.failure_time
        self.mode = plan.failure_mode
        self.events: list[Event] = []
        self.node: Signals = {}
        self.vms: dict[str, Signals] = {}
        self.vm_alive: dict[str, BoolArray] = {}
        self.disks: dict[str, Signals] = {}
        self.disk_failure_times: dict[str, float] = {}
        self.slow_disk_windows: list[tuple[float, float]] = []  # a dying disk retrying
        rng = self.rng
        self.busy = bool(rng.random() < 0.15)
        self.nested = bool(rng.random() < 0.25)  # steal time exists only under a hypervisor
        self.disk_kind = "nvme" if rng.random() < 0.35 else "ata"
        self.tz_hours = float(rng.normal(0.0, 2.0))

    # -- helpers -------------------------------------------------------------------

    def _event(self, kind: str, start: float, end: float, subject: str | None = None) -> None:
        self.events.append(Event(kind, float(start), float(end), subject or self.node_id))

    def _during(self, start: float, end: float) -> BoolArray:
        return (self.times >= start) & (self.times < end)

    def _rate_per_sample(self, per_hour: float) -> float:
        return per_hour * self.dt / HOUR

    def _confounder_count(self, weight: float) -> int:
        """How many episodes of one confounder this node gets over the run."""
        lam = weight * self.cfg.confounder_rate_per_node_day * self.n * self.dt / DAY
        return int(self.rng.poisson(lam))

    def _random_time(self, margin_s: float = 0.0) -> float:
        return float(self.rng.uniform(self.times[0], self.end - margin_s))

    def _precursor_start(self, default: float) -> float:
        return default if self.failure_time is None else min(default, self.failure_time)

    # -- the run -------------------------------------------------------------------

    def run(self) -> NodeTrace:
        self._workload()
        self._vm_anomalies()
        self._host()
        self._thermal()
        self._storage()
        self._memory_errors()
        self._gpu()
        self._outages()
        self._death()
        if self.busy:
            self._event("confounder:busy_node", self.times[0], self.end)
        return NodeTrace(
            node_id=self.node_id,
            times=self.times,
            signals={name: self.node[name] for name in NODE.signal_names},
            failure_time=self.failure_time,
            failure_mode=self.mode,
            vms=self.vms,
            disks=self.disks,
            disk_failure_times=self.disk_failure_times,
            events=tuple(sorted(self.events, key=lambda e: (e.start, e.kind, e.subject))),
            gpus=self.plan.gpus,
            disk_kind=self.disk_kind,
            busy=self.busy,
        )

    # -- workload ------------------------------------------------------------------

    def _diurnal(self, shift_hours: float) -> FloatArray:
        """0 at 04:00 local time, 1 at 16:00: the shape of interactive load."""
        hours = ((self.times / HOUR) + self.tz_hours + shift_hours) % 24.0
        return np.asarray(0.5 - 0.5 * np.cos(2 * math.pi * (hours - 4.0) / 24.0))

    def _workload(self) -> None:
        rng = self.rng
        low, high = self.cfg.vms_per_node
        count = int(rng.integers(low, high + 1))
        profiles = list(_PROFILES)
        weights = np.array([0.15, 0.15, 0.6, 0.1] if self.busy else [0.4, 0.25, 0.15, 0.2])
        self.vcpus: dict[str, int] = {}
        for j in range(count):
            vm_id = f"{self.node_id}-vm{j:02d}"
            profile = str(rng.choice(profiles, p=weights))
            self.vcpus[vm_id] = int(rng.choice([1, 2, 4, 8, 16], p=[0.2, 0.3, 0.3, 0.15, 0.05]))
            self.vms[vm_id] = self._vm_signals(profile)
            self.vm_alive[vm_id] = self._vm_lifetime()
        total_vcpus = sum(self.vcpus.values()) or 1
        overcommit = rng.uniform(1.4, 2.2) if self.busy else rng.uniform(0.5, 1.4)
        self.cpus = int(max(8, 8 * round(total_vcpus / overcommit / 8)))
        self.mem_level = rng.uniform(72, 88) if self.busy else rng.uniform(35, 75)

    def _vm_lifetime(self) -> BoolArray:
        """Most VMs run throughout; some are created or deleted during the run."""
        alive = np.ones(self.n, dtype=bool)
        roll = self.rng.random()
        if roll < 0.1:
            alive &= self.times >= self._random_time()
        elif roll < 0.2:
            alive &= self.times < self._random_time()
        return alive

    def _vm_signals(self, profile: str) -> Signals:
        rng, n = self.rng, self.n
        cpu_range, amp_range, disk_range, net_range, mem_range = _PROFILES[profile]
        level = rng.uniform(*cpu_range)
        amp = rng.uniform(*amp_range)
        day = self._diurnal(rng.normal(0.0, 1.0))
        cpu = level * (1.0 - amp + 2.0 * amp * day) * np.exp(_smooth_noise(rng, n, 5, 0.15))
        if profile == "batch":  # jobs come and go: on/off periods of 30 min to 4 h
            cpu *= self._on_off(30 * MINUTE, 4 * HOUR, low=0.08)
        cpu = np.clip(cpu + rng.normal(0.0, 0.5, n), 0.0, 100.0)
        activity = cpu / max(level, 0.5)
        disk = math.exp(rng.uniform(*np.log(disk_range)))
        net = math.exp(rng.uniform(*np.log(net_range)))
        read = disk * activity * np.exp(_smooth_noise(rng, n, 3, 0.5))
        write = 0.6 * disk * activity * np.exp(_smooth_noise(rng, n, 3, 0.5))
        rx = net * activity * np.exp(_smooth_noise(rng, n, 3, 0.4))
        tx = net * rng.uniform(0.3, 2.0) * activity * np.exp(_smooth_noise(rng, n, 3, 0.4))
        packet_bytes = rng.uniform(500, 1400)
        block_bytes = rng.choice([4096.0, 8192.0, 16384.0, 65536.0])
        errors = rng.poisson(rng.uniform(0.0, 0.01) * self.dt, n) / self.dt
        mem = rng.uniform(*mem_range) + _smooth_noise(rng, n, 120, 2.0)
        return {
            "vm_cpu_util_percent": cpu,
            "vm_mem_used_percent": np.clip(mem, 1.0, 100.0),
            "vm_disk_read_bytes_per_second": read,
            "vm_disk_write_bytes_per_second": write,
            "vm_disk_ops_per_second": (read + write) / block_bytes,
            "vm_net_rx_bytes_per_second": rx,
            "vm_net_tx_bytes_per_second": tx,
            "vm_net_packets_per_second": (rx + tx) / packet_bytes,
            "vm_net_errors_drops_per_second": errors,
        }

    def _on_off(self, min_s: float, max_s: float, *, low: float) -> FloatArray:
        """A 1/low square wave with log-uniform period lengths (batch jobs)."""
        out = np.empty(self.n)
        k, on = 0, bool(self.rng.random() < 0.6)
        while k < self.n:
            length = math.exp(self.rng.uniform(math.log(min_s), math.log(max_s)))
            steps = max(1, int(length / self.dt))
            out[k : k + steps] = 1.0 if on else low
            k += steps
            on = not on
        return out

    # -- VM anomalies (ground truth for the anomaly models) -------------------------

    def _vm_anomalies(self) -> None:
        self.steal_extra = np.zeros(self.n)
        episodes = _episodes(
            self.rng, self.times, self.cfg.anomaly_rate_per_node_day, 20 * MINUTE, 4 * HOUR
        )
        for start, end in episodes:
            k = min(int(np.searchsorted(self.times, start)), self.n - 1)
            running = [vm for vm, alive in self.vm_alive.items() if alive[k]]
            if not running:
                continue
            vm = str(self.rng.choice(running))
            kind = str(self.rng.choice(VM_ANOMALIES))
            self._apply_vm_anomaly(kind, vm, start, end)
            self._event(f"anomaly:{kind}", start, end, vm)

    def _apply_vm_anomaly(self, kind: str, vm: str, start: float, end: float) -> None:
        rng, s = self.rng, self.vms[vm]
        window = self._during(start, end)
        if kind == "noisy_neighbour":  # a tenant hammering shared disks and network
            for name, factor in (
                ("vm_disk_read_bytes_per_second", rng.uniform(20, 100)),
                ("vm_disk_write_bytes_per_second", rng.uniform(20, 100)),
                ("vm_disk_ops_per_second", rng.uniform(20, 60)),
                ("vm_net_rx_bytes_per_second", rng.uniform(5, 20)),
                ("vm_net_tx_bytes_per_second", rng.uniform(5, 20)),
                ("vm_net_packets_per_second", rng.uniform(5, 20)),
            ):
                s[name] = np.where(window, s[name] * factor + 1e5, s[name])
            s["vm_cpu_util_percent"] = np.where(
                window,
                np.maximum(s["vm_cpu_util_percent"], rng.uniform(60, 95)),
                s["vm_cpu_util_percent"],
            )
            if self.nested:
                self.steal_extra += window * rng.uniform(2, 10)
        elif kind == "vm_network_flood":  # many small packets: a flood or a scan
            pps = rng.uniform(5e4, 5e5)
            s["vm_net_packets_per_second"] = np.where(
                window, s["vm_net_packets_per_second"] + pps, s["vm_net_packets_per_second"]
            )
            for name in ("vm_net_rx_bytes_per_second", "vm_net_tx_bytes_per_second"):
                s[name] = np.where(window, s[name] + pps * rng.uniform(60, 120), s[name])
            s["vm_net_errors_drops_per_second"] = np.where(
                window,
                s["vm_net_errors_drops_per_second"] + pps * rng.uniform(0.001, 0.02),
                s["vm_net_errors_drops_per_second"],
            )
        elif kind == "vm_cpu_runaway":  # a guest spinning (runaway process, miner)
            s["vm_cpu_util_percent"] = np.where(
                window, rng.uniform(96, 100, self.n), s["vm_cpu_util_percent"]
            )
        else:  # vm_memory_leak: memory creeps up, then the guest OOM-kills and recovers
            leak = _ramp(self.times, start, end) * (100.0 - s["vm_mem_used_percent"])
            s["vm_mem_used_percent"] = np.where(
                window, np.minimum(100.0, s["vm_mem_used_percent"] + leak), s["vm_mem_used_percent"]
            )

    # -- host ------------------------------------------------------------------------

    def _vm_sum(self, name: str, weights: Mapping[str, float] | None = None) -> FloatArray:
        total = np.zeros(self.n)
        for vm, s in self.vms.items():
            w = 1.0 if weights is None else weights[vm]
            total += np.where(self.vm_alive[vm], s[name], 0.0) * w
        return total

    def _host(self) -> None:
        rng, n = self.rng, self.n
        for vm, alive in self.vm_alive.items():  # a stopped VM reports nothing
            for name, values in self.vms[vm].items():
                self.vms[vm][name] = np.where(alive, values, np.nan)
        busy_cores = self._vm_sum("vm_cpu_util_percent", self.vcpus) / 100.0
        cpu = rng.uniform(1, 4) + 100.0 * busy_cores / self.cpus + rng.normal(0, 0.8, n)
        capacity = rng.uniform(3000, 15000) if self.disk_kind == "ata" else rng.uniform(4e4, 2e5)
        io_util = np.clip(self._vm_sum("vm_disk_ops_per_second") / capacity, 0.0, 2.0)
        iowait = np.clip(0.2 + 6.0 * io_util**1.5 + rng.normal(0, 0.15, n), 0.0, 60.0)
        steal = np.zeros(n)
        if self.nested:
            steal = rng.uniform(0.2, 2.0) * np.exp(_smooth_noise(rng, n, 10, 0.4))
            steal += self.steal_extra
        cpu = np.clip(cpu, 0.0, 100.0 - iowait - steal)
        base_await = rng.uniform(1.5, 8.0) if self.disk_kind == "ata" else rng.uniform(0.08, 0.4)
        self.await_ms = (
            base_await * (1.0 + 4.0 * io_util**2) * np.exp(_smooth_noise(rng, n, 2, 0.25))
        )
        mem = self.mem_level + _smooth_noise(rng, n, 360, 3.0) + rng.normal(0, 0.3, n)
        mem = np.clip(mem + 0.1 * self._vm_sum("vm_mem_used_percent") / 12.0, 5.0, 99.5)
        swap = np.where(mem > 90.0, np.exp(rng.normal(math.log(2e6), 1.0, n)) * (mem - 90.0), 0.0)
        nic_errors = rng.uniform(0.05, 0.5) if rng.random() < 0.05 else 0.0  # a flaky link
        if nic_errors:
            self._event("confounder:flaky_nic", self.times[0], self.end)
        self.node.update(
            cpu_util_percent=cpu,
            cpu_iowait_percent=iowait,
            cpu_steal_percent=steal,
            load_per_cpu=np.clip(
                cpu / 100.0 * rng.uniform(0.8, 1.3) + iowait / 40.0 + rng.normal(0, 0.03, n),
                0.0,
                None,
            ),
            mem_used_percent=mem,
            swap_out_bytes_per_second=swap,
            net_errors_per_second=rng.poisson(nic_errors * self.dt, n) / self.dt,
            net_drops_per_second=rng.poisson(0.002 * self.dt, n) / self.dt
            + 0.3 * self._vm_sum("vm_net_errors_drops_per_second"),
            vm_running_count=np.sum(list(self.vm_alive.values()), axis=0).astype(np.float64)
            if self.vm_alive
            else np.zeros(n),
        )

    # -- temperature and fans --------------------------------------------------------

    def _thermal(self) -> None:
        rng, n, t = self.rng, self.n, self.times
        crit = rng.uniform(90, 100)
        ambient = np.full(n, rng.uniform(20, 26))
        for _ in range(self._confounder_count(0.15)):  # hot aisle: cooling maintenance
            start = self._random_time(HOUR)
            end = start + rng.uniform(1, 6) * HOUR
            rise = _ramp(t, start, start + 20 * MINUTE) - _ramp(t, end, end + 30 * MINUTE)
            ambient += rng.uniform(4, 10) * rise
            self._event("confounder:hot_aisle", start, end)
        cpu = np.nan_to_num(self.node["cpu_util_percent"], nan=30.0)
        target = ambient + rng.uniform(14, 22) + rng.uniform(0.15, 0.3) * cpu
        temp = _lag(target, tau_samples=5 * MINUTE / self.dt) + _smooth_noise(rng, n, 3, 0.8)
        fan_control = np.ones(n)  # 1 = healthy fan, 0 = stopped
        if self.mode in ("thermal", "fan") and self.failure_time is not None:
            temp, fan_control = self._thermal_failure(temp, crit, self.failure_time)
        fan_base, fan_gain = rng.uniform(1800, 2800), rng.uniform(60, 110)
        fan_max = rng.uniform(5500, 6500)
        fan = np.clip(fan_base + fan_gain * np.maximum(0.0, temp - 35.0), fan_base, fan_max)
        fan = fan * fan_control - np.abs(rng.normal(0, 60, n))
        temp = temp + rng.normal(0, 0.3, n)
        for _ in range(self._confounder_count(0.3)):  # one bogus reading
            k = int(rng.integers(0, n))
            fan[k] = 0.0
            self._event("confounder:fan_sensor_glitch", t[k], t[k])
        for _ in range(self._confounder_count(0.1)):
            k = int(rng.integers(0, n))
            temp[k] += rng.uniform(20, 40)
            self._event("confounder:temp_sensor_glitch", t[k], t[k])
        self.node_temp = temp
        self.node.update(
            temp_max_celsius=temp,
            temp_margin_celsius=crit - temp,
            fan_min_rpm=np.maximum(fan, 0.0),
        )

    def _thermal_failure(
        self, temp: FloatArray, crit: float, failure: float
    ) -> tuple[FloatArray, FloatArray]:
        """Heat up to the critical limit by ``failure`` (thermal trip = node down)."""
        rng, t = self.rng, self.times
        k = min(int(np.searchsorted(t, failure)), self.n - 1)
        headroom = crit + rng.uniform(1, 3) - float(np.median(temp[max(0, k - 60) : k + 1]))
        fan_control = np.ones(self.n)
        if self.mode == "thermal":  # heatsink / airflow failure: fans race, heat wins
            start = failure - rng.uniform(1, 8) * HOUR
            heat = _ramp(t, start, failure, power=rng.uniform(2, 4))
        else:  # fan bearing wear: slows, stops, then the node cooks
            start = failure - rng.uniform(1, 10) * HOUR
            stop = failure - rng.uniform(15, 45) * MINUTE
            fan_control = 1.0 - _ramp(t, start, stop, power=rng.uniform(1.5, 3))
            heat = 0.35 * (1.0 - fan_control) ** 2 + 0.65 * _ramp(t, stop, failure)
        self._event(f"precursor:{self.mode}", self._precursor_start(start), failure)
        return temp + headroom * heat, fan_control

    # -- disks and SMART -------------------------------------------------------------

    def _storage(self) -> None:
        rng = self.rng
        serials = [
            f"SIM{self.cfg.seed:02d}N{self.plan.index:03d}D{k}"
            for k in range(self.cfg.disks_per_node)
        ]
        disks = {serial: self._healthy_disk() for serial in serials}
        death: dict[str, float] = {}
        if self.mode == "disk" and self.failure_time is not None:
            serial = str(rng.choice(serials))
            death[serial] = self.failure_time - rng.uniform(5, 25) * MINUTE
            onset = self._degrade_disk(disks[serial], death[serial])
            self._event("precursor:disk", self._precursor_start(onset), self.failure_time)
        if self.plan.redundant_disk_failure:
            serial = str(rng.choice(serials))
            death[serial] = self._random_time(HOUR)
            onset = self._degrade_disk(disks[serial], death[serial])
            self._event("confounder:redundant_disk_failure", onset, death[serial], serial)
        self._benign_disk_events(disks, serials)
        for serial, dies in death.items():
            self.disk_failure_times[serial] = dies
            end = self.failure_time if self.failure_time is not None else self.end
            self._event(DISK_UNAVAILABLE_EVENT, dies, end, serial)
        self._disk_latency()
        alive = {s: self.times < death.get(s, math.inf) for s in serials}
        self.disks = {s: self._disk_signals(d, alive[s]) for s, d in disks.items()}
        self._node_smart(disks, alive)

    def _healthy_disk(self) -> _Disk:
        rng, n = self.rng, self.n
        nvme = self.disk_kind == "nvme"
        return _Disk(
            realloc0=0.0 if rng.random() < 0.85 else float(int(rng.lognormal(1.5, 1.0))),
            uncorrect0=0.0 if rng.random() < 0.95 else float(rng.integers(1, 5)),
            timeout0=0.0 if rng.random() < 0.8 else float(int(rng.lognormal(1.0, 1.0))),
            crc0=0.0 if rng.random() < 0.8 else float(rng.integers(1, 30)),
            hours0=rng.uniform(2000, 40000),
            temp_offset=rng.uniform(-3, 3),
            realloc=np.zeros(n),
            pending=np.zeros(n),
            uncorrect=np.zeros(n),
            offline=np.zeros(n),
            # occasional benign timeouts (firmware hiccups, not failure)
            timeout=rng.poisson(self._rate_per_sample(0.002), n).astype(np.float64),
            crc=np.zeros(n),
            failing=np.zeros(n),
            spare=np.full(n, 100.0 if rng.random() < 0.8 else rng.uniform(90, 100))
            if nvme
            else np.full(n, np.nan),
            used=np.full(n, rng.uniform(1, 40)) if nvme else np.full(n, np.nan),
        )

    def _degrade_disk(self, disk: _Disk, dies: float) -> float:
        """Precursors of a disk dying at ``dies``; returns when the first one shows."""
        rng, t = self.rng, self.times
        if rng.random() < 0.25:  # ~1/4 of drive failures give no SMART warning
            self.slow_disk_windows.append((dies - rng.uniform(5, 30) * MINUTE, dies))
            return dies
        span = rng.uniform(12, 96) * HOUR
        onset = dies - span
        if self.disk_kind == "ata":
            pending_onset = dies - rng.uniform(2 * HOUR, min(48 * HOUR, span))
            disk.realloc = _accelerating_counts(
                rng, t, onset, dies, total=rng.lognormal(math.log(150), 1.0), sharpness=3.0
            )
            disk.pending = _accelerating_counts(
                rng, t, pending_onset, dies, total=rng.lognormal(math.log(40), 1.0), sharpness=3.0
            )
        else:  # NVMe: spare blocks run out in steps of 5 %
            wear = _ramp(t, onset, dies, power=rng.uniform(1.5, 3))
            floor = rng.uniform(0, 15)
            disk.spare = disk.spare - (disk.spare - floor) * np.floor(wear * 20) / 20
        errors_onset = dies - rng.uniform(0.5, 8) * HOUR
        disk.uncorrect = _accelerating_counts(
            rng, t, errors_onset, dies, total=rng.lognormal(math.log(10), 0.8), sharpness=2.0
        )
        if self.disk_kind == "ata":
            disk.offline = _accelerating_counts(
                rng, t, errors_onset, dies, total=rng.lognormal(math.log(5), 0.8), sharpness=2.0
            )
        disk.timeout = disk.timeout + _accelerating_counts(
            rng, t, errors_onset, dies, total=rng.uniform(2, 30), sharpness=2.0
        )
        if rng.random() < 0.7:  # SMART overall status flips to FAILED shortly before
            failing_from = dies - rng.uniform(10 * MINUTE, 3 * HOUR)
            disk.failing = self._during(failing_from, dies).astype(np.float64)
        self.slow_disk_windows.append((errors_onset, dies))
        return onset

    def _benign_disk_events(self, disks: Mapping[str, _Disk], serials: list[str]) -> None:
        rng, n = self.rng, self.n
        for _ in range(self._confounder_count(0.15)):  # one remapped sector, then calm
            serial = str(rng.choice(serials))
            k = int(rng.integers(0, n))
            counts = disks[serial].realloc if self.disk_kind == "ata" else disks[serial].uncorrect
            counts[k] += float(rng.integers(1, 9))
            self._event("confounder:benign_reallocation", self.times[k], self.times[k], serial)
        for _ in range(self._confounder_count(0.1)):  # a loose SATA cable: CRC errors
            serial = str(rng.choice(serials))
            k = int(rng.integers(0, n))
            crc = disks[serial].crc
            crc[k : k + 10] += rng.poisson(5.0, len(crc[k : k + 10]))
            self._event(
                "confounder:udma_crc_burst", self.times[k], self.times[k] + 10 * self.dt, serial
            )

    def _disk_latency(self) -> None:
        """A dying disk retries: latency and I/O wait spike in its last hours."""
        window = np.zeros(self.n, dtype=bool)
        for start, end in self.slow_disk_windows:
            window |= self._during(start, end)
        spikes = window & (self.rng.random(self.n) < 0.35)
        retry_ms = np.exp(self.rng.uniform(math.log(80), math.log(3000), self.n))
        self.node["disk_await_ms"] = np.where(spikes, self.await_ms + retry_ms, self.await_ms)
        self.node["cpu_iowait_percent"] = np.where(
            spikes,
            self.node["cpu_iowait_percent"] + self.rng.uniform(2, 15, self.n),
            self.node["cpu_iowait_percent"],
        )

    def _disk_signals(self, d: _Disk, alive: BoolArray) -> Signals:
        t = self.times
        nvme = self.disk_kind == "nvme"
        blank = np.full(self.n, np.nan)
        temperature = 27 + d.temp_offset + 0.35 * (self.node_temp - 40.0)
        signals = {
            "reallocated_sectors": blank if nvme else d.realloc0 + np.cumsum(d.realloc),
            "reported_uncorrect": d.uncorrect0 + np.cumsum(d.uncorrect),
            "command_timeout": blank if nvme else d.timeout0 + np.cumsum(d.timeout),
            "current_pending_sectors": blank if nvme else np.cumsum(d.pending),
            "offline_uncorrectable": blank if nvme else np.cumsum(d.offline),
            "udma_crc_errors": blank if nvme else d.crc0 + np.cumsum(d.crc),
            "power_on_hours": np.floor(d.hours0 + (t - t[0]) / HOUR),
            "temperature_celsius": np.round(temperature),
        }
        return {name: np.where(alive, signals[name], np.nan) for name in DISK.signal_names}

    def _node_smart(self, disks: Mapping[str, _Disk], alive: Mapping[str, BoolArray]) -> None:
        """Node signals sum (or min/max) over the disks that still answer."""
        serials = list(disks)
        live = np.array([alive[s] for s in serials])  # (disks, T)

        def live_sum(name: str) -> FloatArray:
            values = np.array([np.nan_to_num(self.disks[s][name]) for s in serials])
            return np.asarray(np.where(live, values, 0.0).sum(axis=0))

        failing = np.array([disks[s].failing for s in serials])
        blank = np.full(self.n, np.nan)
        self.node.update(
            smart_reallocated_sectors=live_sum("reallocated_sectors"),
            smart_pending_sectors=live_sum("current_pending_sectors"),
            smart_uncorrectable_errors=live_sum("reported_uncorrect")
            + live_sum("offline_uncorrectable"),
            smart_failing_disks=np.where(live, failing, 0.0).sum(axis=0),
            smart_unavailable_disks=(~live).sum(axis=0).astype(np.float64),
            nvme_spare_min_percent=blank,
            nvme_used_max_percent=blank,
        )
        if self.disk_kind == "nvme":  # ATA-only attributes do not exist; NVMe health does
            spare = np.array([disks[s].spare for s in serials])
            used = np.array([disks[s].used for s in serials])
            any_live = live.any(axis=0)
            self.node.update(
                smart_reallocated_sectors=blank,
                smart_pending_sectors=blank,
                nvme_spare_min_percent=np.where(
                    any_live, np.where(live, spare, np.inf).min(axis=0), np.nan
                ),
                nvme_used_max_percent=np.where(
                    any_live, np.where(live, used, -np.inf).max(axis=0), np.nan
                ),
            )

    # -- memory (EDAC) ---------------------------------------------------------------

    def _memory_errors(self) -> None:
        rng, n, t = self.rng, self.n, self.times
        sporadic = rng.uniform(0.001, 0.05) if rng.random() < 0.3 else 0.0  # per hour
        ce = rng.poisson(self._rate_per_sample(sporadic), n).astype(np.float64)
        ue = np.zeros(n)
        if rng.random() < 0.06 * self.cfg.confounder_rate_per_node_day / 0.6:
            weak = rng.uniform(0.5, 10)  # a weak cell: steady CEs, never worse
            ce += rng.poisson(self._rate_per_sample(weak), n)
            self._event("confounder:ecc_weak_cell", t[0], self.end)
        for _ in range(self._confounder_count(0.08)):  # a transient burst that stops
            start = self._random_time()
            end = start + rng.uniform(5, 30) * MINUTE
            window = self._during(start, end)
            ce += rng.poisson(rng.uniform(20, 300) / max(window.sum(), 1) * window)
            self._event("confounder:ecc_burst", start, end)
        if self.mode == "dram" and self.failure_time is not None:
            failure = self.failure_time
            first = failure
            if rng.random() >= 0.25:  # most UEs follow a rising tide of CEs
                onset = failure - rng.uniform(6, 72) * HOUR
                bursts = self._on_off(10 * MINUTE, HOUR, low=0.15)
                counts = _accelerating_counts(
                    rng, t, onset, failure, total=rng.lognormal(math.log(3000), 0.8), sharpness=4.0
                )
                ce += rng.binomial(counts.astype(np.int64), np.clip(bursts, 0, 1))
                first = onset
            if rng.random() < 0.5:  # a survivable UE (page offlined) before the fatal one
                survivable = failure - rng.uniform(5, 60) * MINUTE
                ue[min(int(np.searchsorted(t, survivable)), n - 1)] += 1.0
                first = min(first, survivable)
            if first < failure:
                self._event("precursor:dram", first, failure)
        resets = self._resets("reset:edac_reload")
        uptime_hours = rng.uniform(24, 60 * 24)
        ce0 = float(rng.poisson(sporadic * uptime_hours))
        self.node["ecc_corrected_errors"] = _cumulative_with_resets(ce0, ce, t, resets)
        self.node["ecc_uncorrected_errors"] = _cumulative_with_resets(0.0, ue, t, resets)

    def _resets(self, kind: str) -> list[float]:
        rate = self.cfg.reset_rate_per_node_day
        times = [start for start, _ in _episodes(self.rng, self.times, rate, 1, 2)]
        for when in times:
            self._event(kind, when, when)
        return times

    # -- GPUs ------------------------------------------------------------------------

    def _gpu(self) -> None:
        rng, n, t = self.rng, self.n, self.times
        if self.plan.gpus == 0:
            for name in COLLECTOR_SIGNALS["nvml"]:
                self.node[name] = np.full(n, np.nan)
            return
        util = self._on_off(20 * MINUTE, 6 * HOUR, low=0.05) * rng.uniform(0.6, 1.0)
        gpu_temp = 30 + 50 * util + _smooth_noise(rng, n, 4, 1.5)
        xid = np.zeros(n)
        ecc = np.zeros(n)
        retired = np.full(n, float(rng.integers(0, 4)))
        for _ in range(self._confounder_count(0.3)):  # application XIDs (13, 31, 43)
            k = int(rng.integers(0, n))
            xid[k : k + 10] += rng.poisson(rng.uniform(0.2, 3.0), len(xid[k : k + 10]))
            self._event("confounder:benign_xid", t[k], t[min(k + 10, n - 1)])
        if self.mode == "gpu" and self.failure_time is not None:
            failure = self.failure_time
            if rng.random() >= 0.2:
                onset = failure - rng.uniform(6, 48) * HOUR
                xid += _accelerating_counts(
                    rng, t, onset, failure, total=rng.lognormal(math.log(40), 0.8), sharpness=3.0
                )
                retired += np.cumsum(
                    _accelerating_counts(
                        rng,
                        t,
                        onset,
                        failure,
                        total=rng.lognormal(math.log(20), 0.7),
                        sharpness=3.0,
                    )
                )
                ecc += _accelerating_counts(
                    rng,
                    t,
                    failure - rng.uniform(0.5, 6) * HOUR,
                    failure,
                    total=rng.uniform(1, 10),
                    sharpness=2.0,
                )
                self._event("precursor:gpu", onset, failure)
            gpu_temp += 8 * _ramp(t, failure - HOUR, failure)
        resets = self._resets("reset:gpu_driver_reload")
        self.node.update(
            gpu_ecc_uncorrected_errors=_cumulative_with_resets(0.0, ecc, t, resets),
            gpu_xid_events=_cumulative_with_resets(0.0, xid, t, resets),
            gpu_retired_pages=retired,
            gpu_temp_max_celsius=gpu_temp,
        )

    # -- silence: outages, dropped cycles, death -------------------------------------

    def _outages(self) -> None:
        collectors = [c for c in COLLECTOR_SIGNALS if c != "nvml" or self.plan.gpus]
        episodes = _episodes(
            self.rng, self.times, self.cfg.outage_rate_per_node_day, 5 * MINUTE, 3 * HOUR
        )
        for start, end in episodes:
            collector = str(self.rng.choice(collectors))
            window = self._during(start, end)
            for name in COLLECTOR_SIGNALS[collector]:
                self.node[name] = np.where(window, np.nan, self.node[name])
            dependants = {"smart": self.disks, "libvirt": self.vms}.get(collector, {})
            for signals in dependants.values():
                for name in signals:
                    signals[name] = np.where(window, np.nan, signals[name])
            self._event(f"missing:{collector}", start, end)
        dropped = self.rng.random(self.n) < 0.003  # a skipped cycle: nothing at all
        self._blank(dropped)

    def _death(self) -> None:
        if self.failure_time is None:
            return
        self._blank(self.times >= self.failure_time)
        self._event(f"failure:{self.mode}", self.failure_time, self.failure_time)

    def _blank(self, mask: BoolArray) -> None:
        for signals in (self.node, *self.vms.values(), *self.disks.values()):
            for name in signals:
                signals[name] = np.where(mask, np.nan, signals[name])


def _lag(values: FloatArray, tau_samples: float) -> FloatArray:
    """First-order lag (thermal mass): an exponential moving average started at values[0]."""
    length = max(1, int(5 * tau_samples) + 1)
    kernel = np.exp(-np.arange(length) / max(tau_samples, 1e-9))
    kernel /= kernel.sum()
    padded = np.concatenate([np.full(length - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")
