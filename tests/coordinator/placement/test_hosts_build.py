"""The live host table: a real SQLite store, Hellos and frames written through its API."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from novacron.coordinator.config import StoreSettings
from novacron.coordinator.fleet import FleetState, Liveness
from novacron.coordinator.placement.filters.capacity import CapacityFilter
from novacron.coordinator.placement.filters.host_state import HostStateFilter
from novacron.coordinator.placement.hosts_build import (
    build_from_store,
    build_host_table,
    parse_agent_inventory,
)
from novacron.coordinator.placement.inventory_file import load_inventory_file
from novacron.coordinator.placement.settings import PlacementSettings
from novacron.coordinator.store_frames import node_hello
from novacron.coordinator.store_sqlite import SqliteStore
from novacron.protos import telemetry_pb2
from tests.coordinator.frames import stored
from tests.coordinator.placement.tables import rejected, request

T0 = 1_700_000_000.0
GIB = 1 << 30
H100 = "NVIDIA H100 80GB HBM3"
SETTINGS = PlacementSettings(reserved_host_vcpus=4, reserved_host_memory_mib=2048)


@dataclass(frozen=True)
class Claim:
    host_id: str
    vcpus: int
    memory_mib: int
    disk_gib: int
    gpus: int


def hello_n1() -> telemetry_pb2.Hello:
    hello = telemetry_pb2.Hello(agent_version="0.1.0", feature_schema_version=1)
    hello.node.host = "n1"
    inventory = hello.inventory
    inventory.cpu_model = "AMD EPYC 7763 64-Core Processor"
    inventory.cpu_flags.extend(["avx2", "aes", "svm"])
    inventory.cpu_threads = 64
    inventory.arch = "x86_64"
    inventory.memory_total_bytes = 256 * GIB
    for index in (0, 1):  # node 0's index is a zero value: MessageToDict leaves it out
        inventory.numa_nodes.add(node_index=index, cpu_threads=32, memory_total_bytes=128 * GIB)
    inventory.gpus.add(index=0, model=H100)
    inventory.gpus.add(index=1, model=H100)
    inventory.disks.add(name="nvme0n1", capacity_bytes=1920 * 10**9)
    inventory.disks.add(name="nvme1n1", capacity_bytes=1920 * 10**9)
    inventory.nics.add(name="ens1f0", speed_mbps=25000)
    inventory.nics.add(name="ens1f1")  # link down: no speed
    inventory.zone = "zone-a"
    inventory.aggregates.append("ssd")
    inventory.labels.update({"rack": "r7", "compliance": "pci-dss, soc2", "tier": "gold"})
    return hello


INVENTORY_FILE = """
[defaults]
carbon_g_per_kwh = 300

[hosts.n1]
rack = "r12"
maintenance = true
max_vms = 20
power_idle_watts = 150
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore.open(tmp_path / "c.db", StoreSettings(busy_timeout_seconds=0.5))
    opened.record_hello(node_hello(hello_n1()), now=T0)
    bare = telemetry_pb2.Hello(agent_version="0.1.0")
    bare.node.host = "n2"  # said hello, never sent a frame
    bare.inventory.cpu_threads = 16
    opened.record_hello(node_hello(bare), now=T0)
    # n1: three VMs, then one stops (frame 4 two minutes later); n3 sends frames only.
    opened.write_batch([stored("n1", s, vms=3) for s in (1, 2, 3)], now=T0 + 30)
    opened.write_batch(
        [stored("n1", 4, vms=2, timestamp_seconds=T0 + 150, probability=0.2)], now=T0 + 150
    )
    opened.write_batch([stored("n3", 1, vms=1)], now=T0 + 150)
    yield opened
    opened.close()


def test_store_reads_inventories_and_the_vms_running_now(store: SqliteStore) -> None:
    inventories = store.inventories()
    assert sorted(inventories) == ["n1", "n2"]
    assert inventories["n1"]["memory_total_bytes"] == str(256 * GIB)  # uint64 as a string
    vms = store.current_vms()
    assert [vm.name for vm in vms["n1"]] == ["n1-vm0", "n1-vm1"]  # vm2 stopped at frame 4
    assert [vm.name for vm in vms["n3"]] == ["n3-vm0"]
    # A VM gone for less than the store's refresh interval still counts (over-, never
    # under-counting what is used).
    store.write_batch([stored("n1", 5, vms=1, timestamp_seconds=T0 + 160)], now=T0 + 160)
    assert [vm.name for vm in store.current_vms()["n1"]] == ["n1-vm0", "n1-vm1"]
    store.write_batch([stored("n1", 6, vms=1, timestamp_seconds=T0 + 230)], now=T0 + 230)
    assert [vm.name for vm in store.current_vms()["n1"]] == ["n1-vm0"]


