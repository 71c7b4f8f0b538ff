"""Collector readings -> schema signals, checked against values worked out by hand.

The end-to-end tests run the real collectors on a whole fixture node (sysfs, procfs,
fake smartctl serving real recordings, libvirt's test driver, fake pynvml) for two
cycles and compare every NODE signal with the value the fixture files imply (see each
fixture package's docstring for the numbers). The disk mapping is checked on every real
smartctl recording against an oracle that reads the raw JSON directly.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

import pytest

from novacron.agent.collectors._host_model import HostReadings
from novacron.agent.collectors._libvirt_model import (
    DiskCounters,
    DiskRates,
    DiskStats,
    DomainStats,
    InterfaceCounters,
    InterfaceRates,
    InterfaceStats,
    LibvirtReadings,
)
from novacron.agent.collectors._nvml_model import GpuReading, NvmlReadings
from novacron.agent.collectors.base import UnavailableDevice
from novacron.agent.collectors.edac import EdacReadings
from novacron.agent.collectors.smart.model import DiskHealth, SmartReadings
from novacron.agent.collectors.smart.parse_json import parse_disk_json
from novacron.agent.features.disk_signals import disk_keys, disk_signals, is_failing
from novacron.agent.features.signals import (
    SampleSignals,
    SignalCarry,
    host_signals,
    sample_signals,
)
from novacron.agent.features.vm_signals import CpuTimeReading, vm_signals
from novacron.agent.sample import CollectorReport, NodeSample
from novacron.models.schema import DISK, NODE, VM
from tests.agent.node_cycles import collect_cycles
from tests.fixtures.smartctl import FAILING_ATA, FIXTURES, HEALTHY_ATA, REAL_RECORDINGS

# --- a whole fixture node, two cycles ------------------------------------------------

MEM_TOTAL_KB, MEM_AVAILABLE_KB = 65_843_212, 41_234_567  # tests/fixtures/procfs _MEMINFO_KB


@dataclass(frozen=True)
class Run:
    first: NodeSample
    second: NodeSample
    signals_first: SampleSignals
    signals: SampleSignals  # second cycle
    carry: SignalCarry


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    first, second = collect_cycles(tmp_path_factory.mktemp("node"), cycles=2)
    signals_first, carry = sample_signals(first)
    signals, carry = sample_signals(second, carry)
    return Run(first, second, signals_first, signals, carry)


# Every NODE signal after the second cycle (procfs tick 0 -> 1 = 10 s), by hand.
EXPECTED_NODE = {
    # procfs: all CPUs busy 55 % of which steal 8 %, iowait 5 %
    "cpu_util_percent": 55.0 - 8.0,
    "cpu_iowait_percent": 5.0,
    "cpu_steal_percent": 8.0,
    "load_per_cpu": 2.50 / 4,  # loadavg 2.50 over 4 CPUs
    "mem_used_percent": (MEM_TOTAL_KB - MEM_AVAILABLE_KB) / MEM_TOTAL_KB * 100,
    "swap_out_bytes_per_second": 1280 * 4096 / 10.0,  # pswpout +1280 pages per tick
    "disk_await_ms": 10.0,  # sda 10 ms beats nvme0n1 0.3 ms
    "net_errors_per_second": 10 / 10.0,  # eno1 tx errors +10 per tick (lo excluded)
    "net_drops_per_second": 20 / 10.0,  # eno1 rx drops +20 per tick
    "temp_max_celsius": 52.0,  # thermal_zone2 (x86_pkg_temp) 52000
    "temp_margin_celsius": 84.85 - 38.85,  # nvme Composite: crit 84850, input 38850
    "fan_min_rpm": 860.0,  # fan3; fan2 reads 0 with min 0 and no alarm: an unconnected header
    # smartctl: sda = failing ST3500418AS (5: 2144, 187: 59, 197: 72, 198: 72), the
    # five others healthy with zero counters
    "smart_reallocated_sectors": 2144.0,
    "smart_pending_sectors": 72.0,
    "smart_uncorrectable_errors": 59.0 + 72.0,
    "smart_failing_disks": 1.0,
    "smart_unavailable_disks": 0.0,
    "nvme_spare_min_percent": 100.0,
    "nvme_used_max_percent": 0.0,
    # edac: 3 CEs on mc0 dimm1, no UE
    "ecc_corrected_errors": 3.0,
    "ecc_uncorrected_errors": 0.0,
    # fake pynvml: GPU0 Ampere (2 remapped rows), GPU1 Volta (2 + 1 retired pages),
    # 41 C and 42 C, one XID 31 pending on GPU0 at the first collection
    "gpu_ecc_uncorrected_errors": 0.0,
    "gpu_xid_events": 1.0,
    "gpu_retired_pages": 2.0 + 3.0,
    "gpu_temp_max_celsius": 42.0,
    # libvirt: 5 domains running, running, running, paused, shut off
    "vm_running_count": 3.0,
}


def test_expected_table_covers_every_node_signal() -> None:
    assert set(EXPECTED_NODE) == set(NODE.signal_names)


def test_every_collector_succeeded(run: Run) -> None:
    failed = {n: r.error for n, r in run.second.reports.items() if not r.ok}
    assert failed == {}


@pytest.mark.parametrize("signal", sorted(EXPECTED_NODE))
def test_node_signal_matches_the_fixture(run: Run, signal: str) -> None:
    value = run.signals.node[signal]
    assert value is not None, signal
    assert value == pytest.approx(EXPECTED_NODE[signal], rel=1e-9, abs=1e-9), signal


def test_first_cycle_has_no_rates_but_has_levels(run: Run) -> None:
    node = run.signals_first.node
    for rate in ("cpu_util_percent", "swap_out_bytes_per_second", "net_errors_per_second"):
        assert node[rate] is None, rate
    assert node["mem_used_percent"] == pytest.approx(EXPECTED_NODE["mem_used_percent"])
    assert node["smart_reallocated_sectors"] == 2144.0
    assert node["gpu_xid_events"] == 1.0


def test_xid_is_counted_once_across_cycles(run: Run) -> None:
    assert run.carry.gpu_xid_events_total == 1


def test_vm_signals_are_the_sums_of_the_libvirt_rates(run: Run) -> None:
    readings = run.second.reports["libvirt"].data
    assert isinstance(readings, LibvirtReadings)
    by_uuid = {d.uuid: d for d in readings.domains}
    # running and paused domains have windows, the shut-off one (vm-04) has none
    assert sorted(run.signals.vm_names.values()) == ["vm-00", "vm-01", "vm-02", "vm-03"]
    for uuid, values in run.signals.vms.items():
        domain = by_uuid[uuid]
        assert set(values) == set(VM.signal_names)
        disks = [d.rates for d in domain.disks]
        nics = [i.rates for i in domain.interfaces]
        assert values["vm_mem_used_percent"] == pytest.approx(
            domain.memory_rss_bytes / domain.balloon_maximum_bytes * 100  # type: ignore[operator]
        )
        assert values["vm_disk_read_bytes_per_second"] == pytest.approx(
            sum(r.read_bytes_per_second or 0.0 for r in disks)
        )
        assert values["vm_disk_ops_per_second"] == pytest.approx(
            sum(
                (r.read_requests_per_second or 0.0) + (r.write_requests_per_second or 0.0)
                for r in disks
            )
        )
        assert values["vm_net_tx_bytes_per_second"] == pytest.approx(
            sum(r.tx_bytes_per_second or 0.0 for r in nics)
        )
        assert values["vm_net_packets_per_second"] == pytest.approx(
            sum((r.rx_packets_per_second or 0.0) + (r.tx_packets_per_second or 0.0) for r in nics)
        )
        # the test driver's CPU time does not move: 0 % busy, known after two cycles
        assert values["vm_cpu_util_percent"] == 0.0
        assert run.signals_first.vms[uuid]["vm_cpu_util_percent"] is None
    # vm-00 is 2 GiB with 512 MiB resident (the test driver's balloon numbers)
    (vm00,) = (u for u, n in run.signals.vm_names.items() if n == "vm-00")
    assert run.signals.vms[vm00]["vm_mem_used_percent"] == pytest.approx(25.0)


def test_disks_are_keyed_and_mapped(run: Run) -> None:
    # every recording's serial is "REDACTED": duplicated serials fall back to the device
    assert sorted(run.signals.disks) == sorted(
        f"REDACTED@{d}"
        for d in ("/dev/sda", "/dev/sdb", "/dev/sdc", "/dev/sdd", "/dev/nvme0", "/dev/nvme1")
    )
    assert run.signals.disk_devices["REDACTED@/dev/sda"] == "/dev/sda"
    sda = run.signals.disks["REDACTED@/dev/sda"]
    assert sda == {
        "reallocated_sectors": 2144.0,
        "reported_uncorrect": 59.0,
        "command_timeout": 0.0,
        "current_pending_sectors": 72.0,
        "offline_uncorrectable": 72.0,
        "udma_crc_errors": 0.0,
        "power_on_hours": 44668.0,
        "temperature_celsius": 33.0,
    }


# --- the disk mapping on every real recording ------------------------------------------


def _recording(relative: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / relative).read_text())
    return doc


def _oracle(doc: dict[str, Any]) -> dict[str, float | None]:
    """The DISK signals read straight off smartctl's JSON (the documented mapping)."""
    raw = {
        row["id"]: row["raw"]["value"]
        for row in doc.get("ata_smart_attributes", {}).get("table", [])
    }
    nvme = doc.get("nvme_smart_health_information_log")
    errors: dict[str, Any] = doc.get("scsi_error_counter_log") or {}

    def ata(attribute: int) -> float | None:
        return float(raw[attribute]) if attribute in raw else None

    reallocated = ata(5)
    uncorrect = ata(187)
    hours = ata(9)
    if hours is None and "hours" in doc.get("power_on_time", {}):
        hours = float(doc["power_on_time"]["hours"])
    if nvme is not None:
        uncorrect = float(nvme["media_errors"])
        hours = float(nvme["power_on_hours"])
    if "scsi_grown_defect_list" in doc or errors:
        reallocated = doc.get("scsi_grown_defect_list")
        reallocated = None if reallocated is None else float(reallocated)
        uncorrect = float(
            errors["read"]["total_uncorrected_errors"] + errors["write"]["total_uncorrected_errors"]
        )
    temperature = doc.get("temperature", {}).get("current")
    return {
        "reallocated_sectors": reallocated,
        "reported_uncorrect": uncorrect,
        "command_timeout": ata(188),
        "current_pending_sectors": ata(197),
        "offline_uncorrectable": ata(198),
        "udma_crc_errors": ata(199),
        "power_on_hours": hours,
        "temperature_celsius": None if temperature is None else float(temperature),
    }


