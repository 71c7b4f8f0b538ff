"""HOSTS.csv for the what-if simulator: columns, defaults, errors with file, line, column."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from novacron.coordinator.fleet import Liveness
from novacron.coordinator.placement.hosts_csv import hosts_from_csv
from novacron.coordinator.placement.settings import PlacementSettings
from novacron.protos.runtime.tomlconfig import ConfigError

HOSTS = (
    "host_id,vcpus,memory_mib,gpus,gpu_model,zone,numa_nodes,vcpus_used,cost_per_hour,"
    "temp_max_celsius_last_15m,cpu_flags,labels,labels.owner,maintenance\n"
    "a,64,262144,0,,z1,2,8,0.8,61.5,avx2;aes,tier=gold,ml,false\n"
    "b,96,786432,8,NVIDIA H100 80GB HBM3,z2,,,9.5,,,,,1\n"
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "HOSTS.csv"
    path.write_text(text)
    return path


def test_hosts_csv_columns(tmp_path: Path) -> None:
    hosts = hosts_from_csv(write(tmp_path, HOSTS), taken_at_seconds=5.0)
    assert hosts.host_ids.tolist() == ["a", "b"] and hosts.taken_at_seconds == 5.0
    assert hosts.numbers["vcpus_total"].tolist() == [64, 96]
    assert hosts.numbers["memory_mib_total"].tolist() == [262144, 786432]
    assert hosts.numbers["gpus_total"].tolist() == [0, 8]
    assert hosts.numbers["vcpus_used"].tolist() == [8, 0]  # empty cell: nothing used
    assert hosts.numbers["maintenance"].tolist() == [0, 1]
    assert hosts.numbers["liveness"].tolist() == [Liveness.LIVE] * 2
    assert np.isnan(hosts.numbers["disk_gib_total"]).all()  # no disk column: not known
    assert hosts.numbers["cost_per_hour"].tolist() == [0.8, 9.5]  # a factor column
    assert hosts.texts["gpu_model"].tolist() == ["", "NVIDIA H100 80GB HBM3"]
    assert hosts.texts["zone"].tolist() == ["z1", "z2"]
    assert hosts.flags["cpu_flags"].values(0) == {"avx2", "aes"}
    assert hosts.label("tier").tolist() == ["gold", ""]
    assert hosts.label("owner").tolist() == ["ml", ""]
    temp = hosts.feature("temp_max_celsius_last_15m")
    assert temp[0] == pytest.approx(61.5) and math.isnan(temp[1])
    # Two NUMA nodes share a's capacity (x the ratio) and its use; b's topology unknown.
    np.testing.assert_array_equal(hosts.numa_free_vcpus, [[(64 * 4 - 8) / 2] * 2, [np.nan] * 2])
    np.testing.assert_array_equal(hosts.numa_free_memory_mib[0], [131072, 131072])


def test_numa_split_follows_the_settings_ratio(tmp_path: Path) -> None:
    hosts = hosts_from_csv(
        write(tmp_path, HOSTS), settings=PlacementSettings(cpu_allocation_ratio=1.0)
    )
    assert hosts.numa_free_vcpus[0].tolist() == [28, 28]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("host_id,vcpus\na,4\n", "HOSTS.csv:1: memory_mib: missing column"),
        ("host_id,vcpus,memory_mib\na,four,1024\n", "HOSTS.csv:2: vcpus: expected an integer"),
        ("host_id,vcpus,memory_mib\na,4,1024\nb,,1024\n", "HOSTS.csv:3: vcpus: required, but"),
        ("host_id,vcpus,memory_mib\na,4.5,1024\n", "HOSTS.csv:2: vcpus: expected an integer"),
        ("host_id,vcpus,memory_mib\na,4,-1\n", "HOSTS.csv:2: memory_mib: must be >= 0"),
        ("host_id,vcpus,memory_mib\na,4,inf\n", "HOSTS.csv:2: memory_mib: expected a finite"),
        (
            "host_id,vcpus,memory_mib\na,4,1024\na,8,1024\n",
            "HOSTS.csv:3: host_id: host 'a' listed twice (first on line 2)",
        ),
        ("host_id,vcpus,memory_mib\n,4,1024\n", "HOSTS.csv:2: host_id: empty host id"),
        ("host_id,vcpus,memory_mib\na,4\n", "HOSTS.csv:2: expected 3 cells, got 2"),
        ("host_id,vcpus,memory_mib,owner\na,4,1024,ops\n", "HOSTS.csv:2: owner: expected a n"),
        ("host_id,vcpus,memory_mib,labels\na,4,1024,gold\n", "HOSTS.csv:2: labels: expected k"),
        ("host_id,vcpus,memory_mib,numa_nodes\na,4,1024,0\n", "HOSTS.csv:2: numa_nodes: must"),
        ("host_id,vcpus,memory_mib,liveness\na,4,1024,3\n", "HOSTS.csv:2: liveness: expected 0"),
        ("host_id,vcpus,memory_mib,cordoned\na,4,1024,maybe\n", "HOSTS.csv:2: cordoned: expe"),
        ("host_id,vcpus,vcpus_total,memory_mib\na,4,4,1\n", "HOSTS.csv:1: vcpus_total: given t"),
        ("host_id,vcpus,vcpus,memory_mib\na,4,4,1\n", "HOSTS.csv:1: vcpus: column appears"),
        ("", "HOSTS.csv: empty file"),
    ],
)
def test_hosts_csv_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        hosts_from_csv(write(tmp_path, text))
    assert str(caught.value).startswith(str(tmp_path / "HOSTS.csv"))
    assert message in str(caught.value)


def test_missing_hosts_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="hosts file not found"):
        hosts_from_csv(tmp_path / "nope.csv")
