"""The operator's static inventory file: what no agent can measure about a host.

Rack, zone, aggregates, labels, compliance tags, maintenance and cordon flags, a VM
limit, and the numbers the energy, cost and age factors need (power draw, price,
carbon intensity of the site's electricity, hardware age, NIC speed). Any other
numeric key becomes an extra numeric column of the host table, so a factor named after
it takes its raw value from the file.

Two forms, chosen by the file name:

* TOML (``*.toml`` and anything not ``*.csv``)::

      [defaults]                 # applies to every host of the fleet
      carbon_g_per_kwh = 320
      compliance = ["soc2"]

      [hosts."node-17"]
      rack = "r12"
      aggregates = ["ssd", "gpu"]
      labels = { tier = "gold" }
      maintenance = true
      purchase_date = 2021-03-15   # or hardware_age_years = 4.5

* CSV (``*.csv``), as operators export CMDB tables: a header ``host_id`` followed by
  the same keys; lists are ``;`` or ``,`` separated (``"ssd;gpu"``), labels are
  ``key=value`` pairs separated by ``;`` (or one ``labels.<key>`` column per key),
  booleans ``true/false/yes/no/1/0``, an empty cell leaves the key unset. A CSV file
  has no defaults.

A host's own value replaces the default for that key (lists included); labels merge
per label key. Strict like every config of the project: an unknown non-numeric key, a
wrong type or a value out of range is a :class:`ConfigError` naming the file (and the
CSV line) and the key.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from novacron.coordinator.placement.hosts import REQUIRED_NUMBERS
from novacron.protos.runtime.tomlconfig import ConfigError, convert, read_toml

# Known numeric keys (>= 0) and what they mean; they become numeric columns of that name.
NUMBER_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "power_idle_watts": "power draw at idle, W",
        "power_max_watts": "power draw at full load, W",
        "cost_per_hour": "running cost of the host per hour (any currency, one per fleet)",
        "carbon_g_per_kwh": "carbon intensity of the host's electricity, gCO2e/kWh",
        "hardware_age_years": "years since purchase (or give purchase_date)",
        "nic_speed_mbps": "uplink speed, Mbit/s (overrides what the agent reports)",
        # Capacity the operator states, replacing what the agent's inventory implies.
        "vcpus_total": "logical CPUs offered to VMs (replaces the agent's count)",
        "memory_mib_total": "memory offered to VMs, MiB (replaces the agent's total)",
        "disk_gib_total": "local disk for VM images, GiB (replaces the sum of the disks)",
        "gpus_total": "GPUs that can be passed through (replaces the agent's count)",
    }
)
# Columns the builder computes from the live fleet; the file cannot set them.
COMPUTED_KEYS = (
    frozenset(REQUIRED_NUMBERS) - set(NUMBER_KEYS) - {"max_vms", "maintenance", "cordoned"}
)

_TEXT_KEYS = ("rack", "zone")
_LIST_KEYS = ("aggregates", "compliance")
_BOOL_KEYS = ("maintenance", "cordoned")
KNOWN_KEYS = (
    *_TEXT_KEYS,
    *_LIST_KEYS,
    "labels",
    *_BOOL_KEYS,
    "max_vms",
    "purchase_date",
    *NUMBER_KEYS,
)
_SECONDS_PER_YEAR = 365.25 * 86400.0
_LIST_SPLIT = re.compile(r"[;,]")


@dataclass(frozen=True)
class HostEntry:
    """What the file says about one host (``None`` / absent: the file does not say)."""

    rack: str | None = None
    zone: str | None = None
    aggregates: tuple[str, ...] | None = None
    compliance: tuple[str, ...] | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    maintenance: bool | None = None
    cordoned: bool | None = None
    # max_vms, the NUMBER_KEYS and any extra numeric key; hardware_age_years also when
    # the file gave a purchase_date.
    numbers: Mapping[str, float] = field(default_factory=dict)

    def over(self, base: HostEntry) -> HostEntry:
        """This entry with ``base`` filling what it leaves unset (labels merge per key)."""
        return HostEntry(
            rack=base.rack if self.rack is None else self.rack,
            zone=base.zone if self.zone is None else self.zone,
            aggregates=base.aggregates if self.aggregates is None else self.aggregates,
            compliance=base.compliance if self.compliance is None else self.compliance,
            labels=MappingProxyType({**base.labels, **self.labels}),
            maintenance=base.maintenance if self.maintenance is None else self.maintenance,
            cordoned=base.cordoned if self.cordoned is None else self.cordoned,
            numbers=MappingProxyType({**base.numbers, **self.numbers}),
        )


EMPTY_ENTRY = HostEntry()


@dataclass(frozen=True)
class InventoryFile:
    """The parsed file: defaults plus one entry per listed host."""

    source: str
    defaults: HostEntry = EMPTY_ENTRY
    hosts: Mapping[str, HostEntry] = field(default_factory=dict)

    def entry(self, host_id: str) -> HostEntry:
        """What applies to ``host_id``: its own entry over the defaults."""
        return self.hosts.get(host_id, EMPTY_ENTRY).over(self.defaults)

    def number_keys(self) -> tuple[str, ...]:
        """Every numeric key the file sets anywhere (the extra columns it brings)."""
        keys = set(self.defaults.numbers)
        for entry in self.hosts.values():
            keys.update(entry.numbers)
        return tuple(sorted(keys))


def load_inventory_file(path: Path, *, now: float | None = None) -> InventoryFile:
    """Read the TOML or CSV inventory at ``path``; ``now`` dates ``purchase_date``."""
    at = time.time() if now is None else now
    if path.suffix.lower() == ".csv":
        return _load_csv(path, at)
    return parse_inventory(read_toml(path), str(path), now=at)


def parse_inventory(document: Mapping[str, Any], source: str, *, now: float) -> InventoryFile:
    """The inventory in a parsed TOML ``document`` (``source`` names it in errors)."""
    for key in document:
        if key not in ("defaults", "hosts"):
            raise ConfigError(source, key, "unknown table (known: defaults, hosts)")
    defaults = _entry(
        _table(document.get("defaults", {}), source, "defaults"), source, "defaults", now
    )
    hosts_table = _table(document.get("hosts", {}), source, "hosts")
    hosts = {}
    for host_id, table in hosts_table.items():
        prefix = f"hosts.{host_id}"
        hosts[host_id] = _entry(_table(table, source, prefix), source, prefix, now)
    return InventoryFile(source, defaults, MappingProxyType(hosts))


# ---------------------------------------------------------------- one entry


def _entry(table: Mapping[str, Any], source: str, prefix: str, now: float) -> HostEntry:
    """Validate one host's (or the defaults') keys into a :class:`HostEntry`."""
    values: dict[str, Any] = {}
    numbers: dict[str, float] = {}
    labels: dict[str, str] = {}
    for key, value in table.items():
        where = f"{prefix}.{key}" if prefix else key
        if key in _TEXT_KEYS:
            values[key] = convert(str, value, source, where)
        elif key in _LIST_KEYS:
            values[key] = tuple(convert(tuple[str, ...], value, source, where))
        elif key in _BOOL_KEYS:
            values[key] = convert(bool, value, source, where)
        elif key == "labels":
            for name, text in _table(value, source, where).items():
                labels[name] = convert(str, text, source, f"{where}.{name}")
        elif key == "max_vms":
            count = convert(int, value, source, where)
            if count < 1:
                raise ConfigError(
                    source, where, f"must be >= 1 (cordon the host for none), got {count}"
                )
            numbers[key] = float(count)
        elif key == "purchase_date":
            if "hardware_age_years" in table:
                raise ConfigError(
                    source, where, "give purchase_date or hardware_age_years, not both"
                )
            numbers["hardware_age_years"] = _age_years(value, source, where, now)
        elif key in NUMBER_KEYS:
            numbers[key] = _number(value, source, where, minimum=0.0)
        elif key in COMPUTED_KEYS:
            raise ConfigError(
                source, where, "computed from the live fleet; the inventory cannot set it"
            )
        elif isinstance(value, int | float) and not isinstance(value, bool):
            numbers[key] = _number(value, source, where, minimum=None)
        else:
            raise ConfigError(
                source,
                where,
                f"unknown key with a {type(value).__name__} value (known keys: "
                f"{', '.join(KNOWN_KEYS)}; any other key must be a number)",
            )
    return HostEntry(labels=MappingProxyType(labels), numbers=MappingProxyType(numbers), **values)


def _table(value: Any, source: str, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(source, key, f"expected a table, got {type(value).__name__} {value!r}")
    return value


def _number(value: Any, source: str, key: str, *, minimum: float | None) -> float:
    number: float = convert(float, value, source, key)
    if not math.isfinite(number):
        raise ConfigError(source, key, f"expected a finite number, got {number}")
    if minimum is not None and number < minimum:
        raise ConfigError(source, key, f"must be >= {minimum:g}, got {number:g}")
    return number


def _age_years(value: Any, source: str, key: str, now: float) -> float:
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value)
        except ValueError:
            raise ConfigError(
                source, key, f"expected a date like 2021-03-15, got {value!r}"
            ) from None
    if isinstance(value, dt.datetime):
        value = value.date()
    if not isinstance(value, dt.date):
        raise ConfigError(
            source, key, f"expected a date like 2021-03-15, got {type(value).__name__} {value!r}"
        )
    bought = dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC).timestamp()
    if bought > now:
        raise ConfigError(source, key, f"date {value.isoformat()} is in the future")
    return (now - bought) / _SECONDS_PER_YEAR


# ---------------------------------------------------------------- CSV form


def _load_csv(path: Path, now: float) -> InventoryFile:
    hosts: dict[str, HostEntry] = {}
    header, rows = read_host_csv(
        path,
        what="inventory file",
        header_hint="a header starting with host_id",
        check_header=_check_inventory_header,
    )
    for source, cells in rows:
        host_id = cells["host_id"]
        table: dict[str, Any] = {}
        labels: dict[str, str] = {}
        for name in header[1:]:
            text = cells[name]
            if not text:
                continue
            if name.startswith("labels."):
                labels[name.removeprefix("labels.")] = text
            else:
                table[name] = _csv_value(name, text, source)
        if labels:
            table["labels"] = {**table.get("labels", {}), **labels}
        hosts[host_id] = _entry(table, source, "", now)
    return InventoryFile(str(path), EMPTY_ENTRY, MappingProxyType(hosts))


def _csv_value(name: str, text: str, source: str) -> Any:
    """A CSV cell as the TOML value of key ``name`` would be (the entry check follows)."""
    parse = _CSV_PARSERS.get(name)
    if parse is not None:
        try:
            return parse(text)
        except ValueError as exc:
            raise ConfigError(source, name, str(exc)) from None
    try:
        return float(text)  # a known number key or an extra numeric column
    except ValueError:
        if name in NUMBER_KEYS:
            raise ConfigError(source, name, f"expected a number, got {text!r}") from None
        raise ConfigError(
            source,
            name,
            f"unknown column with the non-numeric value {text!r} (known columns: "
            f"{', '.join(KNOWN_KEYS)}; any other column must be numeric)",
        ) from None


def _check_inventory_header(header: list[str], where: str) -> None:
    if not header or header[0] != "host_id":
        raise ConfigError(where, header[0] if header else "", "the first column must be host_id")
    check_column_names(header, where)


def read_host_csv(
    path: Path, *, what: str, header_hint: str, check_header: Callable[[list[str], str], None]
) -> tuple[list[str], list[tuple[str, dict[str, str]]]]:
    """A one-host-per-row CSV file: its header and ``(path:line, column -> cell)`` per host.

    The inventory file and the simulator's HOSTS.csv share this so both report a bad file
    the same way, naming the file, the line and the column. ``check_header`` checks the
    stripped header (``where`` is ``path:1``); the header must name a ``host_id`` column.
    Blank rows are skipped, cells are stripped, and a row with the wrong number of cells,
    an empty host id or a host listed before is an error.
    """
    source = str(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            lines = list(csv.reader(handle))
    except FileNotFoundError:
        raise ConfigError(source, "", f"{what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "", f"cannot read {what}: {exc}") from None
    except csv.Error as exc:
        raise ConfigError(source, "", f"not valid CSV: {exc}") from None
    if not lines:
        raise ConfigError(source, "", f"empty file (expected {header_hint})")
    header = [name.strip() for name in lines[0]]
    check_header(header, f"{source}:1")
    rows: list[tuple[str, dict[str, str]]] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(lines[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{source}:{line}"
        if len(row) != len(header):
            raise ConfigError(where, "", f"expected {len(header)} cells, got {len(row)}")
        cells = dict(zip(header, (cell.strip() for cell in row), strict=True))
        host_id = cells["host_id"]
        if not host_id:
            raise ConfigError(where, "host_id", "empty host id")
        if host_id in seen:
            raise ConfigError(
                where, "host_id", f"host {host_id!r} listed twice (first on line {seen[host_id]})"
            )
        seen[host_id] = line
        rows.append((where, cells))
    return header, rows


def check_column_names(header: list[str], where: str) -> None:
    """Every CSV column named, and named once."""
    for column, name in enumerate(header):
        if not name:
            raise ConfigError(where, f"column {column + 1}", "empty column name")
        if header.count(name) > 1:
            raise ConfigError(where, name, "column appears twice")


def csv_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "yes", "1"):
        return True
    if lowered in ("false", "no", "0"):
        return False
    raise ValueError(f"expected true/false/yes/no/1/0, got {text!r}")


def _csv_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected an integer, got {text!r}") from None


def csv_list(text: str) -> list[str]:
    return [item.strip() for item in _LIST_SPLIT.split(text) if item.strip()]


def csv_labels(text: str) -> dict[str, str]:
    labels = {}
    for pair in text.split(";"):
        if not pair.strip():
            continue
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise ValueError(f"expected key=value pairs separated by ';', got {pair.strip()!r}")
        labels[key.strip()] = value.strip()
    return labels


_CSV_PARSERS: Mapping[str, Callable[[str], Any]] = MappingProxyType(
    {
        "rack": str,
        "zone": str,
        "aggregates": csv_list,
        "compliance": csv_list,
        "labels": csv_labels,
        "maintenance": csv_bool,
        "cordoned": csv_bool,
        "max_vms": _csv_int,
        "purchase_date": str,
    }
)
