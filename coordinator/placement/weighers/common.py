"""Column helpers every weigher shares: telemetry columns, safe ratios, capacity, groups.

Weighers run on every ``SelectHosts`` call over every host (the 10k-host budget for a
whole selection is 10 ms), so anything that only depends on the fleet snapshot, not on
the request, is computed once per snapshot array and cached: the float64 telemetry
matrix, text columns split into groups (racks, zones, GPU models) and per-row flag
counts. :meth:`HostTable.allocate` copies only the columns it changes, so these arrays,
and with them the cache entries, are shared by every table derived from one snapshot
(claims, what-if simulation steps).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from novacron.coordinator.placement.factors import Factor
from novacron.coordinator.placement.hosts import BoolArray, FloatArray, HostTable
from novacron.coordinator.placement.request import GroupPolicy, PlacementRequest, ServerGroup
from novacron.coordinator.placement.settings import PlacementSettings

IntArray = npt.NDArray[np.intp]
ValueT = TypeVar("ValueT")

# Resources a host offers, as the HostTable column prefixes and PlacementRequest fields.
RESOURCES = ("vcpus", "memory_mib", "disk_gib", "gpus")


class IdentityCache(Generic[ValueT]):
    """Values derived from (read-only) arrays, kept exactly as long as those arrays live.

    Keyed by the arrays' identity (numpy arrays are unhashable, and comparing contents
    would cost as much as recomputing) plus an optional hashable ``extra`` (a setting the
    value depends on). Weak references drop an entry as soon as one of its arrays goes,
    so a cache never outlives the snapshots it serves. Host-table arrays are read-only,
    which is what makes identity a sound key.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[object, ...], tuple[tuple[weakref.ref[Any], ...], ValueT]] = {}
        self._lock = threading.Lock()

    def get(
        self, arrays: tuple[Any, ...], compute: Callable[[], ValueT], extra: object = None
    ) -> ValueT:
        key = (*(id(array) for array in arrays), extra)
        entry = self._entries.get(key)
        if entry is not None and all(
            ref() is array for ref, array in zip(entry[0], arrays, strict=True)
        ):
            return entry[1]
        value = compute()

        def forget(_: weakref.ref[Any]) -> None:
            with self._lock:
                current = self._entries.get(key)
                if current is not None and current[0] is refs:
                    del self._entries[key]

        refs = tuple(weakref.ref(array, forget) for array in arrays)
        with self._lock:
            self._entries[key] = (refs, value)
        return value

    def __len__(self) -> int:
        return len(self._entries)


_TELEMETRY: IdentityCache[npt.NDArray[np.float64]] = IdentityCache()
_COVERAGE: IdentityCache[FloatArray] = IdentityCache()


def readonly(array: FloatArray) -> FloatArray:
    """``array``, made read-only: cached values are shared by every caller."""
    array.setflags(write=False)
    return array


def telemetry(hosts: HostTable, name: str) -> FloatArray:
    """NODE feature ``name`` for every host as float64 (read-only); NaN = no data.

    A table built without that feature (an older schema, a test table, a simulator
    fleet without telemetry) reads as all-NaN, like a missing inventory column.
    """
    try:
        column = hosts.feature_names.index(name)
    except ValueError:
        return np.full(len(hosts), np.nan)
    matrix = _TELEMETRY.get(
        (hosts.features,),
        lambda: readonly(np.ascontiguousarray(hosts.features.T, dtype=np.float64)),
    )
    values: FloatArray = matrix[column]
    return values


TELEMETRY_SOURCE = "telemetry:"


def plain_feature(factor: Factor) -> str | None:
    """The NODE feature a factor reads unchanged (source ``telemetry:<feature>``), else None."""
    name = factor.source.removeprefix(TELEMETRY_SOURCE)
    if name == factor.source or not name.isidentifier():
        return None
    return name


def plain_telemetry(hosts: HostTable, factors: tuple[Factor, ...]) -> dict[str, FloatArray]:
    """Factor id -> raw value for the ``factors`` that are one NODE feature as is.

    The factor's ``source`` names the feature, so the catalogue and the computation
    cannot disagree about where a value comes from.
    """
    out: dict[str, FloatArray] = {}
    for factor in factors:
        name = plain_feature(factor)
        if name is not None:
            out[factor.factor_id] = telemetry(hosts, name)
    return out


