"""AvailabilityTracker: silence is reported, recovery clears it, forgetting is explicit."""

from __future__ import annotations

import logging

import pytest

from novacron.agent.collectors.base import AvailabilityTracker


def test_vanished_device_is_unavailable_since_first_miss(caplog: pytest.LogCaptureFixture) -> None:
    tracker = AvailabilityTracker("test")
    assert tracker.update(["sda", "sdb"], {}, now=100.0) == ()
    with caplog.at_level(logging.WARNING):
        first = tracker.update(["sda"], {}, now=110.0)
        second = tracker.update(["sda"], {}, now=120.0)
    assert [(u.device, u.unavailable_since, u.reason) for u in first] == [
        ("sdb", 110.0, "no longer discovered")
    ]
    assert second[0].unavailable_since == 110.0
    assert sum("device unavailable" in r.getMessage() for r in caplog.records) == 1


def test_failed_device_carries_its_reason_and_recovers() -> None:
    tracker = AvailabilityTracker("test")
    tracker.update(["sda"], {}, now=1.0)
    (down,) = tracker.update([], {"sda": "timed out after 20 s"}, now=2.0)
    assert down.reason == "timed out after 20 s"
    assert tracker.update(["sda"], {}, now=3.0) == ()
    (again,) = tracker.update([], {"sda": "garbage"}, now=4.0)
    assert again.unavailable_since == 4.0  # a new outage starts a new clock


def test_forgotten_devices_are_not_reported() -> None:
    tracker = AvailabilityTracker("test")
    tracker.update(["vm-1", "vm-2"], {}, now=1.0)
    tracker.forget(["vm-2"])
    assert tracker.update(["vm-1"], {}, now=2.0) == ()
    tracker.update(["vm-1"], {}, now=3.0)
    (down,) = tracker.update([], {}, now=4.0)
    assert down.device == "vm-1"
