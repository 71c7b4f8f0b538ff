"""Pure parsing for the libvirt collector: flat stats dictionaries and domain XML."""

from __future__ import annotations

import dataclasses
import logging

import libvirt
import pytest

from novacron.agent.collectors._libvirt_model import (
    STATE_NAMES,
    STATE_REASONS,
    DiskCounters,
    DiskRates,
    InterfaceCounters,
    InterfaceRates,
)
from novacron.agent.collectors._libvirt_parse import (
    add_rates,
    count_states,
    missing_groups,
    parse_domain_devices,
    parse_domain_stats,
    reason_name,
)
from novacron.agent.collectors._rates import RATE_SUFFIX, counter_rate, rates_between

# What getAllDomainStats returns for a running QEMU domain (libvirt 9/10, trimmed).
QEMU_BULK = {
    "state.state": 1,
    "state.reason": 1,
    "cpu.time": 2_345_678_901_234,
    "cpu.user": 1_200_000_000_000,
    "cpu.system": 300_000_000_000,
    "cpu.haltpoll.success.time": 0,
    "balloon.current": 4_194_304,
    "balloon.maximum": 8_388_608,
    "balloon.swap_in": 0,
    "balloon.rss": 4_300_000,
    "balloon.available": 4_030_000,
    "balloon.usable": 3_100_000,
    "balloon.unused": 2_900_000,
    "balloon.last-update": 1_700_000_000,
    "vcpu.current": 2,
    "vcpu.maximum": 4,
    "vcpu.0.state": 1,
    "vcpu.0.time": 1_100_000_000_000,
    "vcpu.0.wait": 0,
    "vcpu.1.state": 1,
    "vcpu.1.time": 900_000_000_000,
    "vcpu.1.wait": 0,
    "net.count": 1,
    "net.0.name": "vnet3",
    "net.0.rx.bytes": 123_456_789,
    "net.0.rx.pkts": 98_765,
    "net.0.rx.errs": 0,
    "net.0.rx.drop": 4,
    "net.0.tx.bytes": 23_456_789,
    "net.0.tx.pkts": 54_321,
    "net.0.tx.errs": 0,
    "net.0.tx.drop": 0,
    "block.count": 2,
    "block.0.name": "vda",
    "block.0.path": "/var/lib/libvirt/images/web-01.qcow2",
    "block.0.rd.reqs": 10_000,
    "block.0.rd.bytes": 400_000_000,
    "block.0.rd.times": 5_000_000_000,
    "block.0.wr.reqs": 20_000,
    "block.0.wr.bytes": 800_000_000,
    "block.0.wr.times": 9_000_000_000,
    "block.0.fl.reqs": 300,
    "block.0.fl.times": 1_000_000_000,
    "block.0.allocation": 10_737_418_240,
    "block.0.capacity": 21_474_836_480,
    "block.1.name": "sda",
    "block.1.rd.reqs": 12,
    "block.1.rd.bytes": 49_152,
}


def test_bulk_stats_become_typed_domain_stats() -> None:
    stats = parse_domain_stats("web-01", "uuid-1", QEMU_BULK)
    assert stats.state == "running"
    assert stats.state_reason == "booted"
    assert stats.vcpu_count == 2
    assert stats.vcpu_times_seconds == (1100.0, 900.0)
    assert stats.cpu_time_seconds == pytest.approx(2345.678901234)
    assert stats.cpu_user_seconds == 1200.0
    assert stats.cpu_system_seconds == 300.0
    assert stats.balloon_current_bytes == 4_194_304 * 1024
    assert stats.balloon_maximum_bytes == 8_388_608 * 1024
    assert stats.memory_rss_bytes == 4_300_000 * 1024
    assert stats.guest_memory_usable_bytes == 3_100_000 * 1024
    assert stats.guest_memory_unused_bytes == 2_900_000 * 1024
    assert stats.guest_memory_available_bytes == 4_030_000 * 1024
    (nic,) = stats.interfaces
    assert nic.name == "vnet3"
    assert nic.counters == InterfaceCounters(
        rx_bytes=123_456_789,
        rx_packets=98_765,
        rx_errors=0,
        rx_drops=4,
        tx_bytes=23_456_789,
        tx_packets=54_321,
        tx_errors=0,
        tx_drops=0,
    )
    assert nic.rates == InterfaceRates()
    vda, sda = stats.disks
    assert vda.name == "vda"
    assert vda.counters == DiskCounters(
        read_requests=10_000,
        read_bytes=400_000_000,
        write_requests=20_000,
        write_bytes=800_000_000,
        flush_requests=300,
        read_time_seconds=5.0,
        write_time_seconds=9.0,
        flush_time_seconds=1.0,
    )
    assert sda.counters.read_bytes == 49_152
    assert sda.counters.write_bytes is None


def test_state_only_stats_give_none_for_everything_else() -> None:
    stats = parse_domain_stats("off", "u", {"state.state": 5, "state.reason": 2})
    assert (stats.state, stats.state_reason) == ("shutoff", "destroyed")
    assert stats.cpu_time_seconds is None
    assert stats.vcpu_count is None
    assert stats.vcpu_times_seconds == ()
    assert stats.balloon_current_bytes is None
    assert stats.interfaces == () and stats.disks == ()


