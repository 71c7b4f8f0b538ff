"""Hosts that must not take new VMs right now, whatever their capacity."""

from __future__ import annotations

import numpy as np

from novacron.coordinator.fleet import Liveness
from novacron.coordinator.placement.filters.base import FILTERS, Filter, Rejection
from novacron.coordinator.placement.hosts import HostTable
from novacron.coordinator.placement.request import PlacementRequest


@FILTERS.register("host_state", order=10)
class HostStateFilter(Filter):
    """Unknown, stale, in maintenance, cordoned, or predicted to fail or behaving oddly.

    An UNKNOWN host's data is too old to place on, so it is always removed; a STALE one
    only while ``avoid_stale_hosts`` is set. Failure probability and anomaly score above
    the settings' thresholds remove a host; a host without predictions (NaN) is not
    removed for lacking them (its risk weighers lower the confidence instead).
    """

    def reject(self, hosts: HostTable, request: PlacementRequest) -> tuple[Rejection, ...]:
        liveness = hosts.numbers["liveness"]
        settings = self.settings
        rejections = [
            Rejection("no recent telemetry (host state unknown)", liveness == Liveness.UNKNOWN),
            Rejection("host in maintenance", hosts.numbers["maintenance"] > 0),
            Rejection("host cordoned", hosts.numbers["cordoned"] > 0),
            Rejection(
                f"predicted failure probability above {settings.max_failure_probability:g}",
                np.greater(hosts.numbers["failure_probability"], settings.max_failure_probability),
            ),
            Rejection(
                f"anomaly score above {settings.max_anomaly_score:g}",
                np.greater(hosts.numbers["anomaly_score"], settings.max_anomaly_score),
            ),
        ]
        if settings.avoid_stale_hosts:
            rejections.insert(1, Rejection("telemetry is stale", liveness == Liveness.STALE))
        return tuple(rejections)
