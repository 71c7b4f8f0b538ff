"""Running smartctl (real subprocesses), the version probe and device discovery parsing."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil
import pytest

from novacron.agent.collectors.smart.discovery import (
    DeviceRef,
    ScanError,
    merge_refs,
    parse_device_setting,
    parse_scan_json,
    parse_scan_text,
)
from novacron.agent.collectors.smart.smartctl import (
    SmartctlNotFound,
    SmartctlTimeout,
    parse_version,
    probe_version,
    run_smartctl,
)
from tests.fixtures.smartctl import HEALTHY_ATA, FakeDisk, write_fake_smartctl


def echo_script(tmp_path: Path) -> Path:
    """An executable that prints its argv and LC_ALL, to see exactly what it was given."""
    script = tmp_path / "echo-smartctl"
    script.write_text(
        f"#!{sys.executable} -S\nimport json, os, sys\n"
        "print(json.dumps([sys.argv[1:], os.environ.get('LC_ALL')]))\nsys.exit(64)\n"
    )
    script.chmod(0o755)
    return script


def test_arguments_reach_smartctl_verbatim_without_a_shell(tmp_path: Path) -> None:
    tricky = ["--json", "$(touch pwned)", "; echo x", "/dev/sd*"]
    result = run_smartctl(str(echo_script(tmp_path)), tricky, 10)
    assert result.returncode == 64  # exit status bits pass through unchanged
    assert result.text.strip() == '[["--json", "$(touch pwned)", "; echo x", "/dev/sd*"], "C"]'
    assert not (tmp_path / "pwned").exists()


def test_hung_smartctl_is_killed_at_the_deadline(tmp_path: Path) -> None:
    fake = write_fake_smartctl(
        tmp_path, [FakeDisk("/dev/sda", HEALTHY_ATA, mode="hang", hang_seconds=60)]
    )
    started = time.monotonic()
    with pytest.raises(SmartctlTimeout, match=r"timed out after 0.5 s: smartctl --json"):
        run_smartctl(str(fake), ["--json", "--xall", "-d", "sat", "/dev/sda"], 0.5)
    assert time.monotonic() - started < 3
    assert psutil.Process().children() == []  # killed and reaped, nothing left behind


def test_missing_or_unexecutable_smartctl(tmp_path: Path) -> None:
    with pytest.raises(SmartctlNotFound, match="no such file"):
        run_smartctl(str(tmp_path / "smartctl"), ["--version"], 5)
    plain = tmp_path / "not-executable"
    plain.write_text("#!/bin/sh\n")
    with pytest.raises(SmartctlNotFound, match="cannot execute"):
        run_smartctl(str(plain), ["--version"], 5)


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("smartctl 7.3 2022-02-28 r5338 [x86_64-linux-6.1.0-13-amd64] (local build)\n", (7, 3)),
        ("smartctl 6.6 2016-05-31 r4324 [x86_64-linux-4.15.0-20-generic] (local build)", (6, 6)),
        ("\n  smartctl 7.10 2030-01-01 r9999 [aarch64]\n", (7, 10)),
        ("sudo: a password is required\n", None),
        ("", None),
        ("smartctl version unknown", None),
    ],
)
def test_parse_version(text: str, version: tuple[int, int] | None) -> None:
    assert parse_version(text) == version


def test_probe_version_of_the_fakes(tmp_path: Path) -> None:
    assert probe_version(str(write_fake_smartctl(tmp_path / "a", [])), 10) == (7, 3)
    assert probe_version(str(write_fake_smartctl(tmp_path / "b", [], version="6.6")), 10) == (
        6,
        6,
    )


SCAN_TEXT = """\
/dev/sda -d sat # /dev/sda [SAT], ATA device
/dev/sdb -d scsi # /dev/sdb, SCSI device
# /dev/sdc -d scsi # /dev/sdc, SCSI device open failed: Permission denied
/dev/bus/0 -d sat+megaraid,4 # /dev/bus/0 [megaraid_disk_04] [SAT], ATA device
/dev/nvme0 -d nvme # /dev/nvme0, NVMe device
# scan_smart_devices: glob(3) aborted matching pattern /dev/discs/*
"""


def test_parse_scan_text() -> None:
    assert parse_scan_text(SCAN_TEXT) == (
        DeviceRef("/dev/sda", "sat"),
        DeviceRef("/dev/sdb", "scsi"),
        DeviceRef("/dev/sdc", "scsi", "Permission denied"),
        DeviceRef("/dev/bus/0", "sat+megaraid,4"),
        DeviceRef("/dev/nvme0", "nvme"),
    )
    assert parse_scan_text("smartctl 6.6 2016-05-31 r4324\nUnknown option\n") == ()


def test_parse_scan_json() -> None:
    doc = {
        "devices": [
            {"name": "/dev/sda", "info_name": "/dev/sda [SAT]", "type": "sat", "protocol": "ATA"},
            {"name": "/dev/sdb", "type": "scsi", "open_error": "Permission denied"},
        ]
    }
    assert parse_scan_json(doc) == (
        DeviceRef("/dev/sda", "sat"),
        DeviceRef("/dev/sdb", "scsi", "Permission denied"),
    )
    assert parse_scan_json({"smartctl": {"exit_status": 0}}) == ()  # a node without disks


@pytest.mark.parametrize("doc", [[], {"devices": {}}, {"devices": [{"type": "sat"}]}])
def test_parse_scan_json_rejects_other_shapes(doc: object) -> None:
    with pytest.raises(ScanError):
        parse_scan_json(doc)


def test_device_refs_and_settings() -> None:
    assert parse_device_setting("/dev/sda") == DeviceRef("/dev/sda", None)
    raid = parse_device_setting("/dev/bus/0 -d megaraid,4  # slot 4")
    assert raid == DeviceRef("/dev/bus/0", "megaraid,4")
    assert raid.key == "/dev/bus/0 -d megaraid,4"
    assert raid.smartctl_args() == ["-d", "megaraid,4", "/dev/bus/0"]
    assert DeviceRef("/dev/sda", "sat").key == "/dev/sda"
    assert DeviceRef("/dev/sda", None).smartctl_args() == ["/dev/sda"]
    for bad in ("", "/dev/sda -d", "/dev/sda sat", "/dev/sda -d sat extra"):
        with pytest.raises(ValueError, match="expected 'DEVICE' or 'DEVICE -d TYPE'"):
            parse_device_setting(bad)


def test_merge_refs_keeps_first_per_key() -> None:
    merged = merge_refs(
        [DeviceRef("/dev/sda", "sat"), DeviceRef("/dev/nvme0", "nvme")],
        [DeviceRef("/dev/nvme0", "nvme", "busy"), DeviceRef("/dev/nvme1", "nvme")],
    )
    assert merged == (
        DeviceRef("/dev/sda", "sat"),
        DeviceRef("/dev/nvme0", "nvme"),
        DeviceRef("/dev/nvme1", "nvme"),
    )