RECORDINGS = [f"json/{name}" for name in REAL_RECORDINGS] + sorted(
    f"derived/{p.name}" for p in (FIXTURES / "derived").glob("*.json")
)


@pytest.mark.parametrize("recording", RECORDINGS)
def test_disk_signals_follow_the_documented_mapping(recording: str) -> None:
    doc = _recording(recording)
    values = disk_signals(parse_disk_json(doc))
    assert set(values) == set(DISK.signal_names)
    assert values == _oracle(doc)


def test_disk_mapping_covers_all_three_protocols() -> None:
    protocols = {_recording(r)["device"]["protocol"] for r in RECORDINGS}
    assert protocols == {"ATA", "NVMe", "SCSI"}
    scsi = disk_signals(parse_disk_json(_recording("json/SEAGATE_ST373453LC_26.json")))
    assert scsi["reallocated_sectors"] == 260.0  # the real disk with 260 grown defects
    nvme = disk_signals(
        parse_disk_json(_recording("derived/NVMe-media-errors-SAMSUNG_MZQLB1T9HAJR-00007.json"))
    )
    assert nvme["reported_uncorrect"] == 37.0
    assert nvme["reallocated_sectors"] is None  # NVMe has no such counter: not 0


def test_failing_disk_detection() -> None:
    assert is_failing(parse_disk_json(_recording(FAILING_ATA)))
    assert not is_failing(parse_disk_json(_recording(HEALTHY_ATA)))
    real_failing_nvme = _recording("json/nvme-null-SAMSUNG_MZWLL3T2HAJQ-00005-nvme0.json")
    assert is_failing(parse_disk_json(real_failing_nvme))


