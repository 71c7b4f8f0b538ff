"""CPU utilisation as shares of an interval, from two readings of cumulative CPU times.

The kernel counts, per CPU, the time spent in each state since boot (``/proc/stat``).
What a feature needs is the share of the *last interval* spent busy, waiting for I/O or
stolen by a hypervisor, so the collector keeps the previous reading and takes
differences. psutil's ``cpu_percent(interval=...)`` does the same by sleeping between
two reads; a collector must not sleep, so it diffs across its own collections instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CpuTimes:
    """Cumulative seconds one CPU (or all together) spent in each state since boot.

    ``guest`` and ``guest_nice`` (time running VM vCPUs) are already counted inside
    ``user`` and ``nice`` by the kernel, so :attr:`total` leaves them out -- on a
    hypervisor they are large and would otherwise be counted twice.
    """

    user: float
    nice: float
    system: float
    idle: float
    iowait: float
    irq: float
    softirq: float
    steal: float
    guest: float
    guest_nice: float

    @classmethod
    def from_psutil(cls, times: Any) -> CpuTimes:
        """From a psutil ``scputimes``; fields an old kernel lacks count as 0."""
        return cls(**{name: float(getattr(times, name, 0.0)) for name in cls.__dataclass_fields__})

    @property
    def total(self) -> float:
        return (
            self.user
            + self.nice
            + self.system
            + self.idle
            + self.iowait
            + self.irq
            + self.softirq
            + self.steal
        )


@dataclass(frozen=True)
class CpuUsage:
    """Share of the last interval one CPU (``cpu0``...) or all (``all``) spent per state.

    Percent of the interval, 0..100; ``None`` on the first collection (no interval yet)
    or when no time passed between the two readings.
    """

    cpu: str
    # Busy = everything but idle and iowait (psutil's and top's definition): steal,
    # irq and softirq count as busy, because the CPU was not available for work.
    utilisation_percent: float | None
    user_percent: float | None  # user + nice (includes time running guests)
    system_percent: float | None
    iowait_percent: float | None
    steal_percent: float | None


def cpu_usage(cpu: str, previous: CpuTimes | None, current: CpuTimes) -> CpuUsage:
    """Percent of the interval between two readings of one CPU spent in each state.

    All None without a previous reading, when no time passed (the same reading twice)
    or when the counters went backwards as a whole (a CPU unplugged and re-plugged).
    A single state that went down counts as 0, as in psutil.
    """
    elapsed = 0.0 if previous is None else current.total - previous.total
    if previous is None or elapsed <= 0:
        return CpuUsage(cpu, None, None, None, None, None)

    def share(before: float, after: float) -> float:
        return max(after - before, 0.0) / elapsed * 100.0

    idle = share(previous.idle, current.idle)
    iowait = share(previous.iowait, current.iowait)
    return CpuUsage(
        cpu=cpu,
        utilisation_percent=min(max(100.0 - idle - iowait, 0.0), 100.0),
        user_percent=share(previous.user + previous.nice, current.user + current.nice),
        system_percent=share(previous.system, current.system),
        iowait_percent=iowait,
        steal_percent=share(previous.steal, current.steal),
    )


__all__ = ["CpuTimes", "CpuUsage", "cpu_usage"]
