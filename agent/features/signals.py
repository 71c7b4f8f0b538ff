"""One collection cycle as schema signals: the node's, each VM's and each disk's.

:func:`sample_signals` is pure: it takes the :class:`NodeSample` and a small
:class:`SignalCarry` (what earlier cycles left that a signal needs) and returns the
signals plus the next carry. Every signal of the NODE, VM and DISK schemas is mapped
here (the schema's ``Signal.source`` names the reading). A collector that failed, is
disabled or has no such device gives ``None`` for its signals, never 0: a model must
not read "no GPU" as "a GPU with no errors".

What the carry is for:

* **GPU XID events** arrive as "XIDs since the previous collection"; the schema's
  signal is a counter, so the carry keeps the running total (and the collection time
  it last counted, so a reading the runner reuses between polls is not counted twice).
* **VM CPU utilisation** needs each VM's previous cumulative CPU time, taken at the
  time libvirt was read (a reused reading gives no rate, not a zero one).
* **Node SMART sums** (reallocated, pending, uncorrectable over all disks) are levels
  the windows treat as counters. A disk that stops answering would drop out of the sum,
  which the windows would read as a counter reset (and count the remaining disks' whole
  total as new errors), so a disk listed as unavailable keeps contributing its last
  known values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from novacron.agent.collectors._host_model import HostReadings
from novacron.agent.collectors._hwmon_parse import FanSensor
from novacron.agent.collectors._libvirt_model import LibvirtReadings
from novacron.agent.collectors._nvml_model import NvmlReadings
from novacron.agent.collectors.cpuinfo import CpuInventory
from novacron.agent.collectors.edac import EdacReadings
from novacron.agent.collectors.hwmon import HwmonReadings
from novacron.agent.collectors.smart.model import SmartReadings
from novacron.agent.features._values import (
    max_known,
    min_known,
    ratio_percent,
    sum_known,
)
from novacron.agent.features.disk_signals import (
    DiskSignalValues,
    disk_keys,
    disk_signals,
    is_failing,
)
from novacron.agent.features.vm_signals import (
    CpuTimeReading,
    VmSignalValues,
    has_runtime,
    vm_signals,
)
from novacron.agent.sample import NodeSample
from novacron.models.schema import DISK, NODE

SignalValues = dict[str, float | None]
T = TypeVar("T")


@dataclass(frozen=True)
class SignalCarry:
    """What one cycle leaves for the next (see the module docstring)."""

    gpu_xid_events_total: int = 0
    xids_counted_at_seconds: float | None = None  # collection time of the last count
    vm_cpu: Mapping[str, CpuTimeReading] = field(default_factory=dict)  # by VM UUID
    # Last SMART signals of every disk read, by device, kept while it is unavailable.
    disk_last: Mapping[str, DiskSignalValues] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        """The persistent part (VM CPU times are not: a rate across a restart is wrong)."""
        return {
            "gpu_xid_events_total": self.gpu_xid_events_total,
            "disk_last": {device: dict(values) for device, values in self.disk_last.items()},
        }

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> SignalCarry:
        """Inverse of :meth:`to_json_dict`; raises ValueError on anything malformed."""
        xids = data.get("gpu_xid_events_total", 0)
        disks = data.get("disk_last", {})
        if not isinstance(xids, int) or isinstance(xids, bool) or xids < 0:
            raise ValueError(f"gpu_xid_events_total: bad value {xids!r}")
        if not isinstance(disks, dict):
            raise ValueError("disk_last: expected an object")
        disk_last: dict[str, DiskSignalValues] = {}
        for device, values in disks.items():
            if not isinstance(values, dict) or set(values) != set(DISK.signal_names):
                raise ValueError(f"disk_last[{device!r}]: not the DISK schema's signals")
            disk_last[str(device)] = {
                name: None if value is None else float(value) for name, value in values.items()
            }
        return cls(gpu_xid_events_total=xids, disk_last=disk_last)


@dataclass(frozen=True)
class SampleSignals:
    timestamp_seconds: float
    node: SignalValues
    vms: dict[str, VmSignalValues]  # by VM UUID; running/paused VMs only
    disks: dict[str, DiskSignalValues]  # by stable disk key (serial, else device)
    vm_names: dict[str, str]  # UUID -> domain name
    disk_devices: dict[str, str]  # disk key -> device ("/dev/sda")


def sample_signals(
    sample: NodeSample, carry: SignalCarry | None = None
) -> tuple[SampleSignals, SignalCarry]:
    """Map one sample onto the NODE, VM and DISK schemas' signals (pure)."""
    carry = carry or SignalCarry()
    node: SignalValues = dict.fromkeys(NODE.signal_names)
    host = _data(sample, "host", HostReadings)
    if host is not None:
        node.update(host_signals(host, _data(sample, "cpuinfo", CpuInventory)))
    hwmon = _data(sample, "hwmon", HwmonReadings)
    if hwmon is not None:
        node.update(hwmon_signals(hwmon))
    edac = _data(sample, "edac", EdacReadings)
    if edac is not None:
        node.update(edac_signals(edac))
    xids, xids_at = carry.gpu_xid_events_total, carry.xids_counted_at_seconds
    nvml = _data(sample, "nvml", NvmlReadings)
    if nvml is not None:
        collected_at = _collected_at(sample, "nvml")
        if collected_at != xids_at:
            xids += sum(len(gpu.xid_errors) for gpu in nvml.gpus)
            xids_at = collected_at
        node.update(nvml_signals(nvml, xids))

    disks: dict[str, DiskSignalValues] = {}
    devices: dict[str, str] = {}
    disk_last = carry.disk_last
    smart = _data(sample, "smart", SmartReadings)
    if smart is not None:
        for key, disk in disk_keys(smart.disks).items():
            disks[key] = disk_signals(disk)
            devices[key] = disk.device
        disk_last = _disks_to_carry(smart, disks, devices, carry.disk_last)
        node.update(smart_signals(smart, disk_last))

    vms: dict[str, VmSignalValues] = {}
    names: dict[str, str] = {}
    vm_cpu = carry.vm_cpu
    libvirt = _data(sample, "libvirt", LibvirtReadings)
    if libvirt is not None:
        vm_cpu = {}
        read_at = _collected_at(sample, "libvirt")
        if libvirt.domain_counts is not None:
            node["vm_running_count"] = float(libvirt.domain_counts.running)
        for domain in libvirt.domains:
            if not has_runtime(domain):
                continue
            previous = carry.vm_cpu.get(domain.uuid)
            vms[domain.uuid], cpu = vm_signals(domain, read_at, previous)
            names[domain.uuid] = domain.name
            if cpu is not None:
                vm_cpu[domain.uuid] = cpu
    signals = SampleSignals(sample.timestamp_seconds, node, vms, disks, names, devices)
    return signals, SignalCarry(xids, xids_at, vm_cpu, disk_last)


