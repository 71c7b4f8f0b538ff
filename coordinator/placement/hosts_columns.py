"""Assembling a :class:`~.hosts.HostTable` from columns, with one meaning for "left out".

Every builder (the live fleet, ``HOSTS.csv``, synthetic fleets, tests) ends here, so a
column a source does not have means the same everywhere: nothing used, no VMs, live,
not in maintenance, not cordoned, no VM limit, no predictions, no NUMA data, no
telemetry.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from novacron.coordinator.fleet import Liveness
from novacron.coordinator.placement.hosts import (
    REQUIRED_FLAGS,
    REQUIRED_TEXTS,
    FlagMatrix,
    FloatArray,
    HostTable,
)
from novacron.models.schema import NODE

MIB_BYTES = 1 << 20
GIB_BYTES = 1 << 30
TOTALS = ("vcpus_total", "memory_mib_total", "disk_gib_total", "gpus_total")

# What a number column left out of assemble() means.
NUMBER_DEFAULTS: Mapping[str, float] = MappingProxyType(
    {
        "disk_gib_total": math.nan,
        "gpus_total": 0.0,
        "vcpus_used": 0.0,
        "memory_mib_used": 0.0,
        "disk_gib_used": 0.0,
        "gpus_used": 0.0,
        "vm_count": 0.0,
        "max_vms": math.nan,
        "liveness": float(Liveness.LIVE),
        "seconds_since_seen": math.nan,
        "maintenance": 0.0,
        "cordoned": 0.0,
        "failure_probability": math.nan,
        "anomaly_score": math.nan,
    }
)

NumaRows = FloatArray | Sequence[Sequence[float]]


def assemble(
    host_ids: Sequence[str],
    *,
    numbers: Mapping[str, npt.ArrayLike],
    texts: Mapping[str, npt.ArrayLike] | None = None,
    flags: Mapping[str, FlagMatrix | Sequence[Iterable[str]]] | None = None,
    labels: Mapping[str, npt.ArrayLike] | None = None,
    numa_free_vcpus: NumaRows | None = None,
    numa_free_memory_mib: NumaRows | None = None,
    features: npt.NDArray[np.float32] | Mapping[str, npt.ArrayLike] | None = None,
    feature_names: tuple[str, ...] = NODE.feature_names,
    group_members: Mapping[str, npt.ArrayLike] | None = None,
    taken_at_seconds: float | None = None,
) -> HostTable:
    """A :class:`HostTable` from columns; what is left out takes its "nothing known" value.

    ``vcpus_total`` and ``memory_mib_total`` are required. Other required numbers default
    to: nothing used, no VMs, live, not in maintenance, not cordoned, no limit, no
    predictions (NaN); texts to ""; flag sets to empty; NUMA to unknown; features to NaN.
    NUMA rows may be ragged (padded with NaN). ``features`` is either the full matrix in
    ``feature_names`` order or a mapping of some feature names to columns.
    """
    n = len(host_ids)
    ids = np.asarray(list(host_ids), dtype=np.str_).reshape(n)
    if len(set(ids.tolist())) != n:
        duplicate = next(h for h, c in Counter(ids.tolist()).items() if c > 1)
        raise ValueError(f"host {duplicate!r} appears twice")
    columns: dict[str, FloatArray] = {}
    for name in ("vcpus_total", "memory_mib_total"):
        if name not in numbers:
            raise ValueError(f"a host table needs the column {name}")
    for name, values in numbers.items():
        columns[name] = _float_column(values, n, name)
    for name, default in NUMBER_DEFAULTS.items():
        if name not in columns:
            columns[name] = np.full(n, default)
    text_columns = {
        name: _text_column((texts or {}).get(name, np.full(n, "", dtype=np.str_)), n, name)
        for name in {*REQUIRED_TEXTS, *(texts or {})}
    }
    flag_columns: dict[str, FlagMatrix] = {}
    for name in {*REQUIRED_FLAGS, *(flags or {})}:
        given = (flags or {}).get(name)
        if isinstance(given, FlagMatrix):
            flag_columns[name] = given
        else:
            flag_columns[name] = FlagMatrix.from_sets(given if given is not None else [()] * n)
        if flag_columns[name].matrix.shape[0] != n:
            raise ValueError(
                f"flag column {name} has {flag_columns[name].matrix.shape[0]} rows, expected {n}"
            )
    label_columns = {
        key: _text_column(values, n, f"label {key}") for key, values in (labels or {}).items()
    }
    numa_vcpus = _numa_matrix(numa_free_vcpus, n)
    numa_memory = _numa_matrix(numa_free_memory_mib, n)
    if numa_vcpus.shape != numa_memory.shape:
        width = max(numa_vcpus.shape[1], numa_memory.shape[1])
        numa_vcpus, numa_memory = _widen(numa_vcpus, width), _widen(numa_memory, width)
    return HostTable(
        taken_at_seconds=time.time() if taken_at_seconds is None else taken_at_seconds,
        host_ids=ids,
        numbers=MappingProxyType(columns),
        texts=MappingProxyType(text_columns),
        flags=MappingProxyType(flag_columns),
        labels=MappingProxyType(label_columns),
        numa_free_vcpus=numa_vcpus,
        numa_free_memory_mib=numa_memory,
        feature_names=feature_names,
        features=_feature_matrix(features, n, feature_names),
        group_members=MappingProxyType(
            {g: _float_column(v, n, f"group {g}") for g, v in (group_members or {}).items()}
        ),
    )


def _float_column(values: npt.ArrayLike, n: int, name: str) -> FloatArray:
    column = np.array(values, dtype=np.float64)
    if column.shape != (n,):
        raise ValueError(f"column {name} has shape {column.shape}, expected ({n},)")
    return column


def _text_column(values: npt.ArrayLike, n: int, name: str) -> npt.NDArray[np.str_]:
    column = np.array(values, dtype=np.str_)
    if n == 0:
        column = column.reshape(0)
    if column.shape != (n,):
        raise ValueError(f"column {name} has shape {column.shape}, expected ({n},)")
    return column


def _numa_matrix(values: NumaRows | None, n: int) -> FloatArray:
    if values is None:
        return np.full((n, 0), np.nan)
    if isinstance(values, np.ndarray):
        matrix = values.astype(np.float64, copy=True)
    else:
        rows = [list(row) for row in values]
        width = max((len(row) for row in rows), default=0)
        matrix = np.full((len(rows), width), np.nan)
        for i, row in enumerate(rows):
            matrix[i, : len(row)] = row
    if matrix.ndim != 2 or matrix.shape[0] != n:
        raise ValueError(f"NUMA matrix has shape {matrix.shape}, expected ({n}, nodes)")
    return matrix


def _widen(matrix: FloatArray, width: int) -> FloatArray:
    wider = np.full((matrix.shape[0], width), np.nan)
    wider[:, : matrix.shape[1]] = matrix
    return wider


def _feature_matrix(
    features: npt.NDArray[np.float32] | Mapping[str, npt.ArrayLike] | None,
    n: int,
    names: tuple[str, ...],
) -> npt.NDArray[np.float32]:
    if isinstance(features, np.ndarray):
        matrix = features.astype(np.float32, copy=True)
        if matrix.shape != (n, len(names)):
            raise ValueError(f"features have shape {matrix.shape}, expected ({n}, {len(names)})")
        return matrix
    matrix = np.full((n, len(names)), np.nan, dtype=np.float32)
    for name, values in (features or {}).items():
        if name not in names:
            raise ValueError(f"unknown node feature {name!r}")
        matrix[:, names.index(name)] = _float_column(values, n, name)
    return matrix