def _disk(relative: str, device: str, serial: str | None) -> DiskHealth:
    return replace(parse_disk_json(_recording(relative), device), serial=serial)


def test_disk_keys_prefer_unique_serials() -> None:
    disks = [
        _disk(HEALTHY_ATA, "/dev/sda", "S1"),
        _disk(HEALTHY_ATA, "/dev/sdb", "DUP"),
        _disk(HEALTHY_ATA, "/dev/sdc", "DUP"),
        _disk(HEALTHY_ATA, "/dev/sdd", None),
    ]
    assert list(disk_keys(disks)) == ["S1", "DUP@/dev/sdb", "DUP@/dev/sdc", "/dev/sdd"]


# --- None, never 0, for what is not there ----------------------------------------------


def _report(name: str, data: Any, *, ok: bool = True, at: float | None = None) -> CollectorReport:
    return CollectorReport(name, ok, 0.01 if ok else None, None if ok else "boom", data, at)


def _sample(t: float, *reports: CollectorReport) -> NodeSample:
    return NodeSample("n1", t, {r.collector: r for r in reports})


def test_failed_and_disabled_collectors_give_none(run: Run) -> None:
    failed = {
        name: replace(report, ok=False, error="timed out", data=None)
        for name, report in run.second.reports.items()
    }
    for sample in (_sample(1.0), NodeSample("n1", 1.0, failed)):
        signals, carry = sample_signals(sample)
        assert signals.node == dict.fromkeys(NODE.signal_names)
        assert signals.vms == {} and signals.disks == {}
        assert carry == SignalCarry()


