"""CPU shares from two readings of cumulative CPU times (pure)."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from novacron.agent.collectors._cpu_times import CpuTimes, cpu_usage


class OldKernelTimes(NamedTuple):
    """psutil's scputimes on a kernel before 2.6.11 (no steal, guest, guest_nice)."""

    user: float
    nice: float
    system: float
    idle: float
    iowait: float
    irq: float
    softirq: float


def times(**fields: float) -> CpuTimes:
    base = dict.fromkeys(CpuTimes.__dataclass_fields__, 0.0)
    return CpuTimes(**(base | fields))


def test_shares_of_the_interval() -> None:
    before = times(user=100, nice=10, system=50, idle=1000, iowait=20, steal=5, guest=60)
    after = times(user=130, nice=20, system=60, idle=1040, iowait=30, steal=10, guest=90)
    usage = cpu_usage("cpu3", before, after)
    # elapsed = 30+10+10+40+10+5 = 105 (guest is inside user, not counted twice)
    assert usage.cpu == "cpu3"
    assert usage.utilisation_percent == pytest.approx(55 / 105 * 100)
    assert usage.user_percent == pytest.approx(40 / 105 * 100)
    assert usage.system_percent == pytest.approx(10 / 105 * 100)
    assert usage.iowait_percent == pytest.approx(10 / 105 * 100)
    assert usage.steal_percent == pytest.approx(5 / 105 * 100)


def test_first_reading_and_no_time_passed_have_no_shares() -> None:
    now = times(user=1, idle=2)
    for usage in (cpu_usage("all", None, now), cpu_usage("all", now, now)):
        assert usage.utilisation_percent is None
        assert usage.steal_percent is None


def test_counters_going_back_never_give_negative_shares() -> None:
    before = times(user=100, idle=100, iowait=50)
    after = times(user=300, idle=110, iowait=10)  # iowait went down (re-plugged CPU)
    usage = cpu_usage("cpu0", before, after)
    assert usage.iowait_percent == 0.0
    assert usage.utilisation_percent is not None
    assert 0.0 <= usage.utilisation_percent <= 100.0


def test_from_psutil_tolerates_old_kernels_without_steal_and_guest() -> None:
    converted = CpuTimes.from_psutil(OldKernelTimes(1, 2, 3, 4, 5, 6, 7))
    assert converted.softirq == 7.0
    assert (converted.steal, converted.guest, converted.guest_nice) == (0.0, 0.0, 0.0)
    assert converted.total == 28.0
