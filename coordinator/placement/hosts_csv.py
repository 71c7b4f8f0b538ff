"""The what-if simulator's fleet: ``HOSTS.csv`` to a :class:`~.hosts.HostTable`.

Operators describe a fleet they have or plan in a spreadsheet; tests and benchmarks
describe traces the same way. The file is strict: every error names the file, the line
and the column, because a silently misread capacity makes every simulated answer wrong.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

from novacron.coordinator.placement.hosts import REQUIRED_NUMBERS, HostTable
from novacron.coordinator.placement.hosts_columns import NUMBER_DEFAULTS, assemble
from novacron.coordinator.placement.inventory_file import (
    check_column_names,
    csv_bool,
    csv_labels,
    csv_list,
    read_host_csv,
)
from novacron.coordinator.placement.settings import PlacementSettings
from novacron.models.schema import NODE
from novacron.protos.runtime.tomlconfig import ConfigError

# HOSTS.csv column -> host table number column.
_CSV_NUMBERS: Mapping[str, str] = MappingProxyType(
    {
        "vcpus": "vcpus_total",
        "memory_mib": "memory_mib_total",
        "gpus": "gpus_total",
        "disk_gib": "disk_gib_total",
        **{name: name for name in REQUIRED_NUMBERS},
    }
)
_CSV_REQUIRED = ("host_id", "vcpus", "memory_mib")
_CSV_TEXTS = ("gpu_model", "zone", "arch", "cpu_model", "rack")
_CSV_FLAGS = ("cpu_flags", "aggregates", "compliance")
_CSV_BOOLS = ("maintenance", "cordoned")


@dataclass
class _CsvColumns:
    host_ids: list[str]
    numbers: dict[str, list[float]]
    texts: dict[str, list[str]]
    flags: dict[str, list[list[str]]]
    labels: dict[str, dict[int, str]]
    numa_nodes: list[float]
    features: dict[str, list[float]]


def hosts_from_csv(
    path: Path, *, settings: PlacementSettings | None = None, taken_at_seconds: float | None = None
) -> HostTable:
    """The fleet a what-if simulation runs on, from ``HOSTS.csv``.

    Columns: ``host_id, vcpus, memory_mib`` (required), ``gpus, gpu_model, zone`` and
    optionally ``disk_gib``, ``numa_nodes`` (capacity split evenly over that many nodes),
    any host table number (``vcpus_used``, ``max_vms``, ``failure_probability`` ...),
    ``arch, cpu_model, rack``, ``cpu_flags, aggregates, compliance`` (``;`` lists),
    ``labels`` (``key=value;...``) or ``labels.<key>``, a NODE feature by name, and any
    other column as a numeric column of that name (a catalog factor id overrides that
    factor). An empty numeric cell is "not known" (NaN). Hosts are live and, unless the
    file says otherwise, empty. Errors name the file, the line and the column.
    """
    settings = settings or PlacementSettings()
    _, rows = read_host_csv(
        path,
        what="hosts file",
        header_hint="a header: host_id, vcpus, memory_mib, ...",
        check_header=_check_csv_header,
    )
    columns = _CsvColumns(
        [],
        defaultdict(list),
        defaultdict(list),
        defaultdict(list),
        defaultdict(dict),
        [],
        defaultdict(list),
    )
    for where, cells in rows:
        _read_csv_row(columns, cells, where)
    return _csv_table(columns, settings, taken_at_seconds)


def _check_csv_header(header: list[str], where: str) -> None:
    check_column_names(header, where)
    for name in _CSV_REQUIRED:
        if name not in header:
            raise ConfigError(where, name, f"missing column (required: {', '.join(_CSV_REQUIRED)})")
    targets = [_CSV_NUMBERS[name] for name in header if name in _CSV_NUMBERS]
    for target in targets:
        if targets.count(target) > 1:
            raise ConfigError(
                where, target, "given twice (under its HOSTS.csv name and as a column)"
            )


def _read_csv_row(columns: _CsvColumns, cells: Mapping[str, str], where: str) -> None:
    row = len(columns.host_ids)
    columns.host_ids.append(cells["host_id"])
    numa = math.nan
    for name, text in cells.items():
        if name == "host_id":
            continue
        if name in _CSV_TEXTS:
            columns.texts[name].append(text)
        elif name in _CSV_FLAGS:
            columns.flags[name].append(csv_list(text))
        elif name == "labels":
            try:
                for key, value in csv_labels(text).items():
                    columns.labels[key][row] = value
            except ValueError as exc:
                raise ConfigError(where, name, str(exc)) from None
        elif name.startswith("labels."):
            if text:
                columns.labels[name.removeprefix("labels.")][row] = text
        elif name == "numa_nodes":
            numa = _csv_number(text, where, name, minimum=1.0, integer=True)
        elif name in _CSV_NUMBERS:
            columns.numbers[_CSV_NUMBERS[name]].append(_csv_host_number(name, text, where))
        elif name in NODE.feature_names:
            columns.features[name].append(_csv_number(text, where, name))
        else:
            columns.numbers[name].append(_csv_number(text, where, name))
    columns.numa_nodes.append(numa)


def _csv_host_number(name: str, text: str, where: str) -> float:
    target = _CSV_NUMBERS[name]
    if not text:
        if name in _CSV_REQUIRED:
            raise ConfigError(where, name, "required, but empty")
        return NUMBER_DEFAULTS.get(target, math.nan)  # unused, live, no limit, not known
    if name in _CSV_BOOLS and not _is_number(text):
        try:
            return 1.0 if csv_bool(text) else 0.0
        except ValueError as exc:
            raise ConfigError(where, name, str(exc)) from None
    if name == "liveness" and text not in ("0", "1", "2"):
        raise ConfigError(where, name, f"expected 0 (live), 1 (stale) or 2 (unknown), got {text!r}")
    integer = target in ("vcpus_total", "gpus_total", "gpus_used", "vm_count", "max_vms")
    return _csv_number(text, where, name, minimum=0.0, integer=integer)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_number(
    text: str, where: str, name: str, *, minimum: float | None = None, integer: bool = False
) -> float:
    if not text:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ConfigError(where, name, f"expected {kind}, got {text!r}") from None
    if not math.isfinite(value):
        raise ConfigError(where, name, f"expected a finite number, got {text!r}")
    if integer and not value.is_integer():
        raise ConfigError(where, name, f"expected an integer, got {text!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(where, name, f"must be >= {minimum:g}, got {text!r}")
    return value


def _csv_table(
    columns: _CsvColumns, settings: PlacementSettings, taken_at_seconds: float | None
) -> HostTable:
    numbers = {name: np.array(values) for name, values in columns.numbers.items()}
    n = len(columns.host_ids)
    nodes = np.array(columns.numa_nodes, dtype=np.float64)
    width = int(np.nanmax(nodes)) if n and not np.all(np.isnan(nodes)) else 0
    numa_vcpus = np.full((n, width), np.nan)
    numa_memory = np.full((n, width), np.nan)
    for k in range(1, width + 1):
        rows = nodes == k
        for target, total, used, ratio in (
            (numa_vcpus, "vcpus_total", "vcpus_used", settings.cpu_allocation_ratio),
            (numa_memory, "memory_mib_total", "memory_mib_used", settings.ram_allocation_ratio),
        ):
            used_column = numbers.get(used, np.zeros(n))
            target[rows, :k] = (
                (numbers[total][rows] * ratio - np.nan_to_num(used_column[rows])) / k
            )[:, None]
    return assemble(
        columns.host_ids,
        numbers=numbers,
        texts=dict(columns.texts),
        flags=dict(columns.flags),
        labels={
            key: [values.get(row, "") for row in range(n)] for key, values in columns.labels.items()
        },
        numa_free_vcpus=numa_vcpus,
        numa_free_memory_mib=numa_memory,
        features=dict(columns.features),
        taken_at_seconds=taken_at_seconds,
    )
