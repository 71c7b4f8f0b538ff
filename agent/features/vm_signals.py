"""One VM's libvirt readings as VM-schema signals (pure).

Device rates (disks, interfaces) are summed over the VM's devices: the VM model looks at
what the guest does as a whole, and a VM's device list changes with hot-plug. CPU
utilisation needs the previous cumulative CPU time (libvirt reports only the total), so
the caller passes it in and gets the new one back with the signals.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from novacron.agent.collectors._libvirt_model import ACTIVE_STATES, DomainStats
from novacron.agent.collectors._rates import counter_rate
from novacron.agent.features._values import ratio_percent, sum_known

VmSignalValues = dict[str, float | None]


@dataclass(frozen=True)
class CpuTimeReading:
    """A VM's cumulative CPU time at one cycle, kept to turn the next one into a share."""

    timestamp_seconds: float
    cpu_time_seconds: float


def has_runtime(domain: DomainStats) -> bool:
    """Only domains with a QEMU process have rates; a shut-off VM has no window."""
    return domain.state in ACTIVE_STATES


def vm_signals(
    domain: DomainStats, timestamp_seconds: float, previous_cpu: CpuTimeReading | None
) -> tuple[VmSignalValues, CpuTimeReading | None]:
    """The VM schema's signals, and this cycle's CPU time for the next call."""
    disks = [d.rates for d in domain.disks]
    nics = [i.rates for i in domain.interfaces]
    values: VmSignalValues = {
        "vm_cpu_util_percent": _cpu_util_percent(domain, timestamp_seconds, previous_cpu),
        "vm_mem_used_percent": ratio_percent(domain.memory_rss_bytes, domain.balloon_maximum_bytes),
        "vm_disk_read_bytes_per_second": sum_known(d.read_bytes_per_second for d in disks),
        "vm_disk_write_bytes_per_second": sum_known(d.write_bytes_per_second for d in disks),
        "vm_disk_ops_per_second": _sum_pairs(
            (d.read_requests_per_second, d.write_requests_per_second) for d in disks
        ),
        "vm_net_rx_bytes_per_second": sum_known(n.rx_bytes_per_second for n in nics),
        "vm_net_tx_bytes_per_second": sum_known(n.tx_bytes_per_second for n in nics),
        "vm_net_packets_per_second": _sum_pairs(
            (n.rx_packets_per_second, n.tx_packets_per_second) for n in nics
        ),
        "vm_net_errors_drops_per_second": _sum_pairs(
            (
                n.rx_errors_per_second,
                n.tx_errors_per_second,
                n.rx_drops_per_second,
                n.tx_drops_per_second,
            )
            for n in nics
        ),
    }
    current = (
        CpuTimeReading(timestamp_seconds, domain.cpu_time_seconds)
        if domain.cpu_time_seconds is not None
        else None
    )
    return values, current


def _cpu_util_percent(
    domain: DomainStats, timestamp_seconds: float, previous: CpuTimeReading | None
) -> float | None:
    """CPU seconds per second per vCPU, in percent (100 = every vCPU busy all the time).

    None on a VM's first cycle, after a guest restart (the counter went down) and when
    the vCPU count is unknown.
    """
    if previous is None or not domain.vcpu_count:
        return None
    rate = counter_rate(
        previous.cpu_time_seconds,
        domain.cpu_time_seconds,
        timestamp_seconds - previous.timestamp_seconds,
    )
    return None if rate is None else rate / domain.vcpu_count * 100.0


def _sum_pairs(groups: Iterable[Iterable[float | None]]) -> float | None:
    return sum_known(value for group in groups for value in group)