def host_signals(host: HostReadings, cpuinfo: CpuInventory | None) -> SignalValues:
    cpu = host.cpu_total
    busy = cpu.utilisation_percent if cpu else None
    steal = cpu.steal_percent if cpu else None
    # The schema's busy share leaves steal out (100 - idle - iowait - steal); the host
    # collector counts steal as busy, as top does.
    util = max(busy - steal, 0.0) if busy is not None and steal is not None else busy
    cpus = len(host.per_cpu) if host.per_cpu else (cpuinfo.threads if cpuinfo else None)
    memory = host.memory
    return {
        "cpu_util_percent": util,
        "cpu_iowait_percent": cpu.iowait_percent if cpu else None,
        "cpu_steal_percent": steal,
        "load_per_cpu": host.load.load_1m / cpus if host.load is not None and cpus else None,
        "mem_used_percent": (
            ratio_percent(memory.used_bytes, memory.total_bytes) if memory else None
        ),
        "swap_out_bytes_per_second": host.swap.swap_out_bytes_per_second if host.swap else None,
        "disk_await_ms": max_known(d.await_ms for d in host.disks or ()),
        "net_errors_per_second": sum_known(
            v
            for n in host.interfaces or ()
            for v in (n.receive_errors_per_second, n.transmit_errors_per_second)
        ),
        "net_drops_per_second": sum_known(
            v
            for n in host.interfaces or ()
            for v in (n.receive_drops_per_second, n.transmit_drops_per_second)
        ),
    }


