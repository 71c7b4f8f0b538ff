"""The host table placement decides over: immutable numpy columns, one row per host.

Built by :mod:`.hosts_build` from the fleet snapshot (telemetry, predictions,
liveness), the inventory the agents sent, the operator's static inventory file
(rack, power, cost, carbon, age, compliance, maintenance), the VMs each host runs and
the active claims. The simulator builds it from ``HOSTS.csv`` instead. Filters and
weighers only ever read a :class:`HostTable`; it never changes once built (every array
is read-only), and :meth:`HostTable.allocate` returns a new table, which is how
what-if simulation and claims see capacity being used.

Numeric columns (``numbers``) use fixed units in their names; NaN means "not known".
The columns in :data:`REQUIRED_NUMBERS` are always present; an inventory file or
``HOSTS.csv`` may add more (any column named after a catalog factor id overrides that
factor's computed raw value, see :mod:`.engine`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# name -> meaning; every builder fills all of them (NaN where unknown).
REQUIRED_NUMBERS: Mapping[str, str] = MappingProxyType(
    {
        "vcpus_total": "logical CPUs the host offers to VMs (before overcommit)",
        "memory_mib_total": "memory the host offers to VMs, MiB (before overcommit)",
        "disk_gib_total": "local disk for VM images, GiB (before overcommit)",
        "gpus_total": "whole GPUs that can be passed through",
        "vcpus_used": "vCPUs allocated to VMs and active claims",
        "memory_mib_used": "memory allocated to VMs and active claims, MiB",
        "disk_gib_used": "disk allocated to VMs and active claims, GiB",
        "gpus_used": "GPUs allocated to VMs and active claims",
        "vm_count": "VMs on the host, claims included",
        "max_vms": "operator limit on VMs per host (NaN: none)",
        "liveness": "fleet liveness code: 0 live, 1 stale, 2 unknown",
        "seconds_since_seen": "seconds since the host's last frame (NaN: never)",
        "maintenance": "1 while the host is in maintenance, else 0",
        "cordoned": "1 while the host is cordoned (no new VMs), else 0",
        "failure_probability": "highest failure probability of the latest frame (NaN: none)",
        "anomaly_score": "highest anomaly score of the latest frame (NaN: none)",
    }
)

# name -> meaning; "" where unknown.
REQUIRED_TEXTS: Mapping[str, str] = MappingProxyType(
    {
        "zone": "availability zone",
        "arch": "machine architecture, e.g. x86_64",
        "cpu_model": "CPU model string",
        "gpu_model": "GPU product of the host's GPUs (the most common one)",
        "rack": "rack name from the inventory file or the 'rack' label",
    }
)

# name -> meaning of the FlagMatrix columns.
REQUIRED_FLAGS: Mapping[str, str] = MappingProxyType(
    {
        "cpu_flags": "CPU feature flags (/proc/cpuinfo)",
        "aggregates": "host aggregates",
        "compliance": "compliance tags (inventory file or the comma list in label 'compliance')",
    }
)


def _readonly(array: BoolArray) -> BoolArray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class FlagMatrix:
    """Set-valued column as a boolean matrix: row = host, column = one known value."""

    vocabulary: tuple[str, ...]
    matrix: BoolArray  # (hosts, len(vocabulary))

    @classmethod
    def from_sets(cls, rows: Sequence[Iterable[str]]) -> FlagMatrix:
        sets = [frozenset(row) for row in rows]
        vocabulary = tuple(sorted(set().union(*sets))) if sets else ()
        column = {name: i for i, name in enumerate(vocabulary)}
        matrix = np.zeros((len(sets), len(vocabulary)), dtype=np.bool_)
        for row, values in enumerate(sets):
            for value in values:
                matrix[row, column[value]] = True
        return cls(vocabulary, _readonly(matrix))

    def has_all(self, names: Iterable[str]) -> BoolArray:
        """Hosts carrying every one of ``names`` (a name no host has: no host passes)."""
        result = np.ones(self.matrix.shape[0], dtype=np.bool_)
        for name in names:
            try:
                result &= self.matrix[:, self.vocabulary.index(name)]
            except ValueError:
                return np.zeros(self.matrix.shape[0], dtype=np.bool_)
        return result

    def values(self, row: int) -> frozenset[str]:
        return frozenset(np.asarray(self.vocabulary, dtype=object)[self.matrix[row]])


@dataclass(frozen=True, eq=False)
class HostTable:
    """Every host at one instant; row ``i`` of every column is host ``host_ids[i]``."""

    taken_at_seconds: float
    host_ids: npt.NDArray[np.str_]
    numbers: Mapping[str, FloatArray]
    texts: Mapping[str, npt.NDArray[np.str_]]
    flags: Mapping[str, FlagMatrix]
    labels: Mapping[str, npt.NDArray[np.str_]]  # label key -> value per host ("" unset)
    # Free capacity per host NUMA node, in the units a request asks for: the node's share
    # of the host's capacity times the allocation ratio of the settings the table was built
    # with, minus what is charged to the node. NaN padding past the host's node count; a
    # host with no NUMA data is all NaN.
    numa_free_vcpus: FloatArray  # (hosts, max NUMA nodes)
    numa_free_memory_mib: FloatArray  # (hosts, max NUMA nodes)
    feature_names: tuple[str, ...]  # columns of ``features`` (the NODE schema)
    features: npt.NDArray[np.float32]  # (hosts, features); NaN = no data
    # Server group id -> members of that group on each host (from current VMs).
    group_members: Mapping[str, FloatArray] = field(default_factory=dict)
    index: Mapping[str, int] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "index", MappingProxyType({h: i for i, h in enumerate(self.host_ids)})
        )
        for mapping in (self.numbers, self.texts, self.labels, self.group_members):
            for array in mapping.values():
                array.setflags(write=False)
        for array in (self.host_ids, self.numa_free_vcpus, self.numa_free_memory_mib):
            array.setflags(write=False)
        self.features.setflags(write=False)
        missing = [name for name in REQUIRED_NUMBERS if name not in self.numbers]
        missing += [name for name in REQUIRED_TEXTS if name not in self.texts]
        missing += [name for name in REQUIRED_FLAGS if name not in self.flags]
        if missing:
            raise ValueError(f"host table lacks required columns: {', '.join(missing)}")

    def __len__(self) -> int:
        return len(self.host_ids)

    def number(self, name: str) -> FloatArray:
        """Numeric column ``name``; an unknown column is all NaN (optional data)."""
        column = self.numbers.get(name)
        if column is None:
            return np.full(len(self), np.nan)
        return column

    def feature(self, name: str) -> FloatArray:
        """NODE feature ``name`` for every host as float64 (NaN = no data)."""
        return self.features[:, self.feature_names.index(name)].astype(np.float64)

    def label(self, key: str) -> npt.NDArray[np.str_]:
        column = self.labels.get(key)
        if column is None:
            return np.full(len(self), "", dtype=np.str_)
        return column

    def free(self, resource: str, allocation_ratio: float = 1.0) -> FloatArray:
        """Free ``resource`` ("vcpus", "memory_mib", "disk_gib", "gpus") after overcommit."""
        total = self.numbers[f"{resource}_total"] * allocation_ratio
        return total - self.numbers[f"{resource}_used"]

    def allocate(
        self,
        row: int,
        *,
        vcpus: float,
        memory_mib: float,
        disk_gib: float = 0.0,
        gpus: float = 0.0,
        vms: int = 1,
        group_id: str = "",
    ) -> HostTable:
        """A new table with the resources added on host ``row`` (negative: released).

        Only the changed columns are copied, so a simulator can call this per request.
        NUMA free capacity is charged to the host's freest node (an approximation the
        NUMA filter's fit check shares).
        """
        return self.allocate_many(
            (Allocation(row, vcpus, memory_mib, disk_gib, gpus, vms, group_id),)
        )

    def allocate_many(self, allocations: Sequence[Allocation]) -> HostTable:
        """:meth:`allocate` of each of ``allocations`` in turn, in one step.

        The result is exactly that of the chained calls (the sums are taken in the same
        order, and a host's allocations are charged to its NUMA nodes one after the
        other), but each changed column is copied once and the work is a few numpy passes
        however many allocations there are: a live table folds every active claim onto
        the last fleet snapshot on each change of the claims.
        """
        if not allocations:
            return self
        rows = np.fromiter((a.row for a in allocations), dtype=np.intp, count=len(allocations))
        amounts = np.array(
            [(a.vcpus, a.memory_mib, a.disk_gib, a.gpus, a.vms) for a in allocations],
            dtype=np.float64,
        )
        numbers = dict(self.numbers)
        for i, name in enumerate(
            ("vcpus_used", "memory_mib_used", "disk_gib_used", "gpus_used", "vm_count")
        ):
            column = numbers[name].copy()
            np.add.at(column, rows, amounts[:, i])  # unbuffered, in order: like a loop
            numbers[name] = column
        numa_vcpus, numa_memory = charge_numa(
            self.numa_free_vcpus, self.numa_free_memory_mib, rows, amounts[:, 0], amounts[:, 1]
        )
        groups = dict(self.group_members)
        for group_id in dict.fromkeys(a.group_id for a in allocations if a.group_id):
            mine = [i for i, a in enumerate(allocations) if a.group_id == group_id]
            members = groups.get(group_id, np.zeros(len(self))).copy()
            np.add.at(members, rows[mine], amounts[mine, 4])
            groups[group_id] = members
        return replace(
            self,
            numbers=MappingProxyType(numbers),
            numa_free_vcpus=numa_vcpus,
            numa_free_memory_mib=numa_memory,
            group_members=MappingProxyType(groups),
        )


class Allocation(NamedTuple):
    """Resources added on host ``row`` by :meth:`HostTable.allocate_many` (negative:
    released); the arguments of :meth:`HostTable.allocate`."""

    row: int
    vcpus: float
    memory_mib: float
    disk_gib: float = 0.0
    gpus: float = 0.0
    vms: int = 1
    group_id: str = ""


def charge_numa(
    numa_vcpus: FloatArray,
    numa_memory_mib: FloatArray,
    rows: npt.NDArray[np.intp],
    vcpus: FloatArray,
    memory_mib: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Per-node free capacity after charging each item, in order, to the node of its
    host with the most free memory at that moment (hosts without NUMA data: unchanged).

    Returns the inputs themselves when nothing is charged, else new arrays. Vectorised
    over hosts: step ``j`` charges every host's ``j``-th item at once.
    """
    if numa_vcpus.shape[1] == 0 or not len(rows):
        return numa_vcpus, numa_memory_mib
    known = ~np.all(np.isnan(numa_memory_mib[rows]), axis=1)
    if not known.any():
        return numa_vcpus, numa_memory_mib
    rows, vcpus, memory_mib = rows[known], vcpus[known], memory_mib[known]
    numa_vcpus, numa_memory_mib = numa_vcpus.copy(), numa_memory_mib.copy()
    order = np.argsort(rows, kind="stable")  # by host, keeping each host's order
    rows, vcpus, memory_mib = rows[order], vcpus[order], memory_mib[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
    for j in range(int(rank.max()) + 1):
        step = rank == j
        hosts = rows[step]
        free = np.where(np.isnan(numa_memory_mib[hosts]), -np.inf, numa_memory_mib[hosts])
        nodes = np.argmax(free, axis=1)
        numa_vcpus[hosts, nodes] -= vcpus[step]
        numa_memory_mib[hosts, nodes] -= memory_mib[step]
    return numa_vcpus, numa_memory_mib
