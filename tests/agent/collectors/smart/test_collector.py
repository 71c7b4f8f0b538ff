"""The smart collector end to end against the fake smartctl (real subprocesses)."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from novacron.agent.collectors.base import CollectorContext, UnavailableDevice, registry
from novacron.agent.collectors.smart import SmartCollector, SmartSettings
from novacron.agent.collectors.smart.model import SmartReadings
from novacron.agent.config import parse_config
from novacron.protos.runtime.tomlconfig import ConfigError
from tests.fixtures.smartctl import (
    DEGRADED_SCSI,
    FAILING_ATA,
    FAILING_NVME,
    HEALTHY_ATA,
    HEALTHY_POOL,
    NVME_MEDIA_ERRORS,
    FakeDisk,
    name_disks,
    write_fake_smartctl,
)

NODE = [
    FakeDisk("/dev/sda", HEALTHY_ATA),
    FakeDisk("/dev/sdb", FAILING_ATA),
    FakeDisk("/dev/sdc", DEGRADED_SCSI),
    FakeDisk("/dev/nvme0", NVME_MEDIA_ERRORS),
    FakeDisk("/dev/nvme1", FAILING_NVME),
]


def collector(smartctl: Path, **settings: object) -> SmartCollector:
    return SmartCollector(
        CollectorContext(),
        SmartSettings(smartctl_path=str(smartctl), **settings),  # type: ignore[arg-type]
    )


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_reads_every_protocol_with_the_real_smartctl_calls(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    smart = collector(write_fake_smartctl(tmp_path / "bin", NODE, calls_log=log))
    readings = smart.collect(now=1000.0)

    assert (readings.smartctl_version, readings.backend) == ("7.3", "json")
    assert readings.unavailable == ()
    assert [d.device for d in readings.disks] == [
        "/dev/nvme0",
        "/dev/nvme1",
        "/dev/sda",
        "/dev/sdb",
        "/dev/sdc",
    ]
    disks = {d.device: d for d in readings.disks}
    healthy, failing = disks["/dev/sda"], disks["/dev/sdb"]
    assert (healthy.protocol, healthy.smart_passed, healthy.device_type) == ("ATA", True, "sat")
    assert healthy.exit_status is not None and healthy.exit_status.value == 0
    assert failing.smart_passed is False
    assert failing.exit_status is not None and failing.exit_status.value == 0x58
    reallocated = failing.attribute(5)
    assert reallocated is not None and reallocated.raw_value == 2144
    assert reallocated.when_failed == "now"
    scsi = disks["/dev/sdc"].scsi
    assert scsi is not None and scsi.grown_defect_list == 260
    nvme = disks["/dev/nvme0"].nvme
    assert nvme is not None and nvme.media_errors == 37
    failing_nvme = disks["/dev/nvme1"]
    assert failing_nvme.nvme is not None
    assert failing_nvme.nvme.critical_warnings == ("volatile_memory_backup_failed",)

    made = calls(log)
    assert made[:2] == [["--version"], ["--scan-open", "--json"]]
    assert sorted(made[2:]) == [
        ["--json", "--xall", "-d", "nvme", "/dev/nvme0"],
        ["--json", "--xall", "-d", "nvme", "/dev/nvme1"],
        ["--json", "--xall", "-d", "sat", "/dev/sda"],
        ["--json", "--xall", "-d", "sat", "/dev/sdb"],
        ["--json", "--xall", "-d", "scsi", "/dev/sdc"],
    ]
    smart.collect(now=1010.0)
    assert [c for c in calls(log) if c == ["--version"]] == [["--version"]]  # probed once


def test_hung_disk_times_out_and_the_rest_still_report(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    disks = [dataclasses.replace(NODE[0], mode="hang", hang_seconds=60), *NODE[1:]]
    smart = collector(write_fake_smartctl(tmp_path, disks), timeout_seconds=2.0)
    caplog.set_level(logging.WARNING)
    started = time.monotonic()
    readings = smart.collect(now=1000.0)
    assert time.monotonic() - started < 5
    assert len(readings.disks) == 4
    assert readings.unavailable == (
        UnavailableDevice(
            "/dev/sda", 1000.0, "timed out after 2 s: smartctl --json --xall -d sat /dev/sda"
        ),
    )
    record = next(r for r in caplog.records if r.getMessage() == "device unavailable")
    assert record.__dict__["device"] == "/dev/sda"
    assert record.__dict__["reason"].startswith("timed out after 2 s")


def test_24_disks_with_one_hung_finish_within_about_one_timeout(tmp_path: Path) -> None:
    disks = name_disks([HEALTHY_POOL[i % len(HEALTHY_POOL)] for i in range(24)])
    disks[7] = dataclasses.replace(disks[7], mode="hang", hang_seconds=60)
    smart = collector(write_fake_smartctl(tmp_path, disks), timeout_seconds=3.0)
    started = time.monotonic()
    readings = smart.collect(now=1.0)
    elapsed = time.monotonic() - started
    assert len(readings.disks) == 23
    assert [u.device for u in readings.unavailable] == [disks[7].name]
    assert elapsed < 3.0 + 3.0, elapsed  # one timeout plus 24 process starts on 2 CPUs
    assert {d.protocol for d in readings.disks} == {"ATA", "NVMe", "SCSI"}


def test_garbage_output_makes_only_that_disk_unavailable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    disks = [NODE[0], dataclasses.replace(NODE[1], mode="garbage")]
    caplog.set_level(logging.WARNING)
    readings = collector(write_fake_smartctl(tmp_path, disks)).collect(now=5.0)
    assert [d.device for d in readings.disks] == ["/dev/sda"]
    (gone,) = readings.unavailable
    assert gone.device == "/dev/sdb"
    assert gone.reason.startswith("unparseable smartctl output (exit status 88): ")
    assert 'output: \'{ / "ata_smart_attributes": {' in gone.reason
    assert any(
        r.__dict__.get("device") == "/dev/sdb" and "unparseable" in r.__dict__.get("reason", "")
        for r in caplog.records
    )


def test_device_open_failed_is_unavailable_with_smartctls_message(tmp_path: Path) -> None:
    disks = [NODE[0], dataclasses.replace(NODE[1], mode="open_failed")]
    readings = collector(write_fake_smartctl(tmp_path, disks)).collect(now=5.0)
    assert [d.device for d in readings.disks] == ["/dev/sda"]
    (gone,) = readings.unavailable
    assert gone.reason == (
        "device open failed (exit status 2): "
        "Smartctl open device: /dev/sdb [SAT] failed: No such device"
    )


def test_scan_reports_open_error_and_the_disk_is_not_queried(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    disks = [NODE[0], dataclasses.replace(NODE[1], mode="scan_open_failed")]
    readings = collector(write_fake_smartctl(tmp_path, disks, calls_log=log)).collect(now=5.0)
    assert readings.unavailable == (
        UnavailableDevice("/dev/sdb", 5.0, "device open failed: Permission denied"),
    )
    assert not any("/dev/sdb" in call for call in calls(log))


def test_disk_vanishing_between_collections(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fake = write_fake_smartctl(tmp_path, NODE[:3])
    smart = collector(fake)
    assert len(smart.collect(now=100.0).disks) == 3

    write_fake_smartctl(tmp_path, [NODE[0], NODE[2]])  # /dev/sdb gone from the bus
    second = smart.collect(now=110.0)
    assert [d.device for d in second.disks] == ["/dev/sda", "/dev/sdc"]
    assert second.unavailable == (UnavailableDevice("/dev/sdb", 110.0, "no longer discovered"),)
    third = smart.collect(now=120.0)
    assert third.unavailable == second.unavailable  # "since" stays at the first miss
    warnings = [r for r in caplog.records if r.getMessage() == "device unavailable"]
    assert len(warnings) == 1  # logged once, not every cycle

    write_fake_smartctl(tmp_path, NODE[:3])
    back = smart.collect(now=130.0)
    assert (len(back.disks), back.unavailable) == (3, ())
    assert any(r.getMessage() == "device gives data again" for r in caplog.records)


def test_scan_failure_marks_known_disks_unavailable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = write_fake_smartctl(tmp_path, NODE[:2])
    smart = collector(fake)
    smart.collect(now=1.0)
    (tmp_path / "smartctl.json").write_text("{ not json")  # the fake now crashes
    caplog.set_level(logging.WARNING)
    readings = smart.collect(now=2.0)
    assert readings.disks == ()
    assert [u.device for u in readings.unavailable] == ["/dev/sda", "/dev/sdb"]
    assert all(u.reason.startswith("smartctl scan failed: ") for u in readings.unavailable)
    assert any(r.getMessage() == "smartctl scan failed" for r in caplog.records)


def test_no_smartctl_is_no_data(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="novacron.agent.collectors.smart")
    readings = collector(tmp_path / "missing" / "smartctl").collect(now=1.0)
    assert readings == SmartReadings(None, None, (), ())
    assert SmartCollector.summarize(readings) == ["no data: smartctl not available"]
    record = next(r for r in caplog.records if r.getMessage() == "smartctl not available")
    assert record.levelno == logging.DEBUG
    assert "no such file" in record.__dict__["error"]


def test_configured_devices_skip_the_scan(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    fake = write_fake_smartctl(tmp_path, NODE, calls_log=log)
    smart = collector(fake, devices=("/dev/sda", "/dev/nvme0 -d nvme", "/dev/sdz"))
    readings = smart.collect(now=1.0)
    assert [d.device for d in readings.disks] == ["/dev/nvme0", "/dev/sda"]
    assert [u.device for u in readings.unavailable] == ["/dev/sdz"]
    assert "device open failed" in readings.unavailable[0].reason
    assert sorted(calls(log)) == [
        ["--json", "--xall", "-d", "nvme", "/dev/nvme0"],
        ["--json", "--xall", "/dev/sda"],
        ["--json", "--xall", "/dev/sdz"],
        ["--version"],
    ]


def test_summary_lines(tmp_path: Path) -> None:
    disks = [*NODE, FakeDisk("/dev/sdd", HEALTHY_ATA, mode="open_failed")]
    readings = collector(write_fake_smartctl(tmp_path, disks)).collect(now=0.0)
    lines = SmartCollector.summarize(readings)
    assert lines[0] == "smartctl 7.3, json backend, 5 disk(s)"
    failing = next(line for line in lines if line.startswith("/dev/sdb"))
    assert "FAILED" in failing and "realloc 2144" in failing and "pending 72" in failing
    assert "[exit 0x58: SMART status says DISK FAILING;" in failing
    assert "FAILING_NOW: Reallocated_Sector_Ct" in failing
    assert any("2.00 TB  PASSED  28 C  78405 h" in line for line in lines)
    assert any("grown defects 260  uncorrected r/w/v 1/535/-" in line for line in lines)
    assert lines[-1].startswith("/dev/sdd     UNAVAILABLE since 1970-01-01 00:00:00 UTC: ")


def test_settings_validation_names_the_key() -> None:
    assert "smart" in registry() and registry()["smart"].settings_type is SmartSettings
    config = parse_config({"collectors": {"smart": {"smartctl_path": "/usr/sbin/smartctl"}}}, "t")
    settings = config.collectors["smart"]
    assert isinstance(settings, SmartSettings) and settings.enabled
    assert (settings.backend, settings.timeout_seconds, settings.devices) == ("auto", 20.0, ())
    cases = {
        "timeout_seconds": (0, "collectors.smart.timeout_seconds: must be > 0"),
        "backend": ("text", "collectors.smart.backend: must be one of"),
        "smartctl_path": (" ", "collectors.smart.smartctl_path: must not be empty"),
        "devices": (["/dev/sda sat"], "collectors.smart.devices: expected 'DEVICE'"),
    }
    for key, (value, message) in cases.items():
        with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
            parse_config({"collectors": {"smart": {key: value}}}, "t")


def test_cli_collect_once_json(tmp_path: Path) -> None:
    fake = write_fake_smartctl(tmp_path, NODE[:2])
    out = subprocess.run(
        [
            *(sys.executable, "-m", "novacron.agent.cli", "collect", "--once", "--json"),
            *("--collectors", "smart", "--smartctl", str(fake), "--log-level", "error"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(out.stdout)["smart"]
    assert report["ok"] is True
    data = report["data"]
    assert [d["device"] for d in data["disks"]] == ["/dev/sda", "/dev/sdb"]
    assert data["disks"][1]["exit_status"]["smart_failing"] is True
    assert data["disks"][1]["ata_attributes"][0] == {
        "id": 5,
        "name": "Reallocated_Sector_Ct",
        "value": 30,
        "worst": 30,
        "thresh": 36,
        "when_failed": "now",
        "prefailure": True,
        "raw_value": 2144,
        "raw_string": "2144",
    }
