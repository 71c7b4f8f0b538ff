"""Small hand-built host tables for placement tests: one dict per host.

Every column a row leaves out takes the value of a healthy, empty, live host
(:data:`HEALTHY`), so a test row names only what the test is about::

    hosts = host_table([{"host_id": "a", "vcpus_used": 30}, {"zone": "z2"}])

Keys: ``host_id`` (default ``h<row>``); any number column (required ones and extras
such as ``power_idle_watts``); the text columns (``zone``, ``arch``, ``gpu_model`` ...);
the flag columns as iterables of strings (``cpu_flags``, ``aggregates``,
``compliance``); ``labels`` as a dict; ``numa_free_vcpus`` / ``numa_free_memory_mib`` as
lists (free per host NUMA node; hosts without them have no NUMA data); any NODE feature
by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from novacron.coordinator.placement.filters.base import Filter
from novacron.coordinator.placement.hosts import (
    REQUIRED_FLAGS,
    REQUIRED_NUMBERS,
    REQUIRED_TEXTS,
    HostTable,
)
from novacron.coordinator.placement.hosts_columns import NUMBER_DEFAULTS, assemble
from novacron.coordinator.placement.request import PlacementRequest
from novacron.coordinator.placement.settings import PlacementSettings
from novacron.models.schema import NODE

# A live, healthy, empty host with 32 vCPUs, 128 GiB and 1 TB of disk: the builder's
# defaults for a column left out, with the capacity and health a test host needs.
HEALTHY: Mapping[str, float] = {
    **NUMBER_DEFAULTS,
    "vcpus_total": 32.0,
    "memory_mib_total": 131072.0,
    "disk_gib_total": 1000.0,
    "seconds_since_seen": 5.0,
    "failure_probability": 0.01,
    "anomaly_score": 0.05,
}
_NUMA_KEYS = ("numa_free_vcpus", "numa_free_memory_mib")


def host_table(
    rows: Sequence[Mapping[str, Any]],
    *,
    taken_at_seconds: float = 1_700_000_000.0,
    group_members: Mapping[str, Sequence[float]] | None = None,
) -> HostTable:
    """A HostTable with one row per dict (see the module docstring for the keys)."""
    host_ids = [str(row.get("host_id", f"h{i}")) for i, row in enumerate(rows)]
    keys = {key for row in rows for key in row} - {"host_id", "labels", *_NUMA_KEYS}
    text_keys = {k for k in keys if k in REQUIRED_TEXTS or _is_text(rows, k)}
    flag_keys = keys & set(REQUIRED_FLAGS)
    feature_keys = keys & set(NODE.feature_names)
    number_keys = (set(REQUIRED_NUMBERS) | keys) - text_keys - flag_keys - feature_keys
    numbers = {
        name: [float(row.get(name, HEALTHY.get(name, np.nan))) for row in rows]
        for name in sorted(number_keys)
    }
    label_keys = sorted({key for row in rows for key in row.get("labels", {})})
    numa = {
        key: [list(row.get(key, ())) for row in rows] if any(key in row for row in rows) else None
        for key in _NUMA_KEYS
    }
    return assemble(
        host_ids,
        numbers=numbers,
        texts={name: [str(row.get(name, "")) for row in rows] for name in text_keys},
        flags={name: [tuple(row.get(name, ())) for row in rows] for name in flag_keys},
        labels={key: [row.get("labels", {}).get(key, "") for row in rows] for key in label_keys},
        numa_free_vcpus=numa["numa_free_vcpus"],
        numa_free_memory_mib=numa["numa_free_memory_mib"],
        features={name: [row.get(name, np.nan) for row in rows] for name in feature_keys},
        group_members={g: list(v) for g, v in (group_members or {}).items()} or None,
        taken_at_seconds=taken_at_seconds,
    )


def _is_text(rows: Sequence[Mapping[str, Any]], key: str) -> bool:
    return any(isinstance(row.get(key), str) for row in rows)


def rejected(
    filter_class: type[Filter],
    hosts: HostTable,
    request: PlacementRequest,
    settings: PlacementSettings | None = None,
) -> dict[str, list[str]]:
    """What one filter removes: reason -> host ids (reasons that remove nobody left out)."""
    verdict = filter_class(settings or PlacementSettings()).verdict(hosts, request)
    return {
        rejection.reason: hosts.host_ids[rejection.hosts].tolist()
        for rejection in verdict.rejections
    }


def request(**fields: Any) -> PlacementRequest:
    """A 2 vCPU / 4 GiB request with ``fields`` changed."""
    return PlacementRequest(**{"vcpus": 2, "memory_mib": 4096, **fields})
