"""``smartctl --json --xall`` output (a parsed JSON object) -> :class:`DiskHealth`.

Pure functions, no I/O. smartctl's JSON schema grows between versions and differs per
protocol, so every key is optional: a missing or wrongly typed value becomes ``None``
and never an exception. Only output that is not a smartctl disk document at all (not
an object, no ``device`` section) raises :class:`SmartOutputError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from novacron.agent.collectors.smart.exit_status import (
    decode_critical_warning,
    decode_exit_status,
)
from novacron.agent.collectors.smart.model import (
    FAILURE_ATTRIBUTE_IDS,
    AtaAttribute,
    DiskHealth,
    ExitStatus,
    NvmeHealth,
    ScsiHealth,
    WhenFailed,
)

_WHEN_FAILED: dict[str, WhenFailed] = {"now": "now", "past": "past"}


class SmartOutputError(ValueError):
    """The output is not a smartctl disk report (garbage, truncated, another program)."""


def parse_disk_json(doc: Any, device_key: str | None = None) -> DiskHealth:
    """Build the typed reading for one disk from smartctl's JSON document.

    ``device_key`` is the collector's key for the disk (see ``DeviceRef.key``); without
    it the key is derived from the document's ``device`` section.
    """
    if not isinstance(doc, Mapping):
        raise SmartOutputError(f"expected a JSON object, got {type(doc).__name__}")
    device = doc.get("device")
    if not isinstance(device, Mapping) or not isinstance(device.get("name"), str):
        raise SmartOutputError("no 'device' section: not a smartctl disk report")
    name = device["name"]
    device_type = _str(device.get("type"))
    if device_key is None:
        device_key = f"{name} -d {device_type}" if device_type and "," in device_type else name
    notes: list[str] = []
    nvme = _nvme_health(_map(doc.get("nvme_smart_health_information_log")))
    attributes = _ata_attributes(_map(doc.get("ata_smart_attributes")), notes)
    return DiskHealth(
        device=device_key,
        device_type=device_type,
        protocol=_str(device.get("protocol")),
        model=_model(doc),
        serial=_str(doc.get("serial_number")),
        firmware=_str(doc.get("firmware_version")) or _str(doc.get("scsi_revision")),
        capacity_bytes=_first_int(
            _map(doc.get("user_capacity")).get("bytes"), doc.get("nvme_total_capacity")
        ),
        smart_passed=_bool(_map(doc.get("smart_status")).get("passed")),
        temperature_celsius=_first_int(
            _map(doc.get("temperature")).get("current"),
            nvme.temperature_celsius if nvme else None,
        ),
        power_on_hours=_first_int(
            _map(doc.get("power_on_time")).get("hours"),
            nvme.power_on_hours if nvme else None,
        ),
        exit_status=_exit_status(_map(doc.get("smartctl")).get("exit_status")),
        ata_attributes=attributes,
        nvme=nvme,
        scsi=_scsi_health(doc),
        messages=(*_messages(_map(doc.get("smartctl")).get("messages")), *notes),
        backend="json",
    )


def _model(doc: Mapping[str, Any]) -> str | None:
    """ATA/NVMe ``model_name``; SCSI ``scsi_model_name`` (7.3+) or vendor + product."""
    for key in ("model_name", "scsi_model_name"):
        value = _str(doc.get(key))
        if value:
            return value
    parts = [_str(doc.get(k)) for k in ("scsi_vendor", "scsi_product")]
    return " ".join(p for p in parts if p) or None


def _ata_attributes(section: Mapping[str, Any], notes: list[str]) -> tuple[AtaAttribute, ...]:
    table = section.get("table", [])
    if not isinstance(table, list):
        notes.append("parse: ata_smart_attributes.table is not a list")
        return ()
    rows: list[AtaAttribute] = []
    for row in table:
        attribute_id = _int(row.get("id")) if isinstance(row, Mapping) else None
        if attribute_id is None or not isinstance(row, Mapping):
            notes.append(f"parse: skipped malformed ATA attribute row {row!r:.80}")
            continue
        when_failed = _WHEN_FAILED.get(str(row.get("when_failed", "")))
        if attribute_id not in FAILURE_ATTRIBUTE_IDS and when_failed is None:
            continue
        raw = _map(row.get("raw"))
        rows.append(
            AtaAttribute(
                id=attribute_id,
                name=_str(row.get("name")) or f"Unknown_Attribute_{attribute_id}",
                value=_int(row.get("value")),
                worst=_int(row.get("worst")),
                thresh=_int(row.get("thresh")),
                when_failed=when_failed,
                prefailure=_bool(_map(row.get("flags")).get("prefailure")),
                raw_value=_int(raw.get("value")),
                raw_string=_str(raw.get("string")),
            )
        )
    return tuple(sorted(rows, key=lambda a: a.id))


def _nvme_health(log: Mapping[str, Any]) -> NvmeHealth | None:
    if not log:
        return None
    warning = _int(log.get("critical_warning"))
    return NvmeHealth(
        critical_warning=warning,
        critical_warnings=decode_critical_warning(warning),
        media_errors=_int(log.get("media_errors")),
        available_spare_percent=_int(log.get("available_spare")),
        available_spare_threshold_percent=_int(log.get("available_spare_threshold")),
        percentage_used_percent=_int(log.get("percentage_used")),
        temperature_celsius=_int(log.get("temperature")),
        power_on_hours=_int(log.get("power_on_hours")),
        unsafe_shutdowns=_int(log.get("unsafe_shutdowns")),
        error_log_entries=_int(log.get("num_err_log_entries")),
        data_units_read=_int(log.get("data_units_read")),
        data_units_written=_int(log.get("data_units_written")),
    )


def _scsi_health(doc: Mapping[str, Any]) -> ScsiHealth | None:
    counters = _map(doc.get("scsi_error_counter_log"))
    if "scsi_grown_defect_list" not in doc and not counters:
        return None

    def uncorrected(direction: str) -> int | None:
        return _int(_map(counters.get(direction)).get("total_uncorrected_errors"))

    return ScsiHealth(
        grown_defect_list=_int(doc.get("scsi_grown_defect_list")),
        read_uncorrected_errors=uncorrected("read"),
        write_uncorrected_errors=uncorrected("write"),
        verify_uncorrected_errors=uncorrected("verify"),
    )


def _exit_status(value: Any) -> ExitStatus | None:
    number = _int(value)
    if number is None or not 0 <= number <= 0xFF:
        return None
    return decode_exit_status(number)


def _messages(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    out = []
    for message in value:
        if isinstance(message, Mapping) and isinstance(message.get("string"), str):
            out.append(f"{message.get('severity', 'information')}: {message['string']}")
    return tuple(out)


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _first_int(*values: Any) -> int | None:
    return next((v for v in map(_int, values) if v is not None), None)


def _str(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


__all__ = ["SmartOutputError", "parse_disk_json"]
