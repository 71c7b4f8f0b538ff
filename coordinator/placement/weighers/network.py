"""Network: link speed, NIC errors and drops, bandwidth per VM, rack uplink sharing.

VM traffic leaves through the host's NICs and its rack's top-of-rack switch. Errors
point at a bad cable, optic or NIC (retransmits, flapping links); drops at a saturated
link or ring buffer; many VMs per host in a rack at an oversubscribed uplink.
"""

from __future__ import annotations

from collections.abc import Mapping

from novacron.coordinator.placement.factors import Category, Factor, Scope
from novacron.coordinator.placement.hosts import FloatArray, HostTable
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.weighers.base import WEIGHERS, Weigher
from novacron.coordinator.placement.weighers.common import groups, plain_telemetry, ratio


@WEIGHERS.register("network", order=130)
class NetworkWeigher(Weigher):
    """NIC speed, errors and drops; bandwidth per VM; VMs sharing the rack's uplink."""

    factors = (
        Factor(
            factor_id="nic_speed_mbps",
            name="NIC speed",
            category=Category.NETWORK,
            unit="mbit/s",
            default_weight=0.5,
            scope=Scope.HOST,
            source="inventory:nic_speed_mbps",
            description="link speed of the host's VM-facing NICs",
            higher_is_better=True,
            objective="performance",
        ),
        Factor(
            factor_id="net_errors_per_second",
            name="NIC errors",
            category=Category.NETWORK,
            unit="1/s",
            default_weight=1.0,  # errors mean broken hardware, not load
            scope=Scope.HOST,
            source="telemetry:net_errors_per_second_mean_15m",
            description="receive + transmit errors per second over all interfaces, last 15 min",
            higher_is_better=False,
            objective="reliability",
        ),
        Factor(
            factor_id="net_drops_per_second",
            name="NIC drops",
            category=Category.NETWORK,
            unit="1/s",
            default_weight=1.0,
            scope=Scope.HOST,
            source="telemetry:net_drops_per_second_mean_15m",
            description="receive + transmit drops per second over all interfaces, last 15 min",
            higher_is_better=False,
            objective="performance",
        ),
        Factor(
            factor_id="nic_mbps_per_vm_after",
            name="Bandwidth per VM",
            category=Category.NETWORK,
            unit="mbit/s",
            default_weight=0.5,
            scope=Scope.HOST,
            source="inventory:nic_speed_mbps + allocation",
            description="NIC speed shared by the host's VMs once this one is added",
            higher_is_better=True,
            objective="performance",
        ),
        Factor(
            factor_id="rack_vms_per_host",
            name="Rack VM density",
            category=Category.NETWORK,
            unit="vms/host",
            default_weight=0.25,
            scope=Scope.HOST,
            source="inventory:rack + allocation",
            description="VMs per host in the host's rack (traffic sharing the rack's uplink)",
            higher_is_better=False,
            objective="performance",
        ),
    )

    def raw(self, hosts: HostTable, request: PlacementRequest) -> Mapping[str, FloatArray]:
        values = plain_telemetry(hosts, self.factors)
        speed = hosts.number("nic_speed_mbps")
        vm_count = hosts.numbers["vm_count"]
        racks = groups(hosts, "rack")
        values["nic_speed_mbps"] = speed
        values["nic_mbps_per_vm_after"] = speed / (vm_count + 1.0)
        values["rack_vms_per_host"] = ratio(racks.sum(vm_count), racks.size())
        return values
