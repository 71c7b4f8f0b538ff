"""Host tables from the live coordinator.

:func:`build_host_table` (and :func:`build_from_store`) turn the live fleet into a
:class:`~.hosts.HostTable`: telemetry, predictions and liveness from the
:class:`~novacron.coordinator.fleet.FleetSnapshot`; capacity, CPU, NUMA, GPUs, disks,
NICs, zone, aggregates and labels from the inventory each agent sent in its Hello; used
capacity from the VMs each host runs now plus the active claims; rack, power, cost,
carbon, age, compliance, maintenance and VM limits from the operator's inventory file
(:mod:`.inventory_file`), which wins where it speaks. The what-if simulator's
``HOSTS.csv`` and synthetic fleets have their own builders (:mod:`.hosts_csv`,
:mod:`.hosts_synthetic`), so the live service never imports them.

Capacity for VMs: the host's logical CPUs, memory and disks minus the settings'
``reserved_host_*`` (what the hypervisor and the agent keep), or what the inventory file
states. The allocation ratios apply in the capacity filter; only the per NUMA node free
capacity has them built in (see :class:`~.hosts.HostTable`). Agents report no disk or
GPU use per VM, so ``disk_gib_used`` and ``gpus_used`` count claims only.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from novacron.coordinator.fleet import FleetSnapshot, Liveness
from novacron.coordinator.placement.hosts import BoolArray, FloatArray, HostTable, charge_numa
from novacron.coordinator.placement.hosts_columns import GIB_BYTES, MIB_BYTES, TOTALS, assemble
from novacron.coordinator.placement.inventory_file import (
    EMPTY_ENTRY,
    HostEntry,
    InventoryFile,
    csv_list,
)
from novacron.coordinator.placement.settings import PlacementSettings
from novacron.coordinator.store import Store, StoredVm
from novacron.protos.runtime.jsonlog import LogOnce

__all__ = [
    "AgentInventory",
    "AgentInventoryCache",
    "ClaimedResources",
    "assemble",
    "build_from_store",
    "build_host_table",
    "parse_agent_inventory",
]

log = logging.getLogger(__name__)
_once = LogOnce(log)


class ClaimedResources(Protocol):
    """Capacity an active claim holds on a host (the engine's ClaimBook entries)."""

    @property
    def host_id(self) -> str: ...

    @property
    def vcpus(self) -> float: ...

    @property
    def memory_mib(self) -> float: ...

    @property
    def disk_gib(self) -> float: ...

    @property
    def gpus(self) -> float: ...


class AgentInventory(NamedTuple):
    """The parts of an agent's Hello inventory placement uses (None / empty: not sent)."""

    cpu_threads: int | None
    memory_total_bytes: int | None
    numa_threads: tuple[int, ...]  # per NUMA node, in node order
    numa_memory_bytes: tuple[int, ...]
    gpu_count: int
    gpu_model: str  # the most common model
    disk_bytes: int | None  # sum of the disks' capacities
    nic_speed_mbps: float  # fastest link up; NaN: none known
    arch: str
    cpu_model: str
    cpu_flags: tuple[str, ...]
    zone: str
    aggregates: tuple[str, ...]
    labels: Mapping[str, str]


def parse_agent_inventory(node_id: str, document: Mapping[str, Any]) -> AgentInventory:
    """Read the stored Hello inventory (proto field names; uint64 values as strings).

    ``MessageToDict`` leaves out fields at their zero value, so every field may be
    missing. A malformed value counts as not sent, logged once per node.
    """

    def count(value: Any, key: str) -> int | None:
        if value is None:
            return None
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = -1
        if number < 0:
            _once.problem(
                f"{node_id}:{key}",
                logging.WARNING,
                "agent inventory value is not a count; treated as not sent",
                node_id=node_id,
                field=key,
                value=repr(value)[:80],
            )
            return None
        return number

    def items(key: str) -> list[Mapping[str, Any]]:
        value = document.get(key, [])
        return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []

    def strings(key: str) -> tuple[str, ...]:
        value = document.get(key, [])
        return tuple(str(v) for v in value) if isinstance(value, list) else ()

    numa = sorted(
        items("numa_nodes"), key=lambda node: count(node.get("node_index"), "node_index") or 0
    )
    gpus = [str(g.get("model", "")) for g in items("gpus")]
    disks = [count(d.get("capacity_bytes"), "disks.capacity_bytes") or 0 for d in items("disks")]
    speeds = [count(nic.get("speed_mbps"), "nics.speed_mbps") for nic in items("nics")]
    known_speeds = [s for s in speeds if s]
    labels_value = document.get("labels", {})
    labels = (
        {str(k): str(v) for k, v in labels_value.items()}
        if isinstance(labels_value, Mapping)
        else {}
    )
    return AgentInventory(
        cpu_threads=count(document.get("cpu_threads"), "cpu_threads") or None,
        memory_total_bytes=count(document.get("memory_total_bytes"), "memory_total_bytes") or None,
        numa_threads=tuple(
            count(node.get("cpu_threads"), "numa.cpu_threads") or 0 for node in numa
        ),
        numa_memory_bytes=tuple(
            count(node.get("memory_total_bytes"), "numa.memory_total_bytes") or 0 for node in numa
        ),
        gpu_count=len(gpus),
        gpu_model=Counter(gpus).most_common(1)[0][0] if gpus else "",
        disk_bytes=sum(disks) if disks else None,
        nic_speed_mbps=float(max(known_speeds)) if known_speeds else math.nan,
        arch=str(document.get("arch", "")),
        cpu_model=str(document.get("cpu_model", "")),
        cpu_flags=strings("cpu_flags"),
        zone=str(document.get("zone", "")),
        aggregates=strings("aggregates"),
        labels=MappingProxyType(labels),
    )


_NO_INVENTORY = parse_agent_inventory("", {})


class AgentInventoryCache:
    """Parsed Hello inventories by node, parsed again only when a node's document changed.

    Inventories change on a Hello, rarely; comparing a stored document with the one
    parsed last time costs a fraction of parsing it. Keep one per long-lived builder
    (the placement service); it holds only the nodes of the latest build.
    """

    def __init__(self) -> None:
        self._parsed: dict[str, tuple[Mapping[str, Any], AgentInventory]] = {}

    def parse_all(
        self, host_ids: Sequence[str], inventories: Mapping[str, Mapping[str, Any]]
    ) -> list[AgentInventory]:
        parsed: dict[str, tuple[Mapping[str, Any], AgentInventory]] = {}
        result = []
        for host_id in host_ids:
            document = inventories.get(host_id)
            if document is None:
                result.append(_NO_INVENTORY)
                continue
            known = self._parsed.get(host_id)
            if known is None or known[0] != document:
                known = (document, parse_agent_inventory(host_id, document))
            parsed[host_id] = known
            result.append(known[1])
        self._parsed = parsed
        return result


def build_from_store(
    store: Store,
    snapshot: FleetSnapshot,
    *,
    settings: PlacementSettings,
    inventory_file: InventoryFile | None = None,
    claims: Iterable[ClaimedResources] = (),
    vm_groups: Mapping[str, str] | None = None,
    cache: AgentInventoryCache | None = None,
) -> HostTable:
    """:func:`build_host_table` with the inventories and current VMs read from ``store``."""
    return build_host_table(
        snapshot,
        store.inventories(),
        store.current_vms(),
        settings=settings,
        inventory_file=inventory_file,
        claims=claims,
        vm_groups=vm_groups,
        cache=cache,
    )


def build_host_table(
    snapshot: FleetSnapshot,
    inventories: Mapping[str, Mapping[str, Any]],
    vms: Mapping[str, Sequence[StoredVm]],
    *,
    settings: PlacementSettings,
    inventory_file: InventoryFile | None = None,
    claims: Iterable[ClaimedResources] = (),
    vm_groups: Mapping[str, str] | None = None,
    cache: AgentInventoryCache | None = None,
) -> HostTable:
    """The live fleet as a host table, as of ``snapshot.taken_at_seconds``.

    Rows: every node with frames or a Hello, sorted by id. A node with a Hello but no
    frame yet is UNKNOWN. ``inventories``: node id -> stored Hello inventory; ``vms``:
    node id -> the VMs it runs now; ``claims``: active claims (claims on hosts not in the
    fleet are ignored); ``vm_groups``: VM UUID -> server group id, which fills
    ``group_members``; ``cache``: parsed inventories kept from the previous build.
    """
    host_ids = sorted(set(snapshot.node_ids.tolist()) | set(inventories))
    n = len(host_ids)
    row_of = {h: i for i, h in enumerate(host_ids)}
    agents = (cache or AgentInventoryCache()).parse_all(host_ids, inventories)
    file = inventory_file or InventoryFile("")
    entries = [file.entry(h) for h in host_ids] if inventory_file else [EMPTY_ENTRY] * n

    numbers: dict[str, FloatArray] = {}
    numbers.update(_snapshot_columns(snapshot, host_ids))
    numbers.update(_capacity(agents, entries, settings))
    numbers.update(_file_columns(file, entries, agents))

    # Used capacity: the VMs each host runs now, then the claims (charged to NUMA nodes
    # in that order, each to the node with the most free memory, as HostTable.allocate).
    items = _Items()
    group_rows: dict[str, list[int]] = defaultdict(list)
    groups_of = vm_groups or {}
    for host_id, host_vms in vms.items():
        row = row_of.get(host_id)
        if row is None:
            continue
        for vm in host_vms:
            items.add(row, vm.vcpus, vm.memory_bytes / MIB_BYTES)
            group = groups_of.get(vm.vm_uuid)
            if group:
                group_rows[group].append(row)
    for claim in claims:
        row = row_of.get(claim.host_id)
        if row is not None:
            items.add(row, claim.vcpus, claim.memory_mib, claim.disk_gib, claim.gpus)
    numbers.update(items.used(n))
    numa_vcpus, numa_memory = _numa_capacity(agents, numbers, settings)
    item_rows, amounts = items.arrays()
    numa_vcpus, numa_memory = charge_numa(
        numa_vcpus, numa_memory, item_rows, amounts[:, 0], amounts[:, 1]
    )
    groups = {
        g: np.bincount(rows, minlength=n).astype(np.float64) for g, rows in group_rows.items()
    }

    label_keys = sorted(
        {k for a in agents for k in a.labels} | {k for e in entries for k in e.labels}
    )
    labels = {
        key: [
            e.labels.get(key, a.labels.get(key, "")) for a, e in zip(agents, entries, strict=True)
        ]
        for key in label_keys
    }
    return assemble(
        host_ids,
        numbers=numbers,
        texts={
            "zone": [
                e.zone if e.zone is not None else a.zone
                for a, e in zip(agents, entries, strict=True)
            ],
            "arch": [a.arch for a in agents],
            "cpu_model": [a.cpu_model for a in agents],
            "gpu_model": [a.gpu_model for a in agents],
            "rack": [
                e.rack if e.rack is not None else a.labels.get("rack", "")
                for a, e in zip(agents, entries, strict=True)
            ],
        },
        flags={
            "cpu_flags": [a.cpu_flags for a in agents],
            "aggregates": [
                e.aggregates if e.aggregates is not None else a.aggregates
                for a, e in zip(agents, entries, strict=True)
            ],
            "compliance": [
                e.compliance
                if e.compliance is not None
                else csv_list(a.labels.get("compliance", ""))
                for a, e in zip(agents, entries, strict=True)
            ],
        },
        labels=labels,
        numa_free_vcpus=numa_vcpus,
        numa_free_memory_mib=numa_memory,
        features=_snapshot_features(snapshot, host_ids),
        feature_names=snapshot.feature_names,
        group_members=groups,
        taken_at_seconds=snapshot.taken_at_seconds,
    )


def _snapshot_rows(
    snapshot: FleetSnapshot, host_ids: Sequence[str]
) -> tuple[npt.NDArray[np.intp], BoolArray]:
    rows = np.array([snapshot.index.get(h, -1) for h in host_ids], dtype=np.intp)
    return rows, rows >= 0


def _snapshot_columns(snapshot: FleetSnapshot, host_ids: Sequence[str]) -> dict[str, FloatArray]:
    rows, known = _snapshot_rows(snapshot, host_ids)
    n = len(host_ids)
    liveness = np.full(n, float(Liveness.UNKNOWN))
    since = np.full(n, np.nan)
    failure = np.full(n, np.nan)
    anomaly = np.full(n, np.nan)
    liveness[known] = snapshot.status[rows[known]]
    last_seen = snapshot.last_seen_seconds[rows[known]]
    with np.errstate(invalid="ignore"):
        since[known] = np.where(
            np.isfinite(last_seen), snapshot.taken_at_seconds - last_seen, np.nan
        )
    failure[known] = snapshot.failure_probability[rows[known]]
    anomaly[known] = snapshot.anomaly_score[rows[known]]
    return {
        "liveness": liveness,
        "seconds_since_seen": since,
        "failure_probability": failure,
        "anomaly_score": anomaly,
    }


def _snapshot_features(snapshot: FleetSnapshot, host_ids: Sequence[str]) -> npt.NDArray[np.float32]:
    rows, known = _snapshot_rows(snapshot, host_ids)
    features = np.full((len(host_ids), len(snapshot.feature_names)), np.nan, dtype=np.float32)
    features[known] = snapshot.features[rows[known]]
    return features


def _capacity(
    agents: Sequence[AgentInventory], entries: Sequence[HostEntry], settings: PlacementSettings
) -> dict[str, FloatArray]:
    """VM capacity: what the agent reports minus the host reserve, unless the file says."""

    def reported(values: Iterable[float | None]) -> FloatArray:
        return np.array([math.nan if v is None else v for v in values], dtype=np.float64)

    threads = reported(a.cpu_threads for a in agents)
    memory_mib = reported(a.memory_total_bytes for a in agents) / MIB_BYTES
    disk_gib = reported(a.disk_bytes for a in agents) / GIB_BYTES
    columns = {
        "vcpus_total": np.maximum(threads - settings.reserved_host_vcpus, 0.0),
        "memory_mib_total": np.maximum(memory_mib - settings.reserved_host_memory_mib, 0.0),
        "disk_gib_total": np.maximum(disk_gib - settings.reserved_host_disk_gib, 0.0),
        "gpus_total": np.array([float(a.gpu_count) for a in agents]),
    }
    for name, column in columns.items():
        for row, entry in enumerate(entries):
            if name in entry.numbers:
                column[row] = entry.numbers[name]
    return columns


def _file_columns(
    file: InventoryFile, entries: Sequence[HostEntry], agents: Sequence[AgentInventory]
) -> dict[str, FloatArray]:
    """Maintenance, cordon, VM limit and every other number the inventory file sets."""
    columns = {
        "maintenance": np.array([1.0 if e.maintenance else 0.0 for e in entries]),
        "cordoned": np.array([1.0 if e.cordoned else 0.0 for e in entries]),
        "nic_speed_mbps": np.array([a.nic_speed_mbps for a in agents], dtype=np.float64),
    }
    for key in file.number_keys():
        if key in TOTALS:
            continue
        column = columns.get(key, np.full(len(entries), np.nan))
        for row, entry in enumerate(entries):
            if key in entry.numbers:
                column[row] = entry.numbers[key]
        columns[key] = column
    return columns


def _numa_capacity(
    agents: Sequence[AgentInventory], numbers: Mapping[str, FloatArray], settings: PlacementSettings
) -> tuple[FloatArray, FloatArray]:
    """Per NUMA node: its share of the host's VM capacity, times the allocation ratio.

    The share follows the node's threads and memory as the agent reported them, so the
    host reserve (or the inventory file's capacity) is spread over the nodes pro rata.
    """
    width = max((len(a.numa_threads) for a in agents), default=0)
    nan_row = [math.nan] * width
    threads, memory_bytes = [], []
    for agent in agents:
        k = len(agent.numa_threads)
        if k == 0 or sum(agent.numa_threads) == 0 or sum(agent.numa_memory_bytes) == 0:
            threads.append(nan_row)  # no usable topology: NUMA unknown
            memory_bytes.append(nan_row)
        else:
            threads.append([*agent.numa_threads, *nan_row[k:]])
            memory_bytes.append([*agent.numa_memory_bytes, *nan_row[k:]])
    thread_matrix = np.array(threads, dtype=np.float64).reshape(len(agents), width)
    memory_matrix = np.array(memory_bytes, dtype=np.float64).reshape(len(agents), width)
    with np.errstate(invalid="ignore"):
        thread_share = thread_matrix / np.nansum(thread_matrix, axis=1, keepdims=True)
        memory_share = memory_matrix / np.nansum(memory_matrix, axis=1, keepdims=True)
    vcpus = thread_share * (numbers["vcpus_total"] * settings.cpu_allocation_ratio)[:, None]
    memory = memory_share * (numbers["memory_mib_total"] * settings.ram_allocation_ratio)[:, None]
    return vcpus, memory


class _Items:
    """VMs and claims in the order they are charged, as flat columns (one entry each)."""

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.amounts: list[tuple[float, float, float, float]] = []

    def add(
        self, row: int, vcpus: float, memory_mib: float, disk_gib: float = 0.0, gpus: float = 0.0
    ) -> None:
        self.rows.append(row)
        self.amounts.append((vcpus, memory_mib, disk_gib, gpus))

    def arrays(self) -> tuple[npt.NDArray[np.intp], FloatArray]:
        """Host rows and (vcpus, memory_mib, disk_gib, gpus) amounts, one row per item."""
        rows = np.array(self.rows, dtype=np.intp)
        return rows, np.array(self.amounts, dtype=np.float64).reshape(len(self.rows), 4)

    def used(self, n: int) -> dict[str, FloatArray]:
        rows, amounts = self.arrays()
        columns = {
            name: np.bincount(rows, weights=amounts[:, i], minlength=n).astype(np.float64)
            for i, name in enumerate(
                ("vcpus_used", "memory_mib_used", "disk_gib_used", "gpus_used")
            )
        }
        columns["vm_count"] = np.bincount(rows, minlength=n).astype(np.float64)
        return columns
