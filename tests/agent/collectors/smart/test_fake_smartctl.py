"""The fake smartctl and its builder answer like the real binary, and fast."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.fixtures.smartctl import (
    FAILING_ATA,
    FIXTURES,
    HEALTHY_ATA,
    HEALTHY_ATA_TEXT,
    FakeDisk,
    _sd_suffix,
    install_fake_smartctl,
    write_fake_smartctl,
)


def run(smartctl: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(smartctl), *args], capture_output=True, text=True, timeout=30, check=False
    )


def scan(smartctl: Path) -> list[dict[str, str]]:
    devices: list[dict[str, str]] = json.loads(run(smartctl, "--scan-open", "--json").stdout)[
        "devices"
    ]
    return devices


def test_install_24_disks_mixes_protocols_and_names_them_like_linux(tmp_path: Path) -> None:
    smartctl = install_fake_smartctl(tmp_path, disks=24, failing=2)
    assert smartctl == tmp_path / "smartctl"
    assert smartctl.read_text().startswith("#!")
    devices = scan(smartctl)
    assert len(devices) == 24
    assert len({d["name"] for d in devices}) == 24
    assert {d["protocol"] for d in devices} == {"ATA", "NVMe", "SCSI"}
    assert {d["type"] for d in devices} == {"sat", "nvme", "scsi"}
    assert all(d["name"].startswith("/dev/nvme") == (d["protocol"] == "NVMe") for d in devices)
    failing = [d["name"] for d in devices if is_failing(smartctl, d)]
    assert failing == ["/dev/sda", "/dev/sdb"]


def is_failing(smartctl: Path, device: dict[str, str]) -> bool:
    answer = run(smartctl, "--json", "--xall", "-d", device["type"], device["name"])
    doc = json.loads(answer.stdout)
    assert answer.returncode == doc["smartctl"]["exit_status"]
    assert doc["device"]["name"] == device["name"]
    assert doc["smartctl"]["argv"] == [
        "smartctl",
        "--json",
        "--xall",
        "-d",
        device["type"],
        device["name"],
    ]
    return bool(answer.returncode & 0x08)


def test_default_node_and_limits(tmp_path: Path) -> None:
    assert len(scan(install_fake_smartctl(tmp_path / "a"))) == 6
    assert scan(install_fake_smartctl(tmp_path / "b", disks=0)) == []
    with pytest.raises(ValueError, match="failing must be between 0 and disks"):
        install_fake_smartctl(tmp_path / "c", disks=2, failing=3)


def test_builder_is_fast_enough_to_call_every_second(tmp_path: Path) -> None:
    install_fake_smartctl(tmp_path, disks=24, failing=1)
    started = time.perf_counter()
    for failing in range(10):
        install_fake_smartctl(tmp_path, disks=24, failing=failing)
    assert (time.perf_counter() - started) / 10 < 0.05


def test_version_banners(tmp_path: Path) -> None:
    new = run(write_fake_smartctl(tmp_path / "new", []), "--version")
    assert new.stdout == (FIXTURES / "host" / "version-7.3.txt").read_text()
    old = run(write_fake_smartctl(tmp_path / "old", [], version="6.6"), "--version")
    assert old.stdout.startswith("smartctl 6.6 2016-05-31 r4324 ")
    rejected = run(tmp_path / "old" / "smartctl", "--json", "--scan-open")
    assert rejected.returncode == 1
    assert "=======> UNRECOGNIZED OPTION: json" in rejected.stdout


def test_text_answers_for_pysmart(tmp_path: Path) -> None:
    smartctl = write_fake_smartctl(
        tmp_path, [FakeDisk("/dev/sda", HEALTHY_ATA, text=HEALTHY_ATA_TEXT)], version="6.6"
    )
    assert run(smartctl, "--scan-open").stdout == "/dev/sda -d sat # /dev/sda [SAT], ATA device\n"
    full = run(smartctl, "-d", "sat", "--all", "/dev/sda")
    assert full.returncode == 0
    assert full.stdout == (FIXTURES / HEALTHY_ATA_TEXT).read_text()
    detected = run(smartctl, "-d", "test", "/dev/sda")
    assert detected.stdout.endswith("/dev/sda: Device of type 'sat' [ATA] opened\n")
    missing = run(smartctl, "-d", "sat", "--all", "/dev/sdz")
    assert missing.returncode == 2
    assert missing.stdout.endswith("Smartctl open device: /dev/sdz [SAT] failed: No such device\n")


def test_open_failed_json_is_the_real_smartctl_document(tmp_path: Path) -> None:
    smartctl = write_fake_smartctl(
        tmp_path, [FakeDisk("/dev/sdb", FAILING_ATA, mode="open_failed")]
    )
    answer = run(smartctl, "--json", "--xall", "-d", "sat", "/dev/sdb")
    assert answer.returncode == 2
    doc = json.loads(answer.stdout)
    real = json.loads((FIXTURES / "host" / "open-failed-smartctl-7.3.json").read_text())
    assert set(doc) == set(real) and "device" not in doc
    assert doc["smartctl"]["messages"] == [
        {
            "string": "Smartctl open device: /dev/sdb [SAT] failed: No such device",
            "severity": "error",
        }
    ]


def test_sd_names_continue_after_z() -> None:
    assert [_sd_suffix(i) for i in (0, 25, 26, 27, 701, 702)] == [
        "a",
        "z",
        "aa",
        "ab",
        "zz",
        "aaa",
    ]