def telemetry_coverage(hosts: HostTable) -> FloatArray:
    """Share of the NODE features each host reported (1 = all; NaN without a schema)."""
    if not hosts.feature_names:
        return np.full(len(hosts), np.nan)
    return _COVERAGE.get(
        (hosts.features,),
        lambda: readonly(np.mean(~np.isnan(hosts.features), axis=1, dtype=np.float64)),
    )


def ratio(numerator: FloatArray | float, denominator: FloatArray) -> FloatArray:
    """``numerator / denominator`` with NaN where the denominator is not positive."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out: FloatArray = np.divide(numerator, denominator)
    out[denominator <= 0] = np.nan  # NaN denominators give NaN by themselves
    return out


def nan_to(values: FloatArray, fill: float) -> FloatArray:
    """A copy of ``values`` with NaN replaced by ``fill``."""
    out = values.copy()
    out[np.isnan(out)] = fill
    return out


def allocation_ratio(settings: PlacementSettings, resource: str) -> float:
    """Overcommit ratio of ``resource`` (GPUs are never overcommitted)."""
    if resource == "vcpus":
        return settings.cpu_allocation_ratio
    if resource == "memory_mib":
        return settings.ram_allocation_ratio
    if resource == "disk_gib":
        return settings.disk_allocation_ratio
    return 1.0


_CAPACITY: IdentityCache[FloatArray] = IdentityCache()
_FREE: IdentityCache[FloatArray] = IdentityCache()
_PER_UNIT: IdentityCache[FloatArray] = IdentityCache()
_FREE_SHARE: IdentityCache[FloatArray] = IdentityCache()


def capacity(hosts: HostTable, settings: PlacementSettings, resource: str) -> FloatArray:
    """What ``resource`` the host can allocate in all, overcommit included (read-only)."""
    total = hosts.numbers[f"{resource}_total"]
    factor = allocation_ratio(settings, resource)
    return _CAPACITY.get((total,), lambda: readonly(total * factor), factor)


def free(hosts: HostTable, settings: PlacementSettings, resource: str) -> FloatArray:
    """Unallocated ``resource`` after overcommit (negative: overcommitted already;
    read-only). Computed once per table for all weighers sharing it."""
    used = hosts.numbers[f"{resource}_used"]
    allocatable = capacity(hosts, settings, resource)
    return _FREE.get((allocatable, used), lambda: readonly(allocatable - used))


def per_unit(hosts: HostTable, settings: PlacementSettings, resource: str) -> FloatArray:
    """Share of the allocatable ``resource`` one unit takes: 1 / capacity (NaN: none)."""
    allocatable = capacity(hosts, settings, resource)
    return _PER_UNIT.get((allocatable,), lambda: readonly(ratio(1.0, allocatable)))


def free_share(hosts: HostTable, settings: PlacementSettings, resource: str) -> FloatArray:
    """Free ``resource`` as a share of the allocatable amount (NaN: host has none)."""
    unallocated = free(hosts, settings, resource)
    unit = per_unit(hosts, settings, resource)
    return _FREE_SHARE.get((unallocated, unit), lambda: readonly(unallocated * unit))


def requested(request: PlacementRequest, resource: str) -> float:
    """How much of ``resource`` the VM asks for (the request fields share the names)."""
    return float(getattr(request, resource))


def zeros(hosts: HostTable) -> FloatArray:
    """The raw value of a factor that does not apply to this request: the same on every
    host, so it moves no host against another (and, unlike NaN, costs no confidence)."""
    return np.zeros(len(hosts))


def indicator(condition: BoolArray, known: BoolArray | None = None) -> FloatArray:
    """1.0 where ``condition`` holds, else 0.0; NaN where ``known`` is False."""
    values = condition.astype(np.float64)
    if known is not None:
        values[~known] = np.nan
    return values


@dataclass(frozen=True, eq=False)
class Groups:
    """A text column split into its distinct values: ``values[inverse[row]]`` is row's.

    Per-group results come back per host (the group's value repeated on each of its
    hosts), NaN for hosts whose text is "" (group not known).
    """

    values: tuple[str, ...]
    inverse: IntArray  # group index of every host
    known: BoolArray  # False where the text is "" (not set)
    sizes: FloatArray  # hosts per group, indexed like ``values``
    all_known: bool

    def _per_host(self, per_group: FloatArray) -> FloatArray:
        values = per_group[self.inverse]
        if not self.all_known:
            values[~self.known] = np.nan
        return values

    def sum(self, column: FloatArray, *, skip_nan: bool = False) -> FloatArray:
        """Per host, ``column`` summed over the host's group. A NaN entry makes its
        group's sum NaN unless ``skip_nan`` (then it counts as 0)."""
        if skip_nan:
            column = nan_to(column, 0.0)
        return self._per_host(self._bincount(column))

    def mean(self, column: FloatArray) -> FloatArray:
        """Per host, the mean of ``column`` over its group's hosts that have a value."""
        totals = self._bincount(nan_to(column, 0.0))
        counts = self._bincount((~np.isnan(column)).astype(np.float64))
        return self._per_host(ratio(totals, counts))

    def _bincount(self, weights: FloatArray) -> FloatArray:
        """Per group, the sum of ``weights`` over its hosts."""
        return np.asarray(np.bincount(self.inverse, weights, len(self.values)), dtype=np.float64)

    def size(self) -> FloatArray:
        """Per host, how many hosts share its group."""
        return self._per_host(self.sizes)

    def lookup(self, scores: Mapping[str, float], default: float) -> FloatArray:
        """Per host, ``scores`` of its value (``default`` for values not in ``scores``);
        one Python step per distinct value, never per host."""
        per_value = np.array([scores.get(v, default) for v in self.values], dtype=np.float64)
        return per_value[self.inverse] if self.values else np.full(len(self.inverse), default)


