"""Pure parsing for the hwmon collector: sysfs names and raw integers to typed sensors.

No I/O here, so every rule is tested table-driven: which files form a sensor, the
unit of each raw value (millidegrees, millivolts, microwatts), margins to critical
limits, and how chips and zones get keys that survive a reboot.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

SensorKind = Literal["temp", "fan", "in", "power"]

# <kind><index>_<attribute>, e.g. temp3_crit_alarm, fan1_input, in0_max, power1_average.
_SENSOR_FILE = re.compile(r"(temp|fan|in|power)(\d+)_([a-z0-9_]+)")
_TRIP_FILE = re.compile(r"trip_point_(\d+)_(temp|type)")

# The attribute that carries the reading, in order of preference. ACPI power meters
# and many BMC drivers only offer power<I>_average, so it is the fallback for power.
INPUT_ATTRIBUTES: dict[SensorKind, tuple[str, ...]] = {
    "temp": ("input",),
    "fan": ("input",),
    "in": ("input",),
    "power": ("input", "average"),
}
# Optional integer attributes read next to the input, per kind.
LIMIT_ATTRIBUTES: dict[SensorKind, tuple[str, ...]] = {
    "temp": ("min", "max", "crit", "alarm", "crit_alarm"),
    "fan": ("min", "alarm"),
    "in": ("min", "max", "alarm"),
    "power": (),
}


@dataclass(frozen=True)
class TemperatureSensor:
    key: str  # stable identity, e.g. "coretemp@coretemp.0/temp2"
    sensor: str  # "temp2"
    label: str | None  # "Core 0"; None when the driver gives no label
    temp_celsius: float
    min_celsius: float | None
    max_celsius: float | None
    crit_celsius: float | None
    alarm: bool | None
    crit_alarm: bool | None
    margin_to_crit_celsius: float | None  # crit - temp; None without a crit limit


@dataclass(frozen=True)
class FanSensor:
    key: str
    sensor: str  # "fan1"
    label: str | None
    speed_rpm: int
    min_rpm: int | None
    alarm: bool | None


@dataclass(frozen=True)
class VoltageSensor:
    key: str
    sensor: str  # "in0"
    label: str | None
    voltage_volts: float
    min_volts: float | None
    max_volts: float | None
    alarm: bool | None


@dataclass(frozen=True)
class PowerSensor:
    key: str
    sensor: str  # "power1"
    label: str | None
    power_watts: float
    averaged: bool  # True when read from power<I>_average (no instantaneous input)


Sensor = TemperatureSensor | FanSensor | VoltageSensor | PowerSensor


@dataclass(frozen=True)
class TripPoint:
    index: int
    type: str  # "critical", "hot", "passive", "active"
    temp_celsius: float


def sensor_attributes(names: Iterable[str]) -> dict[tuple[SensorKind, int], frozenset[str]]:
    """Group a chip directory's file names into sensors: ``(kind, index) -> attributes``.

    Only sensors with a reading attribute are returned, in (kind, index) order.
    """
    found: dict[tuple[SensorKind, int], set[str]] = {}
    for name in names:
        match = _SENSOR_FILE.fullmatch(name)
        if match:
            kind: SensorKind = match.group(1)  # type: ignore[assignment]
            found.setdefault((kind, int(match.group(2))), set()).add(match.group(3))
    return {
        sensor: frozenset(attrs)
        for sensor, attrs in sorted(found.items())
        if input_attribute(sensor[0], attrs) is not None
    }


def input_attribute(kind: SensorKind, attrs: Iterable[str]) -> str | None:
    """The attribute to read the value from, or None if the sensor has no reading."""
    present = set(attrs)
    return next((a for a in INPUT_ATTRIBUTES[kind] if a in present), None)


def _scaled(value: int | None, divisor: float) -> float | None:
    return None if value is None else value / divisor


def _flag(value: int | None) -> bool | None:
    return None if value is None else value != 0


def build_sensor(
    kind: SensorKind,
    *,
    key: str,
    sensor: str,
    label: str | None,
    raw: int,
    limits: Mapping[str, int | None],
    input_attr: str = "input",
) -> Sensor:
    """Turn raw sysfs integers into a typed sensor with SI units.

    ``raw`` is the input value in the kernel's unit (millidegree Celsius, RPM,
    millivolt, microwatt); ``limits`` the optional attributes that were readable.
    """
    if kind == "temp":
        temp = raw / 1000
        crit = _scaled(limits.get("crit"), 1000)
        return TemperatureSensor(
            key=key,
            sensor=sensor,
            label=label,
            temp_celsius=temp,
            min_celsius=_scaled(limits.get("min"), 1000),
            max_celsius=_scaled(limits.get("max"), 1000),
            crit_celsius=crit,
            alarm=_flag(limits.get("alarm")),
            crit_alarm=_flag(limits.get("crit_alarm")),
            margin_to_crit_celsius=margin(crit, temp),
        )
    if kind == "fan":
        return FanSensor(
            key=key,
            sensor=sensor,
            label=label,
            speed_rpm=raw,
            min_rpm=limits.get("min"),
            alarm=_flag(limits.get("alarm")),
        )
    if kind == "in":
        return VoltageSensor(
            key=key,
            sensor=sensor,
            label=label,
            voltage_volts=raw / 1000,
            min_volts=_scaled(limits.get("min"), 1000),
            max_volts=_scaled(limits.get("max"), 1000),
            alarm=_flag(limits.get("alarm")),
        )
    return PowerSensor(
        key=key,
        sensor=sensor,
        label=label,
        power_watts=raw / 1_000_000,
        averaged=input_attr == "average",
    )


def margin(limit: float | None, value: float) -> float | None:
    """Headroom to a limit (``limit - value``); negative once the limit is passed.

    Rounded to a millidegree: the inputs are integral millidegrees, so this only
    removes float noise (``100.0 - 42.1`` is not ``57.9``).
    """
    return None if limit is None else round(limit - value, 3)


def trip_point_indexes(names: Iterable[str]) -> list[int]:
    """Indexes K of the trip points that have both ``trip_point_K_temp`` and ``_type``."""
    seen: dict[int, set[str]] = {}
    for name in names:
        match = _TRIP_FILE.fullmatch(name)
        if match:
            seen.setdefault(int(match.group(1)), set()).add(match.group(2))
    return sorted(k for k, parts in seen.items() if parts == {"temp", "type"})


def critical_trip_celsius(trips: Iterable[TripPoint]) -> float | None:
    """The lowest ``critical`` trip: the kernel shuts the machine down there."""
    temps = [t.temp_celsius for t in trips if t.type == "critical"]
    return min(temps) if temps else None


def device_short_name(device_path: str) -> str:
    """Last component of a device path (``platform/coretemp.0`` -> ``coretemp.0``)."""
    return device_path.rstrip("/").rsplit("/", 1)[-1]


def unique_keys(candidates: list[tuple[str, str]]) -> list[str]:
    """Pick each item's short key, or its long key where short keys collide.

    ``candidates`` are ``(short, long)`` pairs; the long key must be unique on its own.
    Keys are identities (availability tracking, features), so a collision must never
    merge two devices.
    """
    counts = Counter(short for short, _ in candidates)
    return [short if counts[short] == 1 else long for short, long in candidates]
