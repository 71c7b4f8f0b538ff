"""Disk health from SMART: reallocated, pending and uncorrectable sectors, failing disks,
NVMe wear.

Growing reallocated or pending sector counts and new uncorrectable errors are the
signals Backblaze's fleet data ties most strongly to disk failure; a VM's root disk on
such a drive is the most common way a healthy-looking host loses a VM. Levels say how
worn a disk is, increases say it is deteriorating now, so both are listed and the
increases weigh more. ``disk_symptom`` makes any symptom count fully even when another
host's counters are much larger (min-max normalisation would otherwise squash a few
new sectors next to thousands).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher
from novacron.coordinator.placement.weighers.common import (
    IdentityCache,
    indicator,
    plain_telemetry,
    readonly,
)


def _disk(
    factor_id: str,
    name: str,
    *,
    unit: str,
    weight: float,
    feature: str,
    description: str,
    higher_is_better: bool = False,
) -> Factor:
    """A disk-health factor that reads one NODE feature as is."""
    return Factor(
        factor_id=factor_id,
        name=name,
        category=Category.INFRASTRUCTURE,
        unit=unit,
        default_weight=weight,
        scope=Scope.HOST,
        source=f"telemetry:{feature}",
        description=description,
        higher_is_better=higher_is_better,
        objective="reliability",
    )


# Features whose positive value is a symptom of a disk deteriorating now.
_SYMPTOMS = (
    "smart_failing_disks",
    "smart_unavailable_disks",
    "smart_uncorrectable_24h",
    "smart_pending_increase_24h",
    "smart_reallocated_increase_24h",
)


@WEIGHERS.register("disk_health", order=70)
class DiskHealthWeigher(Weigher):
    """SMART counters summed over the host's disks."""

    factors = (
        _disk(
            "smart_reallocated_sectors",
            "Reallocated sectors",
            unit="sectors",
            weight=0.5,  # a stable level is wear, not an emergency
            feature="smart_reallocated_sectors_last_1h",
            description="sectors the disks have reallocated so far, all disks",
        ),
        _disk(
            "smart_reallocated_increase_1h",
            "New reallocations (1 h)",
            unit="sectors",
            weight=1.0,
            feature="smart_reallocated_sectors_increase_1h",
            description="sectors reallocated in the last hour",
        ),
        _disk(
            "smart_reallocated_increase_24h",
            "New reallocations (24 h)",
            unit="sectors",
            weight=1.0,
            feature="smart_reallocated_sectors_increase_24h",
            description="sectors reallocated in the last day",
        ),
        _disk(
            "smart_pending_sectors",
            "Pending sectors",
            unit="sectors",
            weight=1.0,  # unreadable now: data on them is at risk until rewritten
            feature="smart_pending_sectors_last_1h",
            description="sectors waiting to be reallocated (unreadable), all disks",
        ),
        _disk(
            "smart_pending_increase_1h",
            "New pending sectors (1 h)",
            unit="sectors",
            weight=1.0,
            feature="smart_pending_sectors_increase_1h",
            description="sectors that became pending in the last hour",
        ),
        _disk(
            "smart_pending_increase_24h",
            "New pending sectors (24 h)",
            unit="sectors",
            weight=1.0,
            feature="smart_pending_sectors_increase_24h",
            description="sectors that became pending in the last day",
        ),
        _disk(
            "smart_uncorrectable_1h",
            "Uncorrectable errors (1 h)",
            unit="errors",
            weight=1.5,  # reads already failing: I/O errors inside guests
            feature="smart_uncorrectable_errors_increase_1h",
            description="new uncorrectable read/media errors in the last hour, all disks",
        ),
        _disk(
            "smart_uncorrectable_24h",
            "Uncorrectable errors (24 h)",
            unit="errors",
            weight=1.5,
            feature="smart_uncorrectable_errors_increase_24h",
            description="new uncorrectable read/media errors in the last day, all disks",
        ),
        _disk(
            "smart_failing_disks",
            "Failing disks",
            unit="disks",
            weight=2.0,  # the drive itself says it is failing
            feature="smart_failing_disks_last_1h",
            description=(
                "disks whose SMART overall status fails or with a prefail attribute at threshold"
            ),
        ),
        _disk(
            "smart_unavailable_disks",
            "Disks gone silent",
            unit="disks",
            weight=1.5,
            feature="smart_unavailable_disks_max_1h",
            description="disks seen before that stopped answering in the last hour",
        ),
        _disk(
            "nvme_spare_percent",
            "NVMe spare left",
            unit="percent",
            weight=0.5,
            feature="nvme_spare_min_percent_last_1h",
            description="lowest available spare over the host's NVMe disks (100 = untouched)",
            higher_is_better=True,
        ),
        _disk(
            "nvme_used_percent",
            "NVMe wear",
            unit="percent",
            weight=0.5,
            feature="nvme_used_max_percent_last_1h",
            description="highest rated endurance used over the host's NVMe disks",
        ),
        Factor(
            factor_id="disk_symptom",
            name="Disk deteriorating",
            category=Category.INFRASTRUCTURE,
            unit="bool",
            default_weight=2.0,  # any active symptom: avoid the host if another will do
            scope=Scope.HOST,
            source="telemetry:smart_* (derived)",
            description=(
                "1 when any disk is failing or silent, or had new uncorrectable errors, "
                "pending sectors or reallocations in the last day"
            ),
            higher_is_better=False,
            objective="reliability",
        ),
    )

    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        values = plain_telemetry(hosts, self.factors)
        values["disk_symptom"] = _SYMPTOM.get((hosts.features,), lambda: _symptom(values))
        return values


_SYMPTOM: IdentityCache[FloatArray] = IdentityCache()


def _symptom(values: Mapping[str, FloatArray]) -> FloatArray:
    """1 where any symptom is positive, 0 where all measured ones are 0, NaN if none is."""
    worst = values[_SYMPTOMS[0]]
    for factor_id in _SYMPTOMS[1:]:
        worst = np.fmax(worst, values[factor_id])  # fmax: NaN only where all are NaN
    return readonly(indicator(worst > 0, ~np.isnan(worst)))
