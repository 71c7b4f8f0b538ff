"""Where the VM may go: zone, aggregates, required labels, compliance tags."""

from __future__ import annotations

import pytest

from novacron.coordinator.placement.filters.aggregates import AggregatesFilter
from novacron.coordinator.placement.filters.base import Filter
from novacron.coordinator.placement.filters.compliance import ComplianceFilter
from novacron.coordinator.placement.filters.labels import LabelsFilter
from novacron.coordinator.placement.filters.zone import ZoneFilter
from tests.coordinator.placement.tables import host_table, rejected, request

HOSTS = host_table(
    [
        {
            "host_id": "a",
            "zone": "z1",
            "aggregates": ("ssd", "gpu"),
            "labels": {"tier": "gold", "team": "ml"},
            "compliance": ("pci-dss", "soc2"),
        },
        {
            "host_id": "b",
            "zone": "z2",
            "aggregates": ("ssd",),
            "labels": {"tier": "silver"},
            "compliance": ("soc2",),
        },
        {"host_id": "c"},
    ]
)


@pytest.mark.parametrize(
    ("filter_class", "fields", "expected"),
    [
        (ZoneFilter, {}, {}),
        (ZoneFilter, {"zone": "z1"}, {"not in zone z1": ["b", "c"]}),
        (ZoneFilter, {"zone": "z9"}, {"not in zone z9": ["a", "b", "c"]}),
        (AggregatesFilter, {}, {}),
        (AggregatesFilter, {"aggregates": ("ssd",)}, {"not in aggregate ssd": ["c"]}),
        (
            AggregatesFilter,
            {"aggregates": ("ssd", "gpu")},
            {"not in aggregate ssd": ["c"], "not in aggregate gpu": ["b", "c"]},
        ),
        (LabelsFilter, {}, {}),
        (
            LabelsFilter,
            {"required_labels": {"tier": "gold"}},
            {"label tier is not 'gold'": ["b", "c"]},
        ),
        (
            LabelsFilter,
            {"required_labels": {"tier": "silver", "team": ""}},
            {"label team is not ''": ["a"], "label tier is not 'silver'": ["a", "c"]},
        ),
        (ComplianceFilter, {}, {}),
        (ComplianceFilter, {"compliance": ("soc2",)}, {"not certified soc2": ["c"]}),
        (
            ComplianceFilter,
            {"compliance": ("pci-dss", "hipaa")},
            {"not certified pci-dss": ["b", "c"], "not certified hipaa": ["a", "b", "c"]},
        ),
    ],
)
def test_scope_filters(
    filter_class: type[Filter], fields: dict[str, object], expected: dict[str, list[str]]
) -> None:
    assert rejected(filter_class, HOSTS, request(**fields)) == expected
