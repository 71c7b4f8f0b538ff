"""Temperatures, fans, voltages and power from Linux hwmon and thermal zones.

Reads every chip under ``<sysfs>/class/hwmon/hwmon<N>/`` and every zone under
``<sysfs>/class/thermal/thermal_zone<N>/``. Thermal headroom (margin to the critical
limit) and fan failures are early signs of cooling problems that precede throttling,
machine checks and shutdowns, so they feed the node-health features.

Identity: ``hwmon<N>`` numbers follow probe order and change across reboots, so a
chip is keyed by its driver name and the device it belongs to (``coretemp@coretemp.0``,
``nvme@nvme0``, ``k10temp@0000:00:18.3``), and each sensor by chip key and sensor
(``coretemp@coretemp.0/temp3``). A sensor whose read fails with EIO/ENODATA, or whose
file holds garbage, gives no value this cycle and is listed in ``unavailable``; the
other sensors of the chip are unaffected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from novacron.agent.collectors._hwmon_parse import (
    LIMIT_ATTRIBUTES,
    FanSensor,
    PowerSensor,
    Sensor,
    TemperatureSensor,
    TripPoint,
    VoltageSensor,
    build_sensor,
    critical_trip_celsius,
    device_short_name,
    input_attribute,
    margin,
    sensor_attributes,
    trip_point_indexes,
    unique_keys,
)
from novacron.agent.collectors._sysfs import (
    ReadBytes,
    SysfsReader,
    Unreadable,
    list_names,
    numbered_entries,
    read_bytes,
)
from novacron.agent.collectors.base import (
    AvailabilityTracker,
    Collector,
    CollectorContext,
    CollectorSettings,
    UnavailableDevice,
    register,
)
from novacron.protos.runtime.jsonlog import LogOnce

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HwmonSettings(CollectorSettings):
    # Chip driver names to skip, e.g. ("nvme", "drivetemp") when the smart collector
    # already reports disk temperatures.
    ignore_chips: tuple[str, ...] = ()
    thermal_zones: bool = True

    def __post_init__(self) -> None:
        if any(not name.strip() for name in self.ignore_chips):
            raise ValueError("ignore_chips: names must not be empty")


@dataclass(frozen=True)
class HwmonChip:
    key: str  # "coretemp@coretemp.0"; stable across reboots
    name: str  # the driver's `name` attribute
    device_path: str | None  # under <sysfs>/devices, e.g. "platform/coretemp.0"
    temperatures: tuple[TemperatureSensor, ...]
    fans: tuple[FanSensor, ...]
    voltages: tuple[VoltageSensor, ...]
    powers: tuple[PowerSensor, ...]


@dataclass(frozen=True)
class ThermalZone:
    key: str  # "thermal/acpitz"; "thermal/acpitz@thermal_zone2" when types repeat
    zone: str  # "thermal_zone0" (enumeration order, not stable)
    type: str
    temp_celsius: float
    trip_points: tuple[TripPoint, ...]
    critical_celsius: float | None
    margin_to_critical_celsius: float | None


@dataclass(frozen=True)
class HwmonReadings:
    chips: tuple[HwmonChip, ...]
    thermal_zones: tuple[ThermalZone, ...]
    hottest_celsius: float | None  # highest temperature over all sensors and zones
    min_margin_to_crit_celsius: float | None  # smallest headroom to any critical limit
    unavailable: tuple[UnavailableDevice, ...]


@dataclass(frozen=True)
class _ChipDir:
    path: Path
    name: str
    device_path: str | None


@register("hwmon", HwmonSettings, default_enabled=True)
class HwmonCollector(Collector[HwmonSettings]):
    """Temperatures, fans, voltages and power (hwmon) and thermal zones."""

    def __init__(
        self,
        context: CollectorContext,
        settings: HwmonSettings,
        *,
        read: ReadBytes = read_bytes,
    ) -> None:
        super().__init__(context, settings)
        self._sysfs = SysfsReader(log, read)
        self._log = LogOnce(log)
        self._tracker = AvailabilityTracker("hwmon")

    def collect(self, now: float) -> HwmonReadings:
        failed: dict[str, str] = {}
        chips = self._read_chips(failed)
        zones = self._read_zones(failed) if self.settings.thermal_zones else ()
        present = [s.key for chip in chips for s in _sensors(chip)] + [z.key for z in zones]
        temps = [t.temp_celsius for c in chips for t in c.temperatures]
        temps += [z.temp_celsius for z in zones]
        margins = [t.margin_to_crit_celsius for c in chips for t in c.temperatures]
        margins += [z.margin_to_critical_celsius for z in zones]
        known_margins = [m for m in margins if m is not None]
        return HwmonReadings(
            chips=chips,
            thermal_zones=zones,
            hottest_celsius=max(temps) if temps else None,
            min_margin_to_crit_celsius=min(known_margins) if known_margins else None,
            unavailable=self._tracker.update(present, failed, now),
        )

    # -- hwmon chips -------------------------------------------------------------

    def _discover_chips(self) -> list[_ChipDir]:
        class_dir = self.context.sysfs_root / "class" / "hwmon"
        names = list_names(class_dir)
        if names is None:
            self._log.problem(
                "no-hwmon", logging.DEBUG, "no hwmon class directory", path=str(class_dir)
            )
            return []
        chips = []
        for _, entry in numbered_entries(names, "hwmon"):
            path = class_dir / entry
            if not path.is_dir():  # a dangling symlink while a driver unbinds
                continue
            name = self._sysfs.optional_text(path / "name")
            if not name:
                self._log.problem(
                    f"{path}:name",
                    logging.WARNING,
                    "hwmon chip without a readable name, skipped",
                    path=str(path),
                )
                continue
            if name not in self.settings.ignore_chips:
                chips.append(_ChipDir(path, name, self._device_path(path)))
        return chips

    def _device_path(self, chip_dir: Path) -> str | None:
        """The chip's device under ``<sysfs>/devices``, or None for a plain directory.

        The ``device`` link names it where the kernel created one; otherwise (older
        kernels' virtual chips) the hwmon directory's own location does:
        ``devices/<device>/hwmon/hwmon<N>``, or ``devices/<device>/hwmon<N>`` when the
        parent is itself a class device (``nvme/nvme0``, ``thermal_zone0``).
        """
        devices = (self.context.sysfs_root / "devices").resolve()
        link = chip_dir / "device"
        if link.exists():
            target = link.resolve()
        else:
            target = chip_dir.resolve().parent
            if target.name == "hwmon":
                target = target.parent
        if target == devices or not target.is_relative_to(devices):
            return None
        return target.relative_to(devices).as_posix()

    def _read_chips(self, failed: dict[str, str]) -> tuple[HwmonChip, ...]:
        found = self._discover_chips()
        keys = unique_keys(
            [
                (
                    f"{c.name}@{device_short_name(c.device_path or c.path.name)}",
                    f"{c.name}@{c.device_path or c.path.name}",
                )
                for c in found
            ]
        )
        return tuple(
            self._read_chip(chip, key, failed) for chip, key in zip(found, keys, strict=True)
        )

    def _read_chip(self, chip: _ChipDir, chip_key: str, failed: dict[str, str]) -> HwmonChip:
        sensors: list[Sensor] = []
        for (kind, index), attrs in sensor_attributes(list_names(chip.path) or ()).items():
            sensor = f"{kind}{index}"
            key = f"{chip_key}/{sensor}"
            input_attr = input_attribute(kind, attrs) or "input"
            raw = self._sysfs.integer(chip.path / f"{sensor}_{input_attr}")
            if isinstance(raw, Unreadable):
                failed[key] = raw.reason
                continue
            if raw is None:  # vanished between listing and reading
                continue
            limits = {
                attr: self._sysfs.optional_int(chip.path / f"{sensor}_{attr}")
                for attr in LIMIT_ATTRIBUTES[kind]
                if attr in attrs
            }
            label = (
                self._sysfs.optional_text(chip.path / f"{sensor}_label")
                if "label" in attrs
                else None
            )
            sensors.append(
                build_sensor(
                    kind,
                    key=key,
                    sensor=sensor,
                    label=label or None,
                    raw=raw,
                    limits=limits,
                    input_attr=input_attr,
                )
            )
        return HwmonChip(
            key=chip_key,
            name=chip.name,
            device_path=chip.device_path,
            temperatures=tuple(s for s in sensors if isinstance(s, TemperatureSensor)),
            fans=tuple(s for s in sensors if isinstance(s, FanSensor)),
            voltages=tuple(s for s in sensors if isinstance(s, VoltageSensor)),
            powers=tuple(s for s in sensors if isinstance(s, PowerSensor)),
        )

    # -- thermal zones -----------------------------------------------------------

    def _read_zones(self, failed: dict[str, str]) -> tuple[ThermalZone, ...]:
        class_dir = self.context.sysfs_root / "class" / "thermal"
        names = list_names(class_dir)
        if names is None:
            self._log.problem(
                "no-thermal", logging.DEBUG, "no thermal class directory", path=str(class_dir)
            )
            return ()
        typed: list[tuple[str, Path, str]] = []
        for _, entry in numbered_entries(names, "thermal_zone"):
            path = class_dir / entry
            zone_type = self._sysfs.optional_text(path / "type")
            if not zone_type:
                self._log.problem(
                    f"{path}:type",
                    logging.WARNING,
                    "thermal zone without a readable type, skipped",
                    path=str(path),
                )
                continue
            typed.append((entry, path, zone_type))
        keys = unique_keys([(f"thermal/{t}", f"thermal/{t}@{entry}") for entry, _, t in typed])
        zones = []
        for (entry, path, zone_type), key in zip(typed, keys, strict=True):
            raw = self._sysfs.integer(path / "temp")
            if isinstance(raw, Unreadable):
                failed[key] = raw.reason
                continue
            if raw is None:
                continue
            temp = raw / 1000
            trips = self._read_trip_points(path)
            critical = critical_trip_celsius(trips)
            zones.append(
                ThermalZone(
                    key=key,
                    zone=entry,
                    type=zone_type,
                    temp_celsius=temp,
                    trip_points=trips,
                    critical_celsius=critical,
                    margin_to_critical_celsius=margin(critical, temp),
                )
            )
        return tuple(zones)

    def _read_trip_points(self, zone_dir: Path) -> tuple[TripPoint, ...]:
        trips = []
        for index in trip_point_indexes(list_names(zone_dir) or ()):
            temp = self._sysfs.optional_int(zone_dir / f"trip_point_{index}_temp")
            trip_type = self._sysfs.optional_text(zone_dir / f"trip_point_{index}_type")
            if temp is not None and trip_type:
                trips.append(TripPoint(index, trip_type, temp / 1000))
        return tuple(trips)

    @classmethod
    def summarize(cls, data: Any) -> list[str]:
        readings: HwmonReadings = data
        lines = []
        if readings.hottest_celsius is not None:
            headroom = readings.min_margin_to_crit_celsius
            lines.append(
                f"hottest {readings.hottest_celsius:.1f} C, least headroom to critical "
                + (f"{headroom:.1f} C" if headroom is not None else "unknown")
            )
        lines += [_chip_line(chip) for chip in readings.chips]
        for zone in readings.thermal_zones:
            crit = f" (critical {zone.critical_celsius:.1f} C)" if zone.critical_celsius else ""
            lines.append(f"{zone.key}: {zone.temp_celsius:.1f} C{crit}")
        lines.extend(
            f"{u.device}: UNAVAILABLE ({u.reason}) since {u.unavailable_since:.0f}"
            for u in readings.unavailable
        )
        return lines or ["no hwmon chips or thermal zones"]


def _sensors(chip: HwmonChip) -> list[Sensor]:
    return [*chip.temperatures, *chip.fans, *chip.voltages, *chip.powers]


def _chip_line(chip: HwmonChip) -> str:
    parts = []
    for t in chip.temperatures:
        crit = f" (crit {t.crit_celsius:.0f})" if t.crit_celsius is not None else ""
        parts.append(f"{t.label or t.sensor} {t.temp_celsius:.1f} C{crit}")
    parts += [f"{f.label or f.sensor} {f.speed_rpm} rpm" for f in chip.fans]
    parts += [f"{v.label or v.sensor} {v.voltage_volts:.3f} V" for v in chip.voltages]
    parts += [f"{p.label or p.sensor} {p.power_watts:.1f} W" for p in chip.powers]
    return f"{chip.key}: {', '.join(parts) or 'no readable sensors'}"


__all__ = [
    "HwmonChip",
    "HwmonCollector",
    "HwmonReadings",
    "HwmonSettings",
    "ThermalZone",
]