def test_no_gpu_no_edac_no_smartctl_are_none_not_zero() -> None:
    sample = _sample(
        1.0,
        _report("nvml", NvmlReadings(None, None, (), ())),
        _report("edac", EdacReadings((), 0, 0, None, None, None, ())),
        _report("smart", SmartReadings(None, None, (), ())),
    )
    node = sample_signals(sample)[0].node
    assert all(value is None for value in node.values()), node


def test_smart_counts_are_zero_when_smartctl_works_but_finds_nothing_bad() -> None:
    healthy = _disk(HEALTHY_ATA, "/dev/sda", "S1")
    node = sample_signals(
        _sample(1.0, _report("smart", SmartReadings("7.3", "json", (healthy,), ())))
    )[0].node
    assert node["smart_failing_disks"] == 0.0
    assert node["smart_unavailable_disks"] == 0.0
    assert node["nvme_spare_min_percent"] is None  # no NVMe disk


def test_a_reused_nvml_reading_does_not_count_its_xids_again() -> None:
    first = _sample(10.0, _report("nvml", _gpus_with_xids(2), at=10.0))
    signals, carry = sample_signals(first)
    assert signals.node["gpu_xid_events"] == 2.0
    reused = _sample(20.0, _report("nvml", _gpus_with_xids(2), at=10.0))
    signals, carry = sample_signals(reused, carry)
    assert signals.node["gpu_xid_events"] == 2.0
    fresh = _sample(30.0, _report("nvml", _gpus_with_xids(1), at=30.0))
    signals, carry = sample_signals(fresh, carry)
    assert signals.node["gpu_xid_events"] == 3.0