def hwmon_signals(hwmon: HwmonReadings) -> SignalValues:
    return {
        "temp_max_celsius": hwmon.hottest_celsius,
        "temp_margin_celsius": hwmon.min_margin_to_crit_celsius,
        "fan_min_rpm": min_known(
            f.speed_rpm for chip in hwmon.chips for f in chip.fans if _fan_is_monitored(f)
        ),
    }


def _fan_is_monitored(fan: FanSensor) -> bool:
    """A fan header reading 0 rpm with no minimum and no alarm has nothing connected
    (boards expose every header; unconnected ones read 0 for ever). A stopped fan on a
    connected header trips its alarm or sits below its configured minimum."""
    return fan.speed_rpm > 0 or bool(fan.alarm) or (fan.min_rpm or 0) > 0


def edac_signals(edac: EdacReadings) -> SignalValues:
    """Totals over memory controllers; None on a machine without EDAC controllers."""
    if not edac.controllers:
        return {}
    return {
        "ecc_corrected_errors": float(edac.ce_count_total),
        "ecc_uncorrected_errors": float(edac.ue_count_total),
    }


def nvml_signals(nvml: NvmlReadings, xid_events_total: int) -> SignalValues:
    """Totals over GPUs; None without GPUs (no driver, no device)."""
    gpus = nvml.gpus
    if not gpus:
        return {}
    return {
        "gpu_ecc_uncorrected_errors": sum_known(g.ecc_volatile_uncorrected for g in gpus),
        "gpu_xid_events": float(xid_events_total),
        "gpu_retired_pages": sum_known(
            v
            for g in gpus
            for v in (
                g.retired_pages_single_bit,
                g.retired_pages_double_bit,
                g.remapped_rows_correctable,
                g.remapped_rows_uncorrectable,
            )
        ),
        "gpu_temp_max_celsius": max_known(g.temperature_celsius for g in gpus),
    }


def smart_signals(smart: SmartReadings, disk_last: Mapping[str, DiskSignalValues]) -> SignalValues:
    """Node-level SMART signals; ``disk_last`` holds every disk to sum, by device.

    Counts of failing and unavailable disks are None when smartctl itself is missing
    (there is nothing to count, which is not the same as zero disks failing).
    """
    if smart.backend is None:
        return {}
    summed = list(disk_last.values())
    nvme = [d.nvme for d in smart.disks if d.nvme is not None]
    return {
        "smart_reallocated_sectors": sum_known(d["reallocated_sectors"] for d in summed),
        "smart_pending_sectors": sum_known(d["current_pending_sectors"] for d in summed),
        "smart_uncorrectable_errors": sum_known(
            v for d in summed for v in (d["reported_uncorrect"], d["offline_uncorrectable"])
        ),
        "smart_failing_disks": float(sum(is_failing(d) for d in smart.disks)),
        "smart_unavailable_disks": float(len(smart.unavailable)),
        "nvme_spare_min_percent": min_known(n.available_spare_percent for n in nvme),
        "nvme_used_max_percent": max_known(n.percentage_used_percent for n in nvme),
    }


def _disks_to_carry(
    smart: SmartReadings,
    disks: Mapping[str, DiskSignalValues],
    devices: Mapping[str, str],
    previous: Mapping[str, DiskSignalValues],
) -> dict[str, DiskSignalValues]:
    """This cycle's disks by device, plus the last values of disks that stopped answering."""
    current = {devices[key]: values for key, values in disks.items()}
    silent = {u.device for u in smart.unavailable} - set(current)
    return current | {device: previous[device] for device in silent if device in previous}


def _collected_at(sample: NodeSample, collector: str) -> float:
    """When the collector's reading was taken (the runner reuses slow sources' readings)."""
    report = sample.reports[collector]
    return report.collected_at_seconds or sample.timestamp_seconds


def _data(sample: NodeSample, collector: str, kind: type[T]) -> T | None:
    """The collector's readings when it ran and succeeded this cycle, else None."""
    report = sample.reports.get(collector)
    if report is None or not report.ok or not isinstance(report.data, kind):
        return None
    return report.data


__all__ = [
    "SampleSignals",
    "SignalCarry",
    "SignalValues",
    "edac_signals",
    "host_signals",
    "hwmon_signals",
    "nvml_signals",
    "sample_signals",
    "smart_signals",
]
