"""The pySMART backend: smartctl 6.6 text output, timeouts, and agreement with JSON."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from novacron.agent.collectors.base import CollectorContext
from novacron.agent.collectors.smart import SmartCollector, SmartSettings
from novacron.agent.collectors.smart.model import DiskHealth
from tests.fixtures.smartctl import (
    FAILING_NVME,
    FAILING_NVME_TEXT,
    HEALTHY_ATA,
    HEALTHY_ATA_TEXT,
    FakeDisk,
    write_fake_smartctl,
)

OLD_NODE = [
    FakeDisk("/dev/sda", HEALTHY_ATA, text=HEALTHY_ATA_TEXT),
    FakeDisk("/dev/nvme0", FAILING_NVME, text=FAILING_NVME_TEXT),
]


def collector(smartctl: Path, **settings: object) -> SmartCollector:
    return SmartCollector(
        CollectorContext(),
        SmartSettings(smartctl_path=str(smartctl), **settings),  # type: ignore[arg-type]
    )


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_smartctl_66_is_read_through_pysmart_without_json(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    fake = write_fake_smartctl(tmp_path, OLD_NODE, version="6.6", calls_log=log)
    readings = collector(fake).collect(now=1.0)
    assert (readings.smartctl_version, readings.backend) == ("6.6", "pysmart")
    assert readings.unavailable == ()
    nvme, ata = readings.disks
    assert (ata.device, ata.protocol, ata.model) == ("/dev/sda", "ATA", "Hitachi HUA722020ALA330")
    assert (ata.smart_passed, ata.temperature_celsius, ata.power_on_hours) == (True, 28, 78405)
    assert ata.capacity_bytes == 2_000_398_934_016
    assert (nvme.protocol, nvme.smart_passed) == ("NVMe", False)
    assert nvme.exit_status is not None and nvme.exit_status.value == 8
    assert nvme.nvme is not None and nvme.nvme.critical_warning == 0x10
    made = calls(log)
    assert made[:3] == [
        ["--version"],
        ["--scan-open"],
        ["--scan-open", "-d", "nvme"],  # smartctl 6.x lists NVMe only when asked
    ]
    assert sorted(made[3:]) == [
        ["-d", "nvme", "--all", "/dev/nvme0"],
        ["-d", "sat", "--all", "/dev/sda"],
    ]
    assert not any("--json" in call for call in calls(log))


def comparable(disk: DiskHealth) -> DiskHealth:
    """Drop what legitimately differs between backends: the name and 48-bit packed raws."""
    attributes = tuple(
        dataclasses.replace(a, raw_value=None) if a.id == 194 else a for a in disk.ata_attributes
    )
    return dataclasses.replace(disk, backend="json", ata_attributes=attributes, messages=())


def test_both_backends_agree_value_for_value(tmp_path: Path) -> None:
    new = collector(write_fake_smartctl(tmp_path / "new", OLD_NODE)).collect(now=1.0)
    old = collector(write_fake_smartctl(tmp_path / "old", OLD_NODE, version="6.6")).collect(1.0)
    assert (new.backend, old.backend) == ("json", "pysmart")
    assert len(new.disks) == len(old.disks) == 2
    for from_json, from_text in zip(new.disks, old.disks, strict=True):
        assert comparable(from_text) == comparable(from_json)


def test_forced_pysmart_on_smartctl_7(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    fake = write_fake_smartctl(tmp_path, OLD_NODE, calls_log=log)
    readings = collector(fake, backend="pysmart").collect(now=1.0)
    assert readings.backend == "pysmart"
    assert [d.device for d in readings.disks] == ["/dev/nvme0", "/dev/sda"]
    assert ["--scan-open", "-d", "nvme"] not in calls(log)  # 7.x scans NVMe by default


def test_forced_json_on_smartctl_66_fails_clearly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    fake = write_fake_smartctl(tmp_path, OLD_NODE, version="6.6")
    readings = collector(fake, backend="json").collect(now=1.0)
    assert (readings.backend, readings.disks, readings.unavailable) == ("json", (), ())
    record = next(r for r in caplog.records if r.getMessage() == "smartctl scan failed")
    assert "exit status 1" in record.__dict__["error"]
    assert "UNRECOGNIZED OPTION" in record.__dict__["error"]


def test_pysmart_calls_are_bounded_by_the_timeout(tmp_path: Path) -> None:
    disks = [dataclasses.replace(OLD_NODE[0], mode="hang", hang_seconds=60), OLD_NODE[1]]
    smart = collector(write_fake_smartctl(tmp_path, disks, version="6.6"), timeout_seconds=2.0)
    started = time.monotonic()
    readings = smart.collect(now=3.0)
    assert time.monotonic() - started < 5
    assert [d.device for d in readings.disks] == ["/dev/nvme0"]
    (gone,) = readings.unavailable
    assert (gone.device, gone.unavailable_since) == ("/dev/sda", 3.0)
    assert gone.reason.startswith("timed out after 2 s")


def test_pysmart_garbage_and_open_failure(tmp_path: Path) -> None:
    disks = [
        dataclasses.replace(OLD_NODE[0], mode="garbage"),
        dataclasses.replace(OLD_NODE[1], mode="open_failed"),
    ]
    readings = collector(write_fake_smartctl(tmp_path, disks, version="6.6")).collect(now=1.0)
    assert readings.disks == ()
    reasons = {u.device: u.reason for u in readings.unavailable}
    assert reasons["/dev/sda"].startswith("unparseable smartctl output (exit status 0)")
    assert reasons["/dev/nvme0"] == (
        "device open failed (exit status 2): Smartctl open device: /dev/nvme0 failed: "
        "No such device"
    )


@pytest.mark.parametrize("lang", ["en_US.UTF-8", None])
def test_importing_pysmart_leaves_the_process_as_it_was(lang: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LANG"}
    if lang:
        env["LANG"] = lang
    code = (
        "import logging, os\n"
        "import novacron.agent.collectors.smart.pysmart_backend\n"
        "print(os.environ.get('LANG'), logging.getLoggerClass().__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == [str(lang), "Logger"]