def test_garbage_value_skips_only_that_field(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    stats = parse_domain_stats("odd", "u", {**QEMU_BULK, "cpu.time": "lots", "balloon.rss": -1})
    assert stats.cpu_time_seconds is None
    assert stats.memory_rss_bytes is None  # -1 is QEMU's "not supported"
    assert stats.cpu_user_seconds == 1200.0
    assert len(stats.disks) == 2
    assert any(
        r.message.startswith("libvirt stats value is not a number")
        and getattr(r, "stats_key", None) == "cpu.time"
        and getattr(r, "domain", None) == "odd"
        for r in caplog.records
    )


def test_device_entries_without_name_or_repeated_are_skipped() -> None:
    stats = parse_domain_stats(
        "d",
        "u",
        {
            "block.count": 3,
            "block.0.name": "vda",
            "block.0.rd.reqs": 1,
            "block.1.name": "vda",  # a backing-chain entry of the same disk
            "block.1.rd.reqs": 999,
            "block.2.rd.reqs": 5,  # no name
            "net.count": "two",
        },
    )
    assert [d.name for d in stats.disks] == ["vda"]
    assert stats.disks[0].counters.read_requests == 1
    assert stats.interfaces == ()


def test_state_and_reason_names_match_libvirt_constants() -> None:
    for number, state in STATE_NAMES.items():
        assert getattr(libvirt, f"VIR_DOMAIN_{state.upper()}") == number
        for reason_number, reason in enumerate(STATE_REASONS[state]):
            constant = f"VIR_DOMAIN_{state.upper()}_{reason.upper()}"
            assert getattr(libvirt, constant) == reason_number, constant
    assert reason_name("running", 99) == "reason_99"
    assert reason_name("paused", None) == "unknown"


def test_missing_groups() -> None:
    assert missing_groups(QEMU_BULK) == set()
    assert missing_groups({"state.state": 1, "state.reason": 0}) == {
        "cpu-total",
        "balloon",
        "vcpu",
        "interface",
        "block",
    }
    # An active domain with no NICs still has net.count = 0: the group came back.
    assert "interface" not in missing_groups({"net.count": 0})


LIVE_XML = """<domain type='kvm' id='7'>
  <name>web-01</name>
  <devices>
    <disk type='file' device='disk'>
      <source file='/var/lib/libvirt/images/web-01.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <interface type='bridge'>
      <mac address='52:54:00:6b:3c:58'/>
      <source bridge='br0'/>
      <target dev='vnet3'/>
    </interface>
    <interface type='network'>
      <mac address='52:54:00:6b:3c:59'/>
      <source network='default'/>
    </interface>
  </devices>
</domain>"""


def test_domain_devices_from_live_xml() -> None:
    devices = parse_domain_devices(LIVE_XML)
    assert devices.disks == ("vda", "sda")
    assert devices.interfaces == ("vnet3",)  # the second NIC has no host device (yet)


def test_domain_xml_that_does_not_parse() -> None:
    with pytest.raises(ValueError, match="domain XML does not parse"):
        parse_domain_devices("<domain><devices>")


def test_count_states() -> None:
    counts = count_states(["running", "running", "paused", "shutoff", "unknown", "crashed"])
    assert counts.running == 2
    assert counts.paused == 1
    assert counts.shutoff == 1
    assert counts.crashed == 1
    assert counts.unknown == 1
    assert counts.total == 6


def test_counter_rate_rules() -> None:
    assert counter_rate(100, 300, 2.0) == 100.0
    assert counter_rate(None, 300, 2.0) is None  # first sample
    assert counter_rate(300, 100, 2.0) is None  # counter reset (reboot)
    assert counter_rate(100, None, 2.0) is None
    assert counter_rate(100, 300, 0.0) is None


def test_rates_dataclasses_mirror_counters() -> None:
    for counters, rates in ((InterfaceCounters, InterfaceRates), (DiskCounters, DiskRates)):
        expected = [f.name + RATE_SUFFIX for f in dataclasses.fields(counters)]
        assert [f.name for f in dataclasses.fields(rates)] == expected
    nic_rates = rates_between(
        InterfaceCounters(rx_bytes=1000, tx_bytes=50),
        InterfaceCounters(rx_bytes=3000, tx_bytes=10),
        4.0,
        InterfaceRates,
    )
    assert nic_rates.rx_bytes_per_second == 500.0
    assert nic_rates.tx_bytes_per_second is None  # went down
    assert nic_rates.rx_packets_per_second is None  # never known


def test_add_rates_matches_devices_by_name() -> None:
    before = parse_domain_stats("web-01", "u", QEMU_BULK)
    later = {
        **QEMU_BULK,
        "net.0.rx.bytes": 123_456_789 + 20_000,
        "block.0.rd.bytes": 400_000_000 + 4096 * 10,
        "block.0.rd.reqs": 10_010,
        "block.1.name": "sdb",  # sda was unplugged, sdb is new
    }
    after = add_rates(parse_domain_stats("web-01", "u", later), before, 10.0)
    assert after.interfaces[0].rates.rx_bytes_per_second == 2000.0
    assert after.interfaces[0].rates.tx_bytes_per_second == 0.0
    vda, sdb = after.disks
    assert vda.rates.read_bytes_per_second == 4096.0
    assert vda.rates.read_requests_per_second == 1.0
    assert sdb.rates == DiskRates()
    first = add_rates(before, None, 0.0)
    assert first.disks[0].rates == DiskRates()
