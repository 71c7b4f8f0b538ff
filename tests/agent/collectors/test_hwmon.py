"""hwmon collector: pure parsers table-driven, the collector against real-shaped sysfs trees."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from pathlib import Path

import pytest

from novacron.agent import cli
from novacron.agent.collectors._hwmon_parse import (
    FanSensor,
    PowerSensor,
    TemperatureSensor,
    TripPoint,
    VoltageSensor,
    build_sensor,
    critical_trip_celsius,
    device_short_name,
    margin,
    sensor_attributes,
    trip_point_indexes,
    unique_keys,
)
from novacron.agent.collectors.base import CollectorContext, registry
from novacron.agent.collectors.hwmon import (
    HwmonCollector,
    HwmonReadings,
    HwmonSettings,
)
from novacron.agent.config import parse_config
from novacron.agent.sample import to_jsonable
from novacron.protos.runtime.tomlconfig import ConfigError
from tests.fixtures.hwmon import STATIC_TREE, hwmon_chip_dir, write_hwmon_tree

NOW = 1_700_000_000.0

# -- pure parsers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (
            ["name", "temp1_input", "temp1_label", "temp1_crit", "temp1_crit_alarm", "uevent"],
            {("temp", 1): {"input", "label", "crit", "crit_alarm"}},
        ),
        (
            # sensors without a reading (temp7_type alone), pwm, curr and intrusion are ignored
            ["fan2_input", "fan2_min", "fan10_input", "pwm1", "temp7_type", "intrusion0_alarm"],
            {("fan", 2): {"input", "min"}, ("fan", 10): {"input"}},
        ),
        (
            ["in0_input", "in0_max", "curr1_input", "power1_input"],
            {("in", 0): {"input", "max"}, ("power", 1): {"input"}},
        ),
        (
            # ACPI power meters only have the average
            ["power1_average", "power1_average_interval", "power1_is_battery"],
            {("power", 1): {"average", "average_interval", "is_battery"}},
        ),
        (["name", "device", "power", "subsystem"], {}),
    ],
)
def test_sensor_attributes_groups_files_into_sensors(
    names: list[str], expected: dict[tuple[str, int], set[str]]
) -> None:
    assert {k: set(v) for k, v in sensor_attributes(names).items()} == expected


def test_sensor_attributes_orders_by_kind_then_number() -> None:
    names = ["temp10_input", "temp2_input", "fan1_input", "in0_input"]
    assert list(sensor_attributes(names)) == [("fan", 1), ("in", 0), ("temp", 2), ("temp", 10)]


@pytest.mark.parametrize(
    ("kind", "raw", "limits", "input_attr", "expected"),
    [
        (
            "temp",
            45000,
            {"max": 80000, "crit": 100000, "crit_alarm": 0},
            "input",
            TemperatureSensor("k", "s", "L", 45.0, None, 80.0, 100.0, None, False, 55.0),
        ),
        (
            "temp",
            38850,
            {"min": -273150, "max": 81850, "crit": 84850, "alarm": 1},
            "input",
            TemperatureSensor("k", "s", "L", 38.85, -273.15, 81.85, 84.85, True, None, 46.0),
        ),
        (
            "temp",
            105000,  # past the critical limit: negative headroom
            {"crit": 100000, "crit_alarm": 1},
            "input",
            TemperatureSensor("k", "s", "L", 105.0, None, None, 100.0, None, True, -5.0),
        ),
        (
            "fan",
            1150,
            {"min": 300, "alarm": 0},
            "input",
            FanSensor("k", "s", "L", 1150, 300, False),
        ),
        ("fan", 0, {}, "input", FanSensor("k", "s", "L", 0, None, None)),
        (
            "in",
            1832,
            {"min": 0, "max": 0, "alarm": 1},
            "input",
            VoltageSensor("k", "s", "L", 1.832, 0.0, 0.0, True),
        ),
        ("power", 18287500, {}, "input", PowerSensor("k", "s", "L", 18.2875, False)),
        ("power", 182000000, {}, "average", PowerSensor("k", "s", "L", 182.0, True)),
    ],
)
def test_build_sensor_converts_kernel_units(
    kind: str, raw: int, limits: dict[str, int], input_attr: str, expected: object
) -> None:
    sensor = build_sensor(
        kind,  # type: ignore[arg-type]
        key="k",
        sensor="s",
        label="L",
        raw=raw,
        limits=limits,
        input_attr=input_attr,
    )
    assert sensor == expected


@pytest.mark.parametrize(
    ("limit", "value", "expected"),
    [(100.0, 45.0, 55.0), (100.0, 42.1, 57.9), (84.85, 38.85, 46.0), (None, 45.0, None)],
)
def test_margin(limit: float | None, value: float, expected: float | None) -> None:
    assert margin(limit, value) == expected


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["trip_point_0_temp", "trip_point_0_type", "trip_point_0_hyst"], [0]),
        (["trip_point_1_temp", "trip_point_1_type", "trip_point_0_temp"], [1]),  # 0 has no type
        (
            ["trip_point_10_temp", "trip_point_10_type", "trip_point_2_type", "trip_point_2_temp"],
            [2, 10],
        ),
        (["temp", "type", "mode"], []),
    ],
)
def test_trip_point_indexes(names: list[str], expected: list[int]) -> None:
    assert trip_point_indexes(names) == expected


@pytest.mark.parametrize(
    ("trips", "expected"),
    [
        ([TripPoint(0, "critical", 119.0)], 119.0),
        ([TripPoint(0, "passive", 0.0), TripPoint(1, "passive", 0.0)], None),
        (
            [
                TripPoint(0, "hot", 95.0),
                TripPoint(1, "critical", 105.0),
                TripPoint(2, "critical", 100.0),
            ],
            100.0,
        ),
        ([], None),
    ],
)
def test_critical_trip_is_the_lowest_critical(
    trips: list[TripPoint], expected: float | None
) -> None:
    assert critical_trip_celsius(trips) == expected


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        ([("a@x", "a@p/x"), ("b@x", "b@p/x")], ["a@x", "b@x"]),
        (
            [("nvme@nvme0", "nvme@pci0/nvme0"), ("nvme@nvme0", "nvme@pci1/nvme0")],
            ["nvme@pci0/nvme0", "nvme@pci1/nvme0"],
        ),
        ([], []),
    ],
)
def test_unique_keys_falls_back_to_the_long_key_on_collision(
    candidates: list[tuple[str, str]], expected: list[str]
) -> None:
    assert unique_keys(candidates) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("platform/coretemp.0", "coretemp.0"),
        ("pci0000:00/0000:00:18.3", "0000:00:18.3"),
        ("x/", "x"),
    ],
)
def test_device_short_name(path: str, expected: str) -> None:
    assert device_short_name(path) == expected


# -- the collector against sysfs trees -----------------------------------------------


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    root = tmp_path / "sys"
    write_hwmon_tree(root)
    return root


def collector(
    root: Path, settings: HwmonSettings | None = None, **kwargs: object
) -> HwmonCollector:
    return HwmonCollector(
        CollectorContext(sysfs_root=root),
        settings or HwmonSettings(),
        **kwargs,  # type: ignore[arg-type]
    )


def temps(readings: HwmonReadings) -> dict[str, float]:
    return {t.key: t.temp_celsius for c in readings.chips for t in c.temperatures}


def test_fixture_tree_is_shaped_like_real_sysfs(sysfs: Path) -> None:
    link = sysfs / "class" / "hwmon" / "hwmon1"
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert link.resolve() == (sysfs / "devices/platform/coretemp.0/hwmon/hwmon1").resolve()
    assert os.readlink(link.resolve() / "device") == "../../../coretemp.0"
    assert (link / "temp1_input").read_text() == "45000\n"
    assert (sysfs / "class/thermal/thermal_zone0").is_symlink()


def test_reads_every_chip_with_stable_keys_and_units(sysfs: Path) -> None:
    readings = collector(sysfs).collect(NOW)
    chips = {c.key: c for c in readings.chips}
    assert list(chips) == [
        "acpitz@thermal_zone0",
        "coretemp@coretemp.0",
        "nvme@nvme0",
        "k10temp@0000:00:18.3",
        "nct6775@nct6775.656",
        "ina226@1-0040",
        "power_meter@ACPI000D:00",
    ]
    core = chips["coretemp@coretemp.0"]
    assert core.name == "coretemp" and core.device_path == "platform/coretemp.0"
    assert [t.label for t in core.temperatures] == [
        "Package id 0",
        "Core 0",
        "Core 1",
        "Core 2",
        "Core 3",
    ]
    package = core.temperatures[0]
    assert package == TemperatureSensor(
        "coretemp@coretemp.0/temp1",
        "temp1",
        "Package id 0",
        45.0,
        None,
        80.0,
        100.0,
        None,
        False,
        55.0,
    )
    composite, sensor1 = chips["nvme@nvme0"].temperatures
    assert (composite.label, composite.temp_celsius, composite.alarm) == ("Composite", 38.85, False)
    assert (composite.min_celsius, composite.max_celsius, composite.crit_celsius) == (
        -273.15,
        81.85,
        84.85,
    )
    assert composite.margin_to_crit_celsius == 46.0
    assert (sensor1.label, sensor1.max_celsius, sensor1.crit_celsius) == (
        "Sensor 1",
        65261.85,
        None,
    )
    assert chips["nvme@nvme0"].device_path == "pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0"
    assert [(t.label, t.temp_celsius) for t in chips["k10temp@0000:00:18.3"].temperatures] == [
        ("Tctl", 51.25),
        ("Tdie", 51.25),
        ("Tccd1", 48.5),
    ]
    nct = chips["nct6775@nct6775.656"]
    assert [(f.sensor, f.speed_rpm, f.min_rpm, f.alarm) for f in nct.fans] == [
        ("fan1", 1150, 300, False),
        ("fan2", 0, 0, False),
        ("fan3", 860, 300, False),
    ]
    assert [(v.sensor, v.voltage_volts) for v in nct.voltages] == [
        ("in0", 1.056),
        ("in1", 1.832),
        ("in2", 3.344),
        ("in3", 3.328),
    ]
    assert nct.voltages[1].alarm is True
    assert [t.label for t in nct.temperatures] == ["SYSTIN", "CPUTIN"]
    assert chips["ina226@1-0040"].powers == (
        PowerSensor("ina226@1-0040/power1", "power1", None, 18.2875, False),
    )
    assert chips["power_meter@ACPI000D:00"].powers[0].power_watts == 182.0
    assert chips["power_meter@ACPI000D:00"].powers[0].averaged is True
    assert chips["acpitz@thermal_zone0"].temperatures[0].crit_celsius == 119.0
    assert readings.hottest_celsius == 52.0  # pch_cannonlake zone
    assert readings.min_margin_to_crit_celsius == 46.0  # nvme Composite
    assert readings.unavailable == ()


def test_thermal_zones_with_trip_points(sysfs: Path) -> None:
    zones = {z.key: z for z in collector(sysfs).collect(NOW).thermal_zones}
    assert list(zones) == ["thermal/acpitz", "thermal/x86_pkg_temp", "thermal/pch_cannonlake"]
    acpitz = zones["thermal/acpitz"]
    assert (acpitz.zone, acpitz.temp_celsius, acpitz.critical_celsius) == (
        "thermal_zone0",
        27.8,
        119.0,
    )
    assert acpitz.margin_to_critical_celsius == 91.2
    assert acpitz.trip_points == (TripPoint(0, "critical", 119.0),)
    pkg = zones["thermal/x86_pkg_temp"]
    assert pkg.trip_points == (TripPoint(0, "passive", 0.0), TripPoint(1, "passive", 0.0))
    assert (pkg.critical_celsius, pkg.margin_to_critical_celsius) == (None, None)


def test_eio_on_one_sensor_skips_only_that_sensor(sysfs: Path) -> None:
    broken = {"temp3_input"}

    def read(path: Path) -> bytes:
        if path.name in broken and "coretemp" in str(path.resolve()):
            raise OSError(errno.EIO, "Input/output error")
        return path.read_bytes()

    hwmon = collector(sysfs, read=read)
    first = hwmon.collect(NOW)
    values = temps(first)
    assert "coretemp@coretemp.0/temp3" not in values
    assert values["coretemp@coretemp.0/temp2"] == 42.0
    assert values["coretemp@coretemp.0/temp4"] == 41.0
    assert values["k10temp@0000:00:18.3/temp3"] == 48.5  # same file name, other chip
    assert len(values) == 1 + 4 + 2 + 3 + 2
    [missing] = first.unavailable
    assert missing.device == "coretemp@coretemp.0/temp3"
    assert missing.reason == "EIO: Input/output error"
    assert missing.unavailable_since == NOW

    second = hwmon.collect(NOW + 10)
    assert second.unavailable[0].unavailable_since == NOW  # since the first miss

    broken.clear()
    third = hwmon.collect(NOW + 20)
    assert third.unavailable == ()
    assert temps(third)["coretemp@coretemp.0/temp3"] == 43.0


def test_enodata_on_a_thermal_zone(sysfs: Path) -> None:
    def read(path: Path) -> bytes:
        if path.name == "temp" and path.parent.name == "thermal_zone1":
            raise OSError(errno.ENODATA, "No data available")
        return path.read_bytes()

    readings = collector(sysfs, read=read).collect(NOW)
    assert [z.key for z in readings.thermal_zones] == ["thermal/acpitz", "thermal/pch_cannonlake"]
    assert [(u.device, u.reason) for u in readings.unavailable] == [
        ("thermal/x86_pkg_temp", "ENODATA: No data available")
    ]


def test_unreadable_limit_keeps_the_sensor(sysfs: Path) -> None:
    def read(path: Path) -> bytes:
        if path.name == "temp1_crit" and "coretemp" in str(path.resolve()):
            raise OSError(errno.EIO, "Input/output error")
        return path.read_bytes()

    readings = collector(sysfs, read=read).collect(NOW)
    core = next(c for c in readings.chips if c.name == "coretemp")
    assert core.temperatures[0].temp_celsius == 45.0
    assert core.temperatures[0].crit_celsius is None
    assert core.temperatures[0].margin_to_crit_celsius is None
    assert readings.unavailable == ()


@pytest.mark.parametrize("content", ["abc\n", "", "45.5\n"])
def test_malformed_input_is_logged_once_and_skipped(
    sysfs: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    bad = hwmon_chip_dir(sysfs, "coretemp.0") / "temp2_input"
    bad.write_text(content)
    hwmon = collector(sysfs)
    with caplog.at_level(logging.DEBUG, logger="novacron.agent.collectors.hwmon"):
        first = hwmon.collect(NOW)
        second = hwmon.collect(NOW + 10)
    for readings in (first, second):
        assert "coretemp@coretemp.0/temp2" not in temps(readings)
        assert temps(readings)["coretemp@coretemp.0/temp3"] == 43.0
        assert [u.device for u in readings.unavailable] == ["coretemp@coretemp.0/temp2"]
        assert readings.unavailable[0].reason.startswith("malformed value")
    malformed = [r for r in caplog.records if r.getMessage() == "malformed sysfs value, skipped"]
    assert len(malformed) == 1
    assert malformed[0].path.endswith("hwmon1/temp2_input")  # type: ignore[attr-defined]


def test_malformed_limit_or_label_does_not_drop_the_sensor(sysfs: Path) -> None:
    chip = hwmon_chip_dir(sysfs, "nct6775.656")
    (chip / "fan1_min").write_text("garbage\n")
    (chip / "temp1_label").write_text("")
    nct = next(c for c in collector(sysfs).collect(NOW).chips if c.name == "nct6775")
    assert (nct.fans[0].speed_rpm, nct.fans[0].min_rpm) == (1150, None)
    assert (nct.temperatures[0].label, nct.temperatures[0].temp_celsius) == (None, 36.0)


def test_missing_roots_are_no_data(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="novacron.agent.collectors.hwmon"):
        readings = collector(tmp_path / "no-sysfs").collect(NOW)
    assert readings == HwmonReadings((), (), None, None, ())
    assert all(r.levelno <= logging.DEBUG for r in caplog.records)
    assert {r.getMessage() for r in caplog.records} == {
        "no hwmon class directory",
        "no thermal class directory",
    }


def test_chip_without_name_is_skipped_and_logged(
    sysfs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (hwmon_chip_dir(sysfs, "0000:00:18.3") / "name").unlink()
    with caplog.at_level(logging.WARNING, logger="novacron.agent.collectors.hwmon"):
        readings = collector(sysfs).collect(NOW)
    assert "k10temp@0000:00:18.3" not in [c.key for c in readings.chips]
    assert len(readings.chips) == 6
    assert [r.getMessage() for r in caplog.records] == [
        "hwmon chip without a readable name, skipped"
    ]


def test_keys_survive_hwmon_renumbering(sysfs: Path) -> None:
    before = collector(sysfs).collect(NOW)
    class_dir = sysfs / "class" / "hwmon"
    targets = {link.name: os.readlink(link) for link in class_dir.iterdir()}
    for link in class_dir.iterdir():
        link.unlink()
    # A reboot probes the drivers in another order.
    for index, name in enumerate(reversed(sorted(targets))):
        (class_dir / f"hwmon{index + 10}").symlink_to(targets[name])
    after = collector(sysfs).collect(NOW)
    assert temps(after) == temps(before)
    assert sorted(c.key for c in after.chips) == sorted(c.key for c in before.chips)


def test_plain_directories_without_device_link(tmp_path: Path) -> None:
    """Some test rigs and containers expose hwmon<N> as plain directories."""
    chip = tmp_path / "class" / "hwmon" / "hwmon0"
    chip.mkdir(parents=True)
    (chip / "name").write_text("drivetemp\n")
    (chip / "temp1_input").write_text("34000\n")
    (chip / "temp1_crit").write_text("70000\n")
    readings = collector(tmp_path).collect(NOW)
    [only] = readings.chips
    assert (only.key, only.device_path) == ("drivetemp@hwmon0", None)
    assert only.temperatures[0].margin_to_crit_celsius == 36.0


def test_device_path_without_device_link_comes_from_the_location(sysfs: Path) -> None:
    (hwmon_chip_dir(sysfs, "coretemp.0") / "device").unlink()
    (hwmon_chip_dir(sysfs, "thermal_zone0") / "device").unlink()
    chips = {c.name: c for c in collector(sysfs).collect(NOW).chips}
    assert (chips["coretemp"].key, chips["coretemp"].device_path) == (
        "coretemp@coretemp.0",
        "platform/coretemp.0",
    )
    assert chips["acpitz"].device_path == "virtual/thermal/thermal_zone0"


def test_two_chips_with_the_same_short_key_get_full_paths(sysfs: Path) -> None:
    # A second socket's coretemp under another parent with the same device name.
    other = sysfs / "devices" / "platform" / "other" / "coretemp.0"
    shutil.copytree(hwmon_chip_dir(sysfs, "coretemp.0").parent.parent, other, symlinks=True)
    (sysfs / "class" / "hwmon" / "hwmon9").symlink_to(
        "../../devices/platform/other/coretemp.0/hwmon/hwmon1"
    )
    keys = [c.key for c in collector(sysfs).collect(NOW).chips if c.name == "coretemp"]
    assert keys == ["coretemp@platform/coretemp.0", "coretemp@platform/other/coretemp.0"]


def test_vanished_chip_is_reported_unavailable(sysfs: Path) -> None:
    hwmon = collector(sysfs)
    hwmon.collect(NOW)
    (sysfs / "class" / "hwmon" / "hwmon4").unlink()  # nct6775 driver unbound
    readings = hwmon.collect(NOW + 10)
    missing = {u.device: u.reason for u in readings.unavailable}
    assert set(missing) == {
        *(f"nct6775@nct6775.656/fan{i}" for i in (1, 2, 3)),
        *(f"nct6775@nct6775.656/in{i}" for i in range(4)),
        "nct6775@nct6775.656/temp1",
        "nct6775@nct6775.656/temp2",
    }
    assert set(missing.values()) == {"no longer discovered"}


def test_dangling_class_link_is_ignored(sysfs: Path) -> None:
    (sysfs / "class" / "hwmon" / "hwmon7").symlink_to("../../devices/platform/gone/hwmon/hwmon7")
    assert len(collector(sysfs).collect(NOW).chips) == 7


def test_settings_ignore_chips_and_zones(sysfs: Path) -> None:
    readings = collector(
        sysfs, HwmonSettings(ignore_chips=("nvme", "acpitz"), thermal_zones=False)
    ).collect(NOW)
    assert [c.name for c in readings.chips] == [
        "coretemp",
        "k10temp",
        "nct6775",
        "ina226",
        "power_meter",
    ]
    assert readings.thermal_zones == ()


def test_settings_validation_and_config() -> None:
    with pytest.raises(ValueError, match="ignore_chips"):
        HwmonSettings(ignore_chips=("",))
    config = parse_config(
        {"collectors": {"hwmon": {"ignore_chips": ["nvme"], "thermal_zones": False}}}, "agent.toml"
    )
    assert config.collectors["hwmon"] == HwmonSettings(ignore_chips=("nvme",), thermal_zones=False)
    with pytest.raises(ConfigError, match=r"collectors\.hwmon\.ignore_chips"):
        parse_config({"collectors": {"hwmon": {"ignore_chips": [" "]}}}, "agent.toml")


def test_registered_and_summarized(sysfs: Path) -> None:
    assert registry()["hwmon"].factory is HwmonCollector
    readings = collector(sysfs).collect(NOW)
    lines = HwmonCollector.summarize(readings)
    assert lines[0] == "hottest 52.0 C, least headroom to critical 46.0 C"
    assert any(
        line.startswith("coretemp@coretemp.0: Package id 0 45.0 C (crit 100)") for line in lines
    )
    assert "nct6775@nct6775.656" in "\n".join(lines)
    assert HwmonCollector.summarize(HwmonReadings((), (), None, None, ())) == [
        "no hwmon chips or thermal zones"
    ]
    assert json.loads(json.dumps(to_jsonable(readings)))["chips"][1]["key"] == "coretemp@coretemp.0"


def test_cli_end_to_end(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent's own command line against the static fixture tree."""
    # The CLI replaces the root logger's handlers; keep the test session's.
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)
    args = ["collect", "--once", "--collectors", "hwmon", "--sysfs-root", str(STATIC_TREE)]
    assert cli.main([*args, "--json", "--log-level", "error"]) == 0
    report = json.loads(capsys.readouterr().out)["hwmon"]
    assert report["ok"] is True
    data = report["data"]
    assert data["hottest_celsius"] == 52.0
    assert data["chips"][1]["temperatures"][0]["label"] == "Package id 0"
    assert data["thermal_zones"][0]["margin_to_critical_celsius"] == 91.2
    assert cli.main([*args, "--log-level", "error"]) == 0
    assert "coretemp@coretemp.0: Package id 0 45.0 C" in capsys.readouterr().out
