"""parse_disk_json over every real recording, plus the derived and malformed cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from novacron.agent.collectors.smart.model import FAILURE_ATTRIBUTE_IDS
from novacron.agent.collectors.smart.parse_json import SmartOutputError, parse_disk_json
from tests.fixtures.smartctl import (
    DEGRADED_SCSI,
    FAILING_ATA,
    FAILING_NVME,
    FIXTURES,
    HEALTHY_ATA,
    NVME_MEDIA_ERRORS,
    REAL_RECORDINGS,
)


def load(relative: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / relative).read_text())
    return doc


def test_all_thirty_real_recordings_are_present() -> None:
    assert len(REAL_RECORDINGS) == 30


@pytest.mark.parametrize("name", REAL_RECORDINGS)
def test_every_real_recording_parses_with_typed_fields(name: str) -> None:
    doc = load(f"json/{name}")
    disk = parse_disk_json(doc)
    assert disk.device == doc["device"]["name"]
    assert disk.device_type == doc["device"]["type"]
    assert disk.protocol == doc["device"]["protocol"]
    assert disk.protocol in {"ATA", "NVMe", "SCSI"}
    assert isinstance(disk.model, str) and disk.model
    assert isinstance(disk.capacity_bytes, int) and disk.capacity_bytes > 10**10
    assert disk.smart_passed is doc["smart_status"]["passed"]
    assert disk.temperature_celsius == doc["temperature"]["current"]
    assert disk.power_on_hours == doc.get("power_on_time", {}).get("hours")
    assert disk.exit_status is not None
    assert disk.exit_status.value == doc["smartctl"]["exit_status"]
    assert disk.backend == "json"
    if disk.protocol == "ATA":
        assert disk.nvme is None and disk.scsi is None
        ids = [a.id for a in disk.ata_attributes]
        assert 5 in ids and set(ids) <= set(FAILURE_ATTRIBUTE_IDS)
        for attribute in disk.ata_attributes:
            assert isinstance(attribute.value, int) and isinstance(attribute.thresh, int)
            assert isinstance(attribute.raw_value, int) and isinstance(attribute.raw_string, str)
            assert isinstance(attribute.prefailure, bool)
    elif disk.protocol == "NVMe":
        assert disk.ata_attributes == () and disk.scsi is None and disk.nvme is not None
        log = doc["nvme_smart_health_information_log"]
        assert disk.nvme.media_errors == log["media_errors"]
        assert disk.nvme.available_spare_percent == log["available_spare"]
        assert disk.nvme.data_units_written == log["data_units_written"]
        assert isinstance(disk.nvme.unsafe_shutdowns, int)
    else:
        assert disk.ata_attributes == () and disk.nvme is None and disk.scsi is not None
        assert disk.scsi.grown_defect_list == doc["scsi_grown_defect_list"]
        assert isinstance(disk.scsi.read_uncorrected_errors, int)


def test_healthy_ata_values() -> None:
    disk = parse_disk_json(load(HEALTHY_ATA), device_key="/dev/sdq")
    assert disk.device == "/dev/sdq"
    assert disk.model == "Hitachi HUA722020ALA330"
    assert disk.capacity_bytes == 2_000_398_934_016
    assert (disk.smart_passed, disk.temperature_celsius, disk.power_on_hours) == (True, 28, 78405)
    assert [a.id for a in disk.ata_attributes] == [5, 9, 194, 197, 198, 199]
    reallocated = disk.attribute(5)
    assert reallocated is not None
    assert (reallocated.value, reallocated.worst, reallocated.thresh) == (100, 100, 5)
    assert (reallocated.raw_value, reallocated.when_failed, reallocated.prefailure) == (
        0,
        None,
        True,
    )
    temperature = disk.attribute(194)
    assert temperature is not None
    # The 48-bit raw value packs min/max; the decoded string keeps the reading.
    assert temperature.raw_value == 193_274_707_996
    assert temperature.raw_string == "28 (Min/Max 18/45)"


def test_failing_ata_reports_reallocated_pending_and_failing_bits() -> None:
    disk = parse_disk_json(load(FAILING_ATA))
    assert disk.smart_passed is False
    assert disk.exit_status is not None and disk.exit_status.value == 0x58
    assert disk.exit_status.smart_failing and disk.exit_status.prefail_below_threshold
    reallocated, pending = disk.attribute(5), disk.attribute(197)
    assert reallocated is not None and pending is not None
    assert (reallocated.raw_value, reallocated.value, reallocated.when_failed) == (2144, 30, "now")
    assert pending.raw_value == 72
    uncorrect = disk.attribute(187)
    assert uncorrect is not None and uncorrect.raw_value == 59


def test_real_failing_nvme_critical_warning() -> None:
    disk = parse_disk_json(load(FAILING_NVME))
    assert disk.smart_passed is False
    assert disk.exit_status is not None and disk.exit_status.smart_failing
    assert disk.nvme is not None
    assert disk.nvme.critical_warning == 16
    assert disk.nvme.critical_warnings == ("volatile_memory_backup_failed",)
    assert disk.capacity_bytes == 3_200_631_791_616  # nvme_total_capacity: no user_capacity
    assert (disk.nvme.power_on_hours, disk.nvme.unsafe_shutdowns) == (18376, 4)


def test_nvme_media_errors() -> None:
    disk = parse_disk_json(load(NVME_MEDIA_ERRORS))
    assert disk.nvme is not None
    assert (disk.nvme.media_errors, disk.nvme.error_log_entries) == (37, 51)
    assert disk.nvme.critical_warnings == ("reliability_degraded",)
    assert (disk.nvme.available_spare_percent, disk.nvme.available_spare_threshold_percent) == (
        100,
        10,
    )
    assert disk.smart_passed is False


def test_scsi_defects_and_uncorrected_errors() -> None:
    disk = parse_disk_json(load(DEGRADED_SCSI))
    assert disk.model == "SEAGATE ST373453LC"  # scsi_model_name
    assert disk.firmware == "DX10"  # scsi_revision: SCSI has no firmware_version
    assert disk.scsi is not None
    assert disk.scsi.grown_defect_list == 260
    assert (disk.scsi.read_uncorrected_errors, disk.scsi.write_uncorrected_errors) == (1, 535)
    assert disk.scsi.verify_uncorrected_errors is None  # no verify counters on this disk


@pytest.mark.parametrize(
    ("derived", "original", "changed"),
    [
        (
            FAILING_ATA,
            "json/ST3500418AS_12.json",
            {
                "ata_smart_attributes.table[5].raw.value",
                "ata_smart_attributes.table[5].raw.string",
                "ata_smart_attributes.table[5].value",
                "ata_smart_attributes.table[5].worst",
                "ata_smart_attributes.table[5].when_failed",
                "ata_smart_attributes.table[187].raw.value",
                "ata_smart_attributes.table[187].raw.string",
                "ata_smart_attributes.table[187].value",
                "ata_smart_attributes.table[187].worst",
                "ata_smart_attributes.table[197].raw.value",
                "ata_smart_attributes.table[197].raw.string",
                "ata_smart_attributes.table[198].raw.value",
                "ata_smart_attributes.table[198].raw.string",
                "ata_smart_error_log.summary.count",
                "smart_status.passed",
                "smartctl.exit_status",
            },
        ),
        (
            NVME_MEDIA_ERRORS,
            "json/SAMSUNG_MZQLB1T9HAJR-00007_19.json",
            {
                "nvme_smart_health_information_log.media_errors",
                "nvme_smart_health_information_log.num_err_log_entries",
                "nvme_smart_health_information_log.critical_warning",
                "smart_status.passed",
                "smart_status.nvme",
                "smartctl.exit_status",
            },
        ),
    ],
)
def test_derived_recordings_change_only_documented_keys(
    derived: str, original: str, changed: set[str]
) -> None:
    """README.md lists every edit made to a real recording; nothing else may differ."""
    assert set(differences(load(original), load(derived))) == changed


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict) and set(a) == set(b):
        return [d for k in a for d in differences(a[k], b[k], f"{path}.{k}".lstrip("."))]
    if path.endswith("table") and isinstance(a, list) and isinstance(b, list):
        return [
            d
            for row_a, row_b in zip(a, b, strict=True)
            for d in differences(row_a, row_b, f"{path}[{row_a['id']}]")
        ]
    return [] if a == b else [path]


@pytest.mark.parametrize("doc", [None, [], "text", 42])
def test_not_an_object_is_an_error(doc: Any) -> None:
    with pytest.raises(SmartOutputError, match="expected a JSON object"):
        parse_disk_json(doc)


def test_open_failed_document_has_no_device_section() -> None:
    doc = load("host/open-failed-smartctl-7.3.json")
    with pytest.raises(SmartOutputError, match="no 'device' section"):
        parse_disk_json(doc)


def test_wrong_types_become_none_and_bad_rows_are_noted() -> None:
    doc = load(HEALTHY_ATA)
    doc["model_name"] = 12
    doc["temperature"] = {"current": "hot"}
    doc["user_capacity"] = {"bytes": True}
    doc["smart_status"] = {"passed": "yes"}
    doc["ata_smart_attributes"]["table"][0] = {"name": "no id"}
    doc["ata_smart_attributes"]["table"][4]["raw"] = "garbage"  # attribute 5
    disk = parse_disk_json(doc)
    assert (disk.model, disk.temperature_celsius, disk.capacity_bytes) == (None, None, None)
    assert disk.smart_passed is None
    reallocated = disk.attribute(5)
    assert reallocated is not None and reallocated.raw_value is None
    assert reallocated.value == 100
    assert any("skipped malformed ATA attribute row" in m for m in disk.messages)


def test_raid_port_key_includes_the_type() -> None:
    doc = load(HEALTHY_ATA)
    doc["device"].update(name="/dev/bus/0", type="sat+megaraid,4")
    assert parse_disk_json(doc).device == "/dev/bus/0 -d sat+megaraid,4"


def test_failing_attribute_outside_the_list_is_kept() -> None:
    doc = load(HEALTHY_ATA)
    spin_retry = next(r for r in doc["ata_smart_attributes"]["table"] if r["id"] == 10)
    spin_retry["when_failed"] = "past"
    ids = [a.id for a in parse_disk_json(doc).ata_attributes]
    assert 10 in ids


def test_smartctl_messages_are_kept() -> None:
    doc = load(HEALTHY_ATA)
    doc["smartctl"]["messages"] = [
        {"string": "Warning: ATA error count 12 inconsistent", "severity": "warning"}
    ]
    assert parse_disk_json(doc).messages == ("warning: Warning: ATA error count 12 inconsistent",)


def test_fixture_dir_has_license() -> None:
    assert "Apache License" in (FIXTURES / "LICENSE").read_text()
    assert Path(FIXTURES / "README.md").exists()