def _gpus_with_xids(count: int) -> NvmlReadings:
    gpu = GpuReading(
        index=0,
        uuid="GPU-0",
        name=None,
        pci_bus_id=None,
        temperature_celsius=40.0,
        power_watts=None,
        power_limit_watts=None,
        gpu_utilisation_percent=None,
        memory_utilisation_percent=None,
        memory_used_bytes=None,
        memory_total_bytes=None,
        ecc_volatile_corrected=None,
        ecc_volatile_uncorrected=None,
        ecc_aggregate_corrected=None,
        ecc_aggregate_uncorrected=None,
        retired_pages_single_bit=None,
        retired_pages_double_bit=None,
        retired_pages_pending=None,
        remapped_rows_correctable=None,
        remapped_rows_uncorrectable=None,
        remapped_rows_pending=None,
        remapped_rows_failure=None,
        pcie_replay_count=None,
        clock_throttle_reasons=None,
        xid_errors=(79,) * count,
    )
    return NvmlReadings("550.54.15", None, (gpu,), ())


def test_a_disk_that_stops_answering_keeps_its_share_of_the_node_sums() -> None:
    failing = _disk(FAILING_ATA, "/dev/sda", "BAD")  # 2144 reallocated
    healthy = replace(_disk(FAILING_ATA, "/dev/sdb", "OK"), serial="OK")  # also 2144
    both = SmartReadings("7.3", "json", (failing, healthy), ())
    signals, carry = sample_signals(_sample(1.0, _report("smart", both)))
    assert signals.node["smart_reallocated_sectors"] == 2 * 2144.0
    silent = UnavailableDevice("/dev/sda", 2.0, "timed out")
    one = SmartReadings("7.3", "json", (healthy,), (silent,))
    signals, carry = sample_signals(_sample(2.0, _report("smart", one)), carry)
    assert signals.node["smart_reallocated_sectors"] == 2 * 2144.0  # not a "reset"
    assert signals.node["smart_unavailable_disks"] == 1.0
    assert list(signals.disks) == ["OK"]  # no fresh reading, no window update
    gone = SmartReadings("7.3", "json", (healthy,), ())
    signals, carry = sample_signals(_sample(3.0, _report("smart", gone)), carry)
    assert signals.node["smart_reallocated_sectors"] == 2144.0
    assert list(carry.disk_last) == ["/dev/sdb"]


def test_cpu_share_excludes_steal_and_load_uses_the_cpu_count(run: Run) -> None:
    host = run.second.reports["host"].data
    assert isinstance(host, HostReadings)
    no_per_cpu = replace(host, per_cpu=None)

    assert host_signals(no_per_cpu, None)["load_per_cpu"] is None
    inventory = type("Inventory", (), {"threads": 8})()  # a CpuInventory stand-in
    assert host_signals(no_per_cpu, inventory)["load_per_cpu"] == 2.5 / 8


# --- VM CPU utilisation ---------------------------------------------------------------


def _domain(cpu: float | None, vcpus: int | None = 2) -> DomainStats:
    return DomainStats(
        name="vm",
        uuid="u1",
        state="running",
        state_reason="booted",
        vcpu_count=vcpus,
        cpu_time_seconds=cpu,
        balloon_maximum_bytes=4 * 2**30,
        memory_rss_bytes=2**30,
        interfaces=(
            InterfaceStats("vnet0", InterfaceCounters(), InterfaceRates(rx_errors_per_second=1.0)),
            InterfaceStats("vnet1", InterfaceCounters(), InterfaceRates(tx_drops_per_second=0.5)),
        ),
        disks=(DiskStats("vda", DiskCounters(), DiskRates(write_requests_per_second=7.0)),),
    )


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        (None, _domain(10.0), None),  # first sight
        (CpuTimeReading(100.0, 10.0), _domain(25.0), 15.0 / 10.0 / 2 * 100),  # 75 %
        (CpuTimeReading(100.0, 10.0), _domain(4.0), None),  # guest restarted
        (CpuTimeReading(100.0, 10.0), _domain(25.0, vcpus=None), None),
        (CpuTimeReading(110.0, 10.0), _domain(25.0), None),  # no time passed
    ],
)
def test_vm_cpu_utilisation(
    previous: CpuTimeReading | None, current: DomainStats, expected: float | None
) -> None:
    values, reading = vm_signals(current, 110.0, previous)
    assert values["vm_cpu_util_percent"] == (
        pytest.approx(expected) if expected is not None else None
    )
    assert current.cpu_time_seconds is not None
    assert reading == CpuTimeReading(110.0, current.cpu_time_seconds)
    assert values["vm_mem_used_percent"] == 25.0
    assert values["vm_net_errors_drops_per_second"] == 1.5
    assert values["vm_disk_ops_per_second"] == 7.0
    assert values["vm_net_rx_bytes_per_second"] is None  # no interface reported it


