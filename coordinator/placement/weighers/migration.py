"""Migration targets: for a VM moving off ``current_host``, prefer hosts close and alike.

Live migration copies the VM's memory over the network (cheaper inside a rack, slower
across zones) and keeps the guest's CPU model, so a target with the same CPU model, or
at least every CPU flag of the source, resumes the guest without a feature going
missing. The same on every host for new VMs (no ``current_host``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher
from novacron.coordinator.placement.weighers.common import groups, indicator, zeros


def _same_as(hosts: HostTable, text: str, row: int) -> FloatArray:
    """1 where text column ``text`` equals the source row's (NaN where unset); all 0
    when the source's own value is unknown (nothing to be close to)."""
    split = groups(hosts, text)
    if not split.known[row]:
        return zeros(hosts)
    return indicator(split.inverse == split.inverse[row], split.known)


@WEIGHERS.register("migration", order=210)
class MigrationWeigher(Weigher):
    """Rack, zone, CPU model and CPU flags shared with the migration source."""

    factors = (
        Factor(
            factor_id="migration_same_rack",
            name="Same rack as source",
            category=Category.NETWORK,
            unit="bool",
            default_weight=0.5,
            scope=Scope.REQUEST,
            source="inventory:rack + request:current_host",
            description="1 when the host is in the migration source's rack (copy stays local)",
            higher_is_better=True,
            objective="performance",
        ),
        Factor(
            factor_id="migration_same_zone",
            name="Same zone as source",
            category=Category.NETWORK,
            unit="bool",
            default_weight=0.25,
            scope=Scope.REQUEST,
            source="inventory:zone + request:current_host",
            description="1 when the host is in the migration source's zone",
            higher_is_better=True,
            objective="performance",
        ),
        Factor(
            factor_id="migration_cpu_model_match",
            name="Same CPU model as source",
            category=Category.OPERATIONAL,
            unit="bool",
            default_weight=1.0,
            scope=Scope.REQUEST,
            source="inventory:cpu_model + request:current_host",
            description="1 when the host has the migration source's CPU model",
            higher_is_better=True,
            objective="performance",
        ),
        Factor(
            factor_id="migration_cpu_flags_superset",
            name="Source CPU flags present",
            category=Category.OPERATIONAL,
            unit="bool",
            default_weight=1.0,
            scope=Scope.REQUEST,
            source="inventory:cpu_flags + request:current_host",
            description=(
                "1 when the host has every CPU flag of the migration source (the guest "
                "keeps all features it saw)"
            ),
            higher_is_better=True,
            objective="reliability",
        ),
    )

    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        row = hosts.index.get(request.current_host) if request.current_host else None
        if row is None:
            return {factor.factor_id: zeros(hosts) for factor in self.factors}
        flags = hosts.flags["cpu_flags"].matrix
        source_flags = flags[row]
        if source_flags.any():
            superset = indicator(np.all(flags[:, source_flags], axis=1))
        else:
            superset = zeros(hosts)
        return {
            "migration_same_rack": _same_as(hosts, "rack", row),
            "migration_same_zone": _same_as(hosts, "zone", row),
            "migration_cpu_model_match": _same_as(hosts, "cpu_model", row),
            "migration_cpu_flags_superset": superset,
        }
