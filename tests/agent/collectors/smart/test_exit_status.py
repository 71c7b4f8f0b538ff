"""smartctl exit-status bits and NVMe critical-warning bits."""

from __future__ import annotations

import dataclasses

import pytest

from novacron.agent.collectors.smart.exit_status import (
    EXIT_BITS,
    decode_critical_warning,
    decode_exit_status,
    describe_exit_status,
)

FIELDS = [
    "command_line_error",
    "device_open_failed",
    "command_failed",
    "smart_failing",
    "prefail_below_threshold",
    "attribute_below_threshold_in_past",
    "error_log_has_errors",
    "self_test_log_has_errors",
]


@pytest.mark.parametrize(("bit", "field"), [(1 << i, f) for i, f in enumerate(FIELDS)])
def test_each_bit_sets_exactly_its_field(bit: int, field: str) -> None:
    status = decode_exit_status(bit)
    flags = {f.name: getattr(status, f.name) for f in dataclasses.fields(status)}
    assert flags.pop("value") == bit
    assert flags == {f: f == field for f in FIELDS}


def test_zero_is_all_clear_and_has_data() -> None:
    status = decode_exit_status(0)
    assert not any(getattr(status, f) for f in FIELDS)
    assert status.no_data is False
    assert describe_exit_status(status) == []


def test_failing_disk_status_keeps_data() -> None:
    # 0x58 is what smartctl returns for the derived failing ATA disk: it read everything.
    status = decode_exit_status(0x58)
    assert status.smart_failing and status.prefail_below_threshold
    assert status.error_log_has_errors
    assert not status.command_failed
    assert status.no_data is False
    assert describe_exit_status(status) == [
        "SMART status says DISK FAILING",
        "pre-fail attribute at or below threshold",
        "device error log has entries",
    ]


@pytest.mark.parametrize("value", [0x01, 0x02, 0x03, 0x42])
def test_command_line_or_open_failure_means_no_data(value: int) -> None:
    assert decode_exit_status(value).no_data is True


def test_command_failed_alone_still_has_data() -> None:
    assert decode_exit_status(0x04).no_data is False


def test_all_bits() -> None:
    status = decode_exit_status(0xFF)
    assert all(getattr(status, f) for f in FIELDS)
    assert len(describe_exit_status(status)) == len(EXIT_BITS) == 8


@pytest.mark.parametrize("value", [-9, 256, 1000])
def test_values_outside_a_byte_are_rejected(value: int) -> None:
    with pytest.raises(ValueError, match="not a smartctl exit status"):
        decode_exit_status(value)


def test_nvme_critical_warning_bits() -> None:
    assert decode_critical_warning(None) == ()
    assert decode_critical_warning(0) == ()
    assert decode_critical_warning(0x10) == ("volatile_memory_backup_failed",)
    assert decode_critical_warning(0x05) == ("spare_below_threshold", "reliability_degraded")
    assert decode_critical_warning(0xFF) == (
        "spare_below_threshold",
        "temperature_above_or_below_threshold",
        "reliability_degraded",
        "media_read_only",
        "volatile_memory_backup_failed",
        "persistent_memory_region_unreliable",
        "other_0x40",
        "other_0x80",
    )