def test_vm_without_devices_has_no_device_signals() -> None:
    bare = replace(_domain(1.0), interfaces=(), disks=())
    values, _ = vm_signals(bare, 1.0, None)
    assert values["vm_net_packets_per_second"] is None
    assert values["vm_disk_read_bytes_per_second"] is None


# --- the carry survives a restart ------------------------------------------------------


def test_carry_json_round_trip_and_validation() -> None:
    carry = SignalCarry(
        gpu_xid_events_total=4,
        vm_cpu={"u1": CpuTimeReading(1.0, 2.0)},
        disk_last={"/dev/sda": dict.fromkeys(DISK.signal_names, 1.0)},
    )
    back = SignalCarry.from_json_dict(json.loads(json.dumps(carry.to_json_dict())))
    assert back == replace(carry, vm_cpu={})  # CPU times are not carried over a restart
    bad_carries: list[dict[str, Any]] = [
        {"gpu_xid_events_total": -1},
        {"disk_last": []},
        {"disk_last": {"/dev/sda": {"reallocated_sectors": 1.0}}},
    ]
    for bad in bad_carries:
        with pytest.raises(ValueError):
            SignalCarry.from_json_dict(bad)


def test_signal_names_are_all_in_the_schemas(run: Run) -> None:
    assert set(run.signals.node) == set(NODE.signal_names)
    for values in run.signals.disks.values():
        assert set(values) == set(DISK.signal_names)
    assert not any(isinstance(v, float) and math.isnan(v) for v in run.signals.node.values())


def test_unconnected_fan_headers_do_not_count_as_stopped_fans() -> None:
    from novacron.agent.collectors._hwmon_parse import FanSensor
    from novacron.agent.collectors.hwmon import HwmonChip, HwmonReadings
    from novacron.agent.features.signals import hwmon_signals

    def fan(rpm: int, *, alarm: bool | None = None, min_rpm: int | None = None) -> FanSensor:
        return FanSensor(
            key=f"chip/fan{rpm}",
            sensor="fan",
            label=None,
            speed_rpm=rpm,
            min_rpm=min_rpm,
            alarm=alarm,
        )

    def chip(*fans: FanSensor) -> HwmonReadings:
        c = HwmonChip(
            key="nct",
            name="nct6775",
            device_path=None,
            temperatures=(),
            fans=fans,
            voltages=(),
            powers=(),
        )
        return HwmonReadings(
            chips=(c,),
            thermal_zones=(),
            hottest_celsius=None,
            min_margin_to_crit_celsius=None,
            unavailable=(),
        )

    assert hwmon_signals(chip(fan(1150), fan(0), fan(860)))["fan_min_rpm"] == 860
    assert hwmon_signals(chip(fan(0)))["fan_min_rpm"] is None
    assert hwmon_signals(chip(fan(1150), fan(0, alarm=True)))["fan_min_rpm"] == 0
    assert hwmon_signals(chip(fan(1150), fan(0, min_rpm=300)))["fan_min_rpm"] == 0