_GROUPS: IdentityCache[Groups] = IdentityCache()


def groups(hosts: HostTable, text: str) -> Groups:
    """The hosts grouped by text column ``text`` ("rack", "zone", "gpu_model" ...)."""
    column = hosts.texts[text]

    def split() -> Groups:
        values, inverse = np.unique(column, return_inverse=True)
        inverse = inverse.reshape(-1).astype(np.intp)
        inverse.setflags(write=False)
        known = column != ""
        known.setflags(write=False)
        sizes = readonly(np.bincount(inverse, minlength=len(values)).astype(np.float64))
        return Groups(tuple(str(v) for v in values), inverse, known, sizes, bool(known.all()))

    return _GROUPS.get((column,), split)


_FLAG_COUNTS: IdentityCache[FloatArray] = IdentityCache()


def flag_counts(hosts: HostTable, flags: str) -> FloatArray:
    """How many values of set column ``flags`` each host carries."""
    matrix = hosts.flags[flags].matrix
    return _FLAG_COUNTS.get(
        (matrix,), lambda: readonly(matrix.sum(axis=1, dtype=np.intp).astype(np.float64))
    )


def group_member_counts(hosts: HostTable, group: ServerGroup) -> FloatArray:
    """Members of ``group`` on each host.

    Two sources describe the same VMs: the table (VMs the coordinator knows run, plus
    claims) and the request (hosts the scheduler says run members). The larger count per
    host wins, so a member known to both is counted once and one known to either counts.
    """
    counts = hosts.group_members.get(group.group_id)
    members = np.zeros(len(hosts)) if counts is None else counts.copy()
    if group.member_hosts:
        listed = np.zeros(len(hosts))
        for host in group.member_hosts:  # one step per member, never per host
            row = hosts.index.get(host)
            if row is not None:
                listed[row] += 1.0
        np.maximum(members, listed, out=members)
    return members


def soft_group(request: PlacementRequest, policy: GroupPolicy) -> ServerGroup | None:
    """The request's server group if it is soft and has ``policy`` (hard ones are
    filters' business)."""
    group = request.server_group
    if group is None or group.hard or group.policy is not policy:
        return None
    return group


def group_with(request: PlacementRequest, policy: GroupPolicy) -> ServerGroup | None:
    """The request's server group, hard or soft, if it has ``policy``."""
    group = request.server_group
    if group is None or group.policy is not policy:
        return None
    return group
