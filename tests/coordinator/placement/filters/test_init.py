"""Importing the filters package registers every filter, each in its pipeline place."""

from __future__ import annotations

from novacron.coordinator.placement.filters import FILTERS


def test_every_filter_is_registered_once_in_pipeline_order() -> None:
    assert FILTERS.names() == (
        "excluded_hosts",
        "host_state",
        "zone",
        "aggregates",
        "labels",
        "compliance",
        "cpu_arch",
        "cpu_flags",
        "capacity",
        "gpu",
        "numa",
        "server_group",
        "vm_limit",
    )
    orders = [info.order for info in FILTERS]
    assert len(set(orders)) == len(orders)
    assert all(info.default_enabled and info.description for info in FILTERS)