def test_live_table_from_store_snapshot_inventory_file_and_claims(
    store: SqliteStore, tmp_path: Path
) -> None:
    fleet = FleetState(stale_after_seconds=60, unknown_after_seconds=600)
    fleet.load(store)
    snapshot = fleet.snapshot(now=T0 + 160)
    path = tmp_path / "inventory.toml"
    path.write_text(INVENTORY_FILE)
    claims = [Claim("n1", 4, 4096, 50, 1), Claim("gone", 8, 8192, 0, 0)]
    hosts = build_from_store(
        store,
        snapshot,
        settings=SETTINGS,
        inventory_file=load_inventory_file(path, now=T0),
        claims=claims,
        vm_groups={"00000000-0000-4000-8000-000000000000": "web"},
    )
    assert hosts.host_ids.tolist() == ["n1", "n2", "n3"]
    n1, n2, n3 = 0, 1, 2

    def numbers(name: str) -> list[float]:
        values: list[float] = hosts.numbers[name].tolist()
        return values

    # Capacity: what the agent reported minus the host reserve; disks summed.
    assert numbers("vcpus_total")[n1] == 60
    assert numbers("memory_mib_total")[n1] == 256 * 1024 - 2048
    assert numbers("disk_gib_total")[n1] == pytest.approx(2 * 1920 * 10**9 / GIB)
    assert numbers("gpus_total") == [2, 0, 0]
    assert numbers("vcpus_total")[n2] == 12
    assert math.isnan(numbers("vcpus_total")[n3])  # no Hello: capacity unknown
    # Used: two VMs (4 vCPUs, 8 GiB each) plus the claim; the claim on "gone" is ignored.
    assert numbers("vcpus_used") == [12, 0, 4]
    assert numbers("memory_mib_used") == [2 * 8192 + 4096, 0, 8192]
    assert numbers("disk_gib_used") == [50, 0, 0]
    assert numbers("gpus_used") == [1, 0, 0]
    assert numbers("vm_count") == [3, 0, 1]
    # Liveness and predictions from the snapshot.
    assert numbers("liveness") == [Liveness.LIVE, Liveness.UNKNOWN, Liveness.LIVE]
    assert numbers("seconds_since_seen")[n1] == 10 and math.isnan(numbers("seconds_since_seen")[n2])
    assert numbers("failure_probability")[n1] == pytest.approx(0.2)
    assert math.isnan(numbers("failure_probability")[n2])
    np.testing.assert_array_equal(
        hosts.features[n1], store.latest_frames()[0].features.astype(np.float32)
    )
    assert np.isnan(hosts.features[n2]).all()
    # The inventory file wins where it speaks; its defaults reach every host.
    assert hosts.texts["rack"].tolist() == ["r12", "", ""]
    assert numbers("maintenance") == [1, 0, 0]
    assert numbers("max_vms")[n1] == 20 and math.isnan(numbers("max_vms")[n2])
    assert numbers("power_idle_watts")[n1] == 150 and math.isnan(numbers("power_idle_watts")[n3])
    assert numbers("carbon_g_per_kwh") == [300, 300, 300]
    assert numbers("nic_speed_mbps")[n1] == 25000 and math.isnan(numbers("nic_speed_mbps")[n2])
    # The agent's own description.
    assert hosts.texts["zone"].tolist() == ["zone-a", "", ""]
    assert hosts.texts["gpu_model"].tolist() == [H100, "", ""]
    assert hosts.texts["arch"].tolist() == ["x86_64", "", ""]
    assert hosts.flags["cpu_flags"].values(n1) == {"avx2", "aes", "svm"}
    assert hosts.flags["aggregates"].values(n1) == {"ssd"}
    assert hosts.flags["compliance"].values(n1) == {"pci-dss", "soc2"}
    assert hosts.label("tier").tolist() == ["gold", "", ""]
    # The fixture frames number VM UUIDs per node: vm0 of n1 and of n3 are both in "web".
    assert hosts.group_members["web"].tolist() == [1, 0, 1]
    # NUMA: each node's share of 60 vCPUs x 4 and of the memory; vm0, vm1 and the claim
    # each charged to the node with the most free memory at the time.
    per_node_memory = (256 * 1024 - 2048) / 2
    np.testing.assert_array_equal(hosts.numa_free_vcpus[n1], [120 - 8, 120 - 4])
    np.testing.assert_array_equal(
        hosts.numa_free_memory_mib[n1], [per_node_memory - 8192 - 4096, per_node_memory - 8192]
    )
    assert np.isnan(hosts.numa_free_vcpus[n2]).all() and np.isnan(hosts.numa_free_vcpus[n3]).all()

    # The table drives the filters: n1 is in maintenance, n2 unknown, n3 of unknown size.
    assert rejected(HostStateFilter, hosts, request(), SETTINGS) == {
        "no recent telemetry (host state unknown)": ["n2"],
        "host in maintenance": ["n1"],
    }
    assert rejected(CapacityFilter, hosts, request(), SETTINGS) == {
        "vCPUs capacity unknown": ["n3"],
        "memory capacity unknown": ["n2", "n3"],  # n2's agent sent its CPUs only
    }


def test_inventory_file_capacity_replaces_the_agents(store: SqliteStore, tmp_path: Path) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text("[hosts.n1]\nvcpus_total = 32\ndisk_gib_total = 500\n")
    fleet = FleetState()
    fleet.load(store)
    hosts = build_from_store(
        store,
        fleet.snapshot(now=T0 + 160),
        settings=SETTINGS,
        inventory_file=load_inventory_file(path),
    )
    assert hosts.numbers["vcpus_total"][0] == 32 and hosts.numbers["disk_gib_total"][0] == 500
    # The NUMA nodes split the stated capacity.
    np.testing.assert_array_equal(hosts.numa_free_vcpus[0], [64 - 4, 64 - 4])


def test_empty_fleet_builds_an_empty_table() -> None:
    hosts = build_host_table(FleetState().snapshot(now=T0), {}, {}, settings=SETTINGS)
    assert len(hosts) == 0 and hosts.numa_free_vcpus.shape == (0, 0)


def test_malformed_agent_inventory_counts_as_not_sent(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        agent = parse_agent_inventory(
            "n9",
            {
                "cpu_threads": "lots",
                "memory_total_bytes": "-1",
                "gpus": [{"model": "L40S"}, "junk"],
                "disks": {"not": "a list"},
                "labels": ["no"],
            },
        )
    assert agent.cpu_threads is None and agent.memory_total_bytes is None
    assert agent.gpu_count == 1 and agent.gpu_model == "L40S"
    assert agent.disk_bytes is None and dict(agent.labels) == {}
    assert "agent inventory value is not a count" in caplog.text
