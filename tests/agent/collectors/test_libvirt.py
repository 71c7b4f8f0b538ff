"""The libvirt collector against libvirt's real test driver (``test:///``).

The test driver is a real libvirt connection with real domains; its counters follow the
wall clock, so these tests assert types and growth, not exact values. Failures
(a stuck domain, a dropped connection, an unreachable daemon) are injected at the
libvirt-python boundary, everything else is the real library.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import libvirt
import pytest

from novacron.agent.collectors import _libvirt_fetch
from novacron.agent.collectors._libvirt_model import LibvirtReadings
from novacron.agent.collectors.base import CollectorContext
from novacron.agent.collectors.libvirt import LibvirtCollector, LibvirtSettings
from tests.fixtures.libvirt import (
    NODE_XML,
    domain_name,
    domain_state,
    domain_uuid,
    has_balloon,
    node_xml,
    write_node_xml,
)
from tests.fixtures.libvirt import disk_count as fixture_disk_count
from tests.fixtures.libvirt import interface_count as fixture_interface_count

T0 = 1_800_000_000.0
DOMAINS = 20


def make_collector(uri: str, **settings: Any) -> LibvirtCollector:
    return LibvirtCollector(CollectorContext(), LibvirtSettings(uri=uri, **settings))


def libvirt_error(code: int, domain: int, message: str) -> libvirt.libvirtError:
    """A libvirtError as libvirt raises it (code and domain filled in)."""
    error = libvirt.libvirtError(message)
    error.err = (code, domain, message, libvirt.VIR_ERR_ERROR, None, None, None, -1, -1)
    return error


CONNECTION_RESET = (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_RPC)


@pytest.fixture
def node_uri(tmp_path: Path) -> str:
    return write_node_xml(tmp_path / "node.xml", domains=DOMAINS)


@pytest.fixture
def collector(node_uri: str) -> Any:
    c = make_collector(node_uri)
    yield c
    c.close()


def by_name(readings: LibvirtReadings) -> dict[str, Any]:
    return {d.name: d for d in readings.domains}


# -- the real test driver -------------------------------------------------------------


def test_default_driver_domain() -> None:
    collector = make_collector("test:///default")
    try:
        first = collector.collect(T0)
        time.sleep(0.05)
        second = collector.collect(T0 + 10)
    finally:
        collector.close()
    assert first.connected and first.error is None
    assert first.domain_counts is not None
    assert (first.domain_counts.running, first.domain_counts.total) == (1, 1)
    (domain,) = first.domains
    assert domain.name == "test"
    assert domain.uuid == "6695eb01-f6a4-8304-79aa-97f2502e193f"
    assert (domain.state, domain.state_reason) == ("running", "unknown")
    assert domain.vcpu_count == 2
    assert len(domain.vcpu_times_seconds) == 2
    assert all(isinstance(t, float) and t > 0 for t in domain.vcpu_times_seconds)
    assert isinstance(domain.cpu_time_seconds, float) and domain.cpu_time_seconds > 0
    assert domain.balloon_maximum_bytes == 8_388_608 * 1024
    assert domain.balloon_current_bytes == 2_097_152 * 1024
    assert isinstance(domain.memory_rss_bytes, int) and domain.memory_rss_bytes > 0
    assert [d.name for d in domain.disks] == ["vda"]
    assert [i.name for i in domain.interfaces] == ["testnet0"]
    assert domain.disks[0].rates.read_bytes_per_second is None  # first sample
    assert domain.interfaces[0].rates.rx_bytes_per_second is None

    (later,) = second.domains
    disk, before_disk = later.disks[0], domain.disks[0]
    nic, before_nic = later.interfaces[0], domain.interfaces[0]
    for new, old in ((disk.counters, before_disk.counters), (nic.counters, before_nic.counters)):
        for field in ("read_bytes", "write_requests", "rx_bytes", "tx_packets"):
            if hasattr(new, field):
                assert isinstance(getattr(new, field), int)
                assert getattr(new, field) > getattr(old, field)
    assert isinstance(disk.rates.read_bytes_per_second, float)
    assert disk.rates.read_bytes_per_second > 0
    assert isinstance(nic.rates.rx_bytes_per_second, float)
    assert nic.rates.rx_bytes_per_second > 0
    assert disk.rates.flush_requests_per_second is None  # blockStats has no flush count


def test_node_file_with_many_domains(collector: LibvirtCollector) -> None:
    readings = collector.collect(T0)
    assert readings.connected and readings.unavailable == ()
    counts = readings.domain_counts
    assert counts is not None
    assert (counts.running, counts.paused, counts.shutoff, counts.total) == (12, 4, 4, DOMAINS)
    domains = by_name(readings)
    assert sorted(domains) == [domain_name(i) for i in range(DOMAINS)]
    for index in range(DOMAINS):
        domain = domains[domain_name(index)]
        assert domain.uuid == domain_uuid(index)
        assert domain.balloon_maximum_bytes == 2 * 1048576 * (1 + index % 4) * 1024
        state = domain_state(index)
        if state == 5:
            assert domain.state == "shutoff"
            assert domain.cpu_time_seconds is None
            assert domain.vcpu_count is None
            assert domain.disks == () and domain.interfaces == ()
            continue
        assert domain.state == ("running" if state == 1 else "paused")
        assert domain.vcpu_count == 1 + index % 4
        assert isinstance(domain.cpu_time_seconds, float)
        assert [d.name for d in domain.disks] == ["vda", "vdb"][: fixture_disk_count(index)]
        assert len(domain.interfaces) == fixture_interface_count(index)
        assert all(i.name.startswith("testnet") for i in domain.interfaces)
        if has_balloon(index):
            assert isinstance(domain.memory_rss_bytes, int)
        else:
            assert domain.memory_rss_bytes is None  # no memballoon: the guest tells nothing


def test_committed_node_xml_is_the_builders_output() -> None:
    assert NODE_XML.read_text() == node_xml(DOMAINS)


def test_counters_grow_between_collections(collector: LibvirtCollector) -> None:
    first = by_name(collector.collect(T0))
    time.sleep(0.05)
    second = by_name(collector.collect(T0 + 10))
    for name, domain in second.items():
        for new, old in zip(domain.disks, first[name].disks, strict=True):
            assert new.counters.write_bytes is not None and old.counters.write_bytes is not None
            assert new.counters.write_bytes >= old.counters.write_bytes
            assert new.rates.write_bytes_per_second is not None
            assert new.rates.write_bytes_per_second >= 0


def test_json_output_of_the_agent_command(node_uri: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "novacron.agent.cli",
            "collect",
            "--once",
            "--json",
            "--collectors",
            "libvirt",
            "--libvirt-uri",
            node_uri,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(result.stdout)["libvirt"]
    assert report["ok"] is True
    data = report["data"]
    assert data["connected"] is True
    assert data["domain_counts"]["total"] == DOMAINS
    assert len(data["domains"]) == DOMAINS
    first = data["domains"][0]
    assert first["name"] == "vm-00"
    assert isinstance(first["disks"][0]["counters"]["read_bytes"], int)
    assert first["disks"][0]["rates"]["read_bytes_per_second"] is None


def test_summary_lines(collector: LibvirtCollector) -> None:
    lines = LibvirtCollector.summarize(collector.collect(T0))
    assert "20 domains, 12 running, 4 paused, 4 shut off" in lines[0]
    assert len(lines) == 1 + DOMAINS
    assert lines[1].startswith("vm-00")


# -- a stuck domain -------------------------------------------------------------------


def test_stuck_domain_is_unavailable_and_the_others_come_back(
    node_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    stuck_calls = []
    real_fetch = _libvirt_fetch.fetch_domain_stats

    def slow_for_vm05(domain: Any, bulk: Any, error: type[Exception]) -> Any:
        if domain.name() == "vm-05":
            stuck_calls.append(time.monotonic())
            release.wait(10)
        return real_fetch(domain, bulk, error)

    monkeypatch.setattr(_libvirt_fetch, "fetch_domain_stats", slow_for_vm05)
    collector = make_collector(node_uri, timeout_seconds=0.3)
    try:
        started = time.monotonic()
        readings = collector.collect(T0)
        took = time.monotonic() - started
        assert took < 2.0
        assert readings.connected
        names = by_name(readings)
        assert len(names) == DOMAINS - 1 and "vm-05" not in names
        (stuck,) = readings.unavailable
        assert stuck.device == "vm-05"
        assert stuck.reason.startswith("stats timed out")
        assert stuck.unavailable_since == T0
        assert readings.domain_counts is not None
        assert readings.domain_counts.running == 12  # its state came from the bulk call

        again = collector.collect(T0 + 10)
        assert [u.device for u in again.unavailable] == ["vm-05"]
        assert again.unavailable[0].unavailable_since == T0
        assert len(stuck_calls) == 1  # the stuck call is not started a second time

        release.set()
        deadline = time.monotonic() + 5
        while collector._domain_calls.stuck() and time.monotonic() < deadline:
            time.sleep(0.01)
        recovered = collector.collect(T0 + 20)
        assert recovered.unavailable == ()
        assert "vm-05" in by_name(recovered)
    finally:
        release.set()
        collector.close()


# -- the connection -------------------------------------------------------------------


def test_dropped_connection_reports_no_data_then_recovers(
    collector: LibvirtCollector, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="novacron.agent.collectors.libvirt")
    assert len(collector.collect(T0).domains) == DOMAINS
    opens: list[str] = []
    real_open = libvirt.openReadOnly

    def counting_open(uri: str) -> Any:
        opens.append(uri)
        return real_open(uri)

    def connection_reset(self: Any, *args: Any) -> Any:
        raise libvirt_error(*CONNECTION_RESET, "Cannot recv data: Connection reset by peer")

    monkeypatch.setattr(libvirt, "openReadOnly", counting_open)
    monkeypatch.setattr(libvirt.virConnect, "getAllDomainStats", connection_reset)
    lost = collector.collect(T0 + 10)
    assert not lost.connected
    assert lost.domains == () and lost.domain_counts is None
    assert lost.error is not None and "Connection reset by peer" in lost.error
    assert len(lost.unavailable) == DOMAINS
    assert all(u.reason.startswith("libvirt unreachable") for u in lost.unavailable)
    assert all(u.unavailable_since == T0 + 10 for u in lost.unavailable)
    assert any(r.message == "libvirt connection lost" for r in caplog.records)

    monkeypatch.undo()  # libvirtd is back
    back = collector.collect(T0 + 20)
    assert back.connected and back.error is None
    assert len(back.domains) == DOMAINS and back.unavailable == ()
    assert any(r.message == "libvirt connected" for r in caplog.records)


def test_connection_not_alive_reconnects_in_the_same_cycle(
    collector: LibvirtCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector.collect(T0)
    first_connection = collector._conn
    monkeypatch.setattr(first_connection, "isAlive", lambda: 0)
    readings = collector.collect(T0 + 10)
    assert readings.connected and len(readings.domains) == DOMAINS
    assert collector._conn is not first_connection


def test_no_daemon_is_no_data_with_backoff(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG, logger="novacron.agent.collectors.libvirt")
    opens: list[float] = []
    real_open = libvirt.openReadOnly
    now = [T0]

    def counting_open(uri: str) -> Any:
        opens.append(now[0])
        return real_open(uri)

    monkeypatch.setattr(libvirt, "openReadOnly", counting_open)
    collector = make_collector(f"qemu+unix:///system?socket={tmp_path}/no-libvirt-sock")
    results = []
    for offset in (0, 1, 6, 7, 16):
        now[0] = T0 + offset
        results.append(collector.collect(now[0]))
    assert opens == [T0, T0 + 6, T0 + 16]  # retry after 5 s, then after 10 s
    for readings in results:
        assert not readings.connected
        assert readings.domains == () and readings.unavailable == ()
        assert readings.error is not None and "cannot connect" in readings.error
    problems = [r for r in caplog.records if r.message == "libvirt not reachable; no VM data"]
    assert len(problems) == 1 and problems[0].levelno == logging.DEBUG


def test_open_that_hangs_is_cut_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    closed = threading.Event()

    class LateConnection:
        def close(self) -> None:
            closed.set()

    def hanging_open(uri: str) -> Any:
        release.wait(10)
        return LateConnection()

    monkeypatch.setattr(libvirt, "openReadOnly", hanging_open)
    collector = make_collector("test:///default", timeout_seconds=0.2)
    started = time.monotonic()
    readings = collector.collect(T0)
    assert time.monotonic() - started < 1.5
    assert not readings.connected
    assert readings.error is not None and "no answer after 0.2 s" in readings.error
    release.set()
    assert closed.wait(5)  # the connection that opened too late is not leaked


def test_no_libvirt_library_is_no_data(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="novacron.agent.collectors.libvirt")
    monkeypatch.setitem(sys.modules, "libvirt", None)  # import libvirt -> ImportError
    readings = make_collector("test:///default").collect(T0)
    assert not readings.connected and readings.domains == ()
    assert readings.error is not None and "libvirt-python cannot be loaded" in readings.error
    assert any(r.message == "no libvirt; no VM data" for r in caplog.records)


# -- partial failures -----------------------------------------------------------------


def test_bulk_stats_failure_falls_back_to_per_domain_calls(
    collector: LibvirtCollector, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def qemu_error(self: Any, *args: Any) -> Any:
        raise libvirt_error(libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_QEMU, "monitor busy")

    monkeypatch.setattr(libvirt.virConnect, "getAllDomainStats", qemu_error)
    readings = collector.collect(T0)
    assert readings.connected and len(readings.domains) == DOMAINS
    assert readings.domain_counts is not None and readings.domain_counts.paused == 4
    assert by_name(readings)["vm-03"].state == "paused"  # from dom.state()
    assert any(
        r.message.startswith("libvirt bulk stats failed") and r.levelno == logging.WARNING
        for r in caplog.records
    )


def test_nowait_flag_unsupported_is_dropped(
    collector: LibvirtCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    flags_seen: list[int] = []
    real = libvirt.virConnect.getAllDomainStats

    def old_libvirt(self: Any, stats: int, flags: int = 0) -> Any:
        flags_seen.append(flags)
        if flags & libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT:
            raise libvirt_error(libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_FROM_NONE, "bad flags")
        return real(self, stats, flags)

    monkeypatch.setattr(libvirt.virConnect, "getAllDomainStats", old_libvirt)
    assert len(collector.collect(T0).domains) == DOMAINS
    assert len(collector.collect(T0 + 10).domains) == DOMAINS
    assert flags_seen == [libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT, 0, 0]


def test_one_failing_disk_costs_only_that_disk(
    collector: LibvirtCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = libvirt.virDomain.blockStats

    def no_vdb(self: Any, path: str) -> Any:
        if path == "vdb":
            raise libvirt_error(libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_FROM_QEMU, "gone")
        return real(self, path)

    monkeypatch.setattr(libvirt.virDomain, "blockStats", no_vdb)
    domains = by_name(collector.collect(T0))
    vm01 = domains["vm-01"]  # has vda and vdb
    assert [d.name for d in vm01.disks] == ["vda"]
    assert vm01.interfaces and vm01.cpu_time_seconds is not None


def test_domain_xml_that_does_not_parse_costs_only_the_devices(
    collector: LibvirtCollector, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="novacron.agent.collectors.libvirt")
    monkeypatch.setattr(libvirt.virDomain, "XMLDesc", lambda self, flags=0: "<domain><devi")
    domains = by_name(collector.collect(T0))
    assert len(domains) == DOMAINS
    vm00 = domains["vm-00"]
    assert vm00.disks == () and vm00.interfaces == ()
    assert vm00.cpu_time_seconds is not None and vm00.balloon_maximum_bytes is not None
    (record, *_) = [
        r
        for r in caplog.records
        if r.message == "libvirt per-domain stats answer not understood; values skipped"
    ]
    assert "domain XML does not parse" in record.error  # type: ignore[attr-defined]


def test_domain_that_vanishes_while_read_is_left_out(
    collector: LibvirtCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fetch = _libvirt_fetch.fetch_domain_stats

    def vm07_gone(domain: Any, bulk: Any, error: type[Exception]) -> Any:
        if domain.name() == "vm-07":
            raise _libvirt_fetch.DomainGone("vm-07")
        return real_fetch(domain, bulk, error)

    monkeypatch.setattr(_libvirt_fetch, "fetch_domain_stats", vm07_gone)
    readings = collector.collect(T0)
    assert "vm-07" not in by_name(readings)
    assert readings.unavailable == ()  # never seen before: simply not there
    assert readings.domain_counts is not None and readings.domain_counts.total == DOMAINS - 1


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match=r"^timeout_seconds: must be > 0"):
        LibvirtSettings(timeout_seconds=0)
    with pytest.raises(ValueError, match=r"^uri: must not be empty"):
        LibvirtSettings(uri=" ")
    with pytest.raises(ValueError, match=r"^reconnect_max_seconds"):
        LibvirtSettings(reconnect_max_seconds=-1)
