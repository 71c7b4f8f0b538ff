"""Memory health from EDAC: corrected ECC rates, their trend, uncorrected errors.

A steady trickle of corrected errors is common; a rising rate is how a DIMM announces it
is about to throw uncorrectable errors, which crash the host (or the VM whose page it
hits). The trend is the last hour's rate against the last day's.
"""

from __future__ import annotations

from collections.abc import Mapping

from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher
from novacron.coordinator.placement.weighers.common import plain_telemetry


@WEIGHERS.register("memory_health", order=75)
class MemoryHealthWeigher(Weigher):
    """DRAM ECC error rates and trend."""

    factors = (
        Factor(
            factor_id="ecc_corrected_rate_1h",
            name="Corrected ECC rate (1 h)",
            category=Category.INFRASTRUCTURE,
            unit="errors/h",
            default_weight=1.0,
            scope=Scope.HOST,
            source="telemetry:ecc_corrected_errors_rate_per_hour_1h",
            description="DRAM correctable errors per hour over the last hour",
            higher_is_better=False,
            objective="reliability",
        ),
        Factor(
            factor_id="ecc_corrected_rate_24h",
            name="Corrected ECC rate (24 h)",
            category=Category.INFRASTRUCTURE,
            unit="errors/h",
            default_weight=0.5,
            scope=Scope.HOST,
            source="telemetry:ecc_corrected_errors_rate_per_hour_24h",
            description="DRAM correctable errors per hour over the last day",
            higher_is_better=False,
            objective="reliability",
        ),
        Factor(
            factor_id="ecc_corrected_rising",
            name="Corrected ECC trend",
            category=Category.INFRASTRUCTURE,
            unit="errors/h",
            default_weight=1.0,
            scope=Scope.HOST,
            source="telemetry:ecc_corrected_errors_rate_per_hour_1h - _24h",
            description=(
                "last hour's correctable error rate minus the last day's (positive = a DIMM "
                "getting worse now)"
            ),
            higher_is_better=False,
            objective="reliability",
        ),
        Factor(
            factor_id="ecc_uncorrected_24h",
            name="Uncorrected ECC (24 h)",
            category=Category.INFRASTRUCTURE,
            unit="errors",
            default_weight=2.0,  # each one is a crash or a killed VM
            scope=Scope.HOST,
            source="telemetry:ecc_uncorrected_errors_increase_24h",
            description="DRAM uncorrectable errors in the last day",
            higher_is_better=False,
            objective="reliability",
        ),
    )

    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        values = plain_telemetry(hosts, self.factors)
        values["ecc_corrected_rising"] = (
            values["ecc_corrected_rate_1h"] - values["ecc_corrected_rate_24h"]
        )
        return values
