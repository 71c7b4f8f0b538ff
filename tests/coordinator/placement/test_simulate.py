"""The what-if replay: REQUESTS.csv, event order, the report's measures, and an
independent check that every assignment respects capacity and anti-affinity."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from novacron.coordinator.placement.hosts import HostTable
from novacron.coordinator.placement.hosts_csv import hosts_from_csv
from novacron.coordinator.placement.settings import PlacementSettings
from novacron.coordinator.placement.simulate import (
    POLICIES,
    SimRequest,
    format_assignments,
    format_requests,
    parse_requests,
    simulate,
)
from novacron.protos.runtime.tomlconfig import ConfigError

# No overcommit and no host reserve, so capacities in the tests read as written.
EXACT = PlacementSettings(cpu_allocation_ratio=1.0, ram_allocation_ratio=1.0)

HEADER = "request_id,arrival_s,departure_s,vcpus,memory_mib,gpus,gpu_model,group\n"


def fleet(
    tmp_path: Path, rows: Sequence[str], header: str = "host_id,vcpus,memory_mib"
) -> HostTable:
    path = tmp_path / "hosts.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return hosts_from_csv(path, settings=EXACT)


def req(
    request_id: str,
    arrival: float,
    departure: float | None,
    vcpus: int = 1,
    memory_mib: int = 1024,
    *,
    group: str = "",
    gpus: int = 0,
    gpu_model: str = "",
) -> SimRequest:
    return SimRequest(request_id, arrival, departure, vcpus, memory_mib, gpus, gpu_model, group)


# ------------------------------------------------------------------- REQUESTS.csv


def test_requests_csv_parses_every_column() -> None:
    text = HEADER + "a,0,10,2,2048,1,NVIDIA L40S,web\n\nb,5,,1,512,,,\n"
    assert parse_requests(text) == [
        req("a", 0.0, 10.0, 2, 2048, group="web", gpus=1, gpu_model="NVIDIA L40S"),
        req("b", 5.0, None, 1, 512),
    ]


def test_only_the_required_columns_are_required() -> None:
    assert parse_requests("vcpus,memory_mib,request_id,arrival_s\n2,64,x,1.5\n") == [
        req("x", 1.5, None, 2, 64)
    ]


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("", "REQUESTS.csv", "empty file"),
        (HEADER.replace("gpus,", "gpu,"), "REQUESTS.csv:1: gpu", "unknown column"),
        ("request_id,arrival_s,vcpus\n", "REQUESTS.csv:1: memory_mib", "required column"),
        (HEADER + "a,0,,1,1,0,,\na,1,,1,1,0,,\n", "REQUESTS.csv:3: request_id", "repeats line 2"),
        (HEADER + ",0,,1,1,0,,\n", "REQUESTS.csv:2: request_id", "empty"),
        (HEADER + "a,soon,,1,1,0,,\n", "REQUESTS.csv:2: arrival_s", "expected seconds"),
        (HEADER + "a,-1,,1,1,0,,\n", "REQUESTS.csv:2: arrival_s", "expected seconds >= 0"),
        (HEADER + "a,nan,,1,1,0,,\n", "REQUESTS.csv:2: arrival_s", "expected seconds >= 0"),
        (HEADER + "a,5,5,1,1,0,,\n", "REQUESTS.csv:2: departure_s", "later than arrival_s"),
        (HEADER + "a,0,,0,1,0,,\n", "REQUESTS.csv:2: vcpus", "expected >= 1"),
        (HEADER + "a,0,,1.5,1,0,,\n", "REQUESTS.csv:2: vcpus", "whole number"),
        (HEADER + "a,0,,1,,0,,\n", "REQUESTS.csv:2: memory_mib", "whole number"),
        (HEADER + "a,0,,1,1,-1,,\n", "REQUESTS.csv:2: gpus", "expected >= 0"),
        (HEADER + "a,0,,1,1,0,,,extra\n", "REQUESTS.csv:2", "more cells"),
    ],
)
def test_requests_csv_errors_name_line_and_column(text: str, where: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_requests(text, "REQUESTS.csv")
    assert str(raised.value).startswith(where)
    assert problem in str(raised.value)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 10**6),
            st.one_of(st.none(), st.integers(1, 10**6)),
            st.integers(1, 512),
            st.integers(1, 10**7),
            st.integers(0, 8),
            st.sampled_from(["", "NVIDIA A100", "a,b"]),
            st.sampled_from(["", "g1", "web tier"]),
        ),
        max_size=20,
    )
)
def test_requests_csv_round_trips(
    rows: list[tuple[int, int | None, int, int, int, str, str]],
) -> None:
    requests = [
        req(
            f"r{i}",
            a / 8,
            None if d is None else a / 8 + d,
            v,
            m,
            gpus=g,
            gpu_model=model,
            group=grp,
        )
        for i, (a, d, v, m, g, model, grp) in enumerate(rows)
    ]
    assert parse_requests(format_requests(requests)) == requests


# ------------------------------------------------------------------------ replay


def test_departures_free_capacity_before_arrivals_at_the_same_instant(tmp_path: Path) -> None:
    hosts = fleet(tmp_path, ["h1,4,4096"])
    requests = [req("a", 0, 10, 4, 4096), req("b", 10, None, 4, 4096), req("c", 10, None, 1, 1)]
    result = simulate(hosts, requests, EXACT, "default")
    assert dict(result.assignments) == {"a": "h1", "b": "h1", "c": ""}
    report = result.report
    assert (report.placed, report.unplaced) == (2, 1)
    (reason,) = report.unplaced_by_reason
    assert "memory" in reason or "vcpu" in reason.lower()
    assert report.decisions == 3


def test_anti_affine_group_members_never_share_a_host(tmp_path: Path) -> None:
    hosts = fleet(tmp_path, ["h1,16,16384", "h2,16,16384"])
    requests = [req(f"m{i}", float(i), None, group="db") for i in range(3)]
    requests.append(req("other", 5.0, None, group=""))
    result = simulate(hosts, requests, EXACT, "pack")
    placed = [result.assignments[f"m{i}"] for i in range(3)]
    assert sorted(placed[:2]) == ["h1", "h2"] and placed[2] == ""
    assert result.assignments["other"] != ""
    assert result.report.unplaced == 1
    # a member that leaves frees its host for the next member
    requests = [req("m0", 0, 5, group="db"), req("m1", 1, None, group="db")]
    requests += [req("m2", 2, None, group="db"), req("m3", 6, None, group="db")]
    result = simulate(hosts, requests, EXACT, "pack")
    assert result.assignments["m2"] == "" and result.assignments["m3"] == result.assignments["m0"]


def test_report_measures_by_hand(tmp_path: Path) -> None:
    """Two 4-vCPU/8 GiB hosts; every number below is worked out on paper."""
    hosts = fleet(tmp_path, ["h1,4,8192", "h2,4,8192"])
    requests = [
        req("a", 0, 100, 2, 1024),  # h1 (first fit)
        req("b", 0, None, 2, 1024),  # h1: now 0 vCPUs, 6144 MiB free -> stranded
        req("c", 50, 150, 1, 1024),  # h2
    ]
    result = simulate(hosts, requests, EXACT, "first-fit")
    assert dict(result.assignments) == {"a": "h1", "b": "h1", "c": "h2"}
    report = result.report
    assert (report.start_seconds, report.end_seconds) == (0.0, 150.0)
    assert (report.peak_active_hosts, report.peak_active_at_seconds) == (2, 50.0)
    assert report.final_active_hosts == 1  # only b stays on h1
    # vCPU utilisation of active hosts: 0..50 4/4, 50..100 5/8, 100..150 3/8
    assert report.utilisation_mean["vcpus"] == pytest.approx(
        (50 * 1 + 50 * 5 / 8 + 50 * 3 / 8) / 150
    )
    assert report.utilisation_final["vcpus"] == pytest.approx(2 / 4)
    assert report.utilisation_final["memory_mib"] == pytest.approx(1024 / 8192)
    assert report.utilisation_final["gpus"] is None  # no GPUs on active hosts
    # stranded: 0..100 h1 has 0 vCPUs and 6144 MiB free; after a leaves, nothing
    assert report.stranded_final == {"vcpus": 0.0, "memory_mib": 0.0, "gpus": 0.0}
    assert report.stranded_hosts_final == 0
    assert report.stranded_mean["memory_mib"] == pytest.approx(6144 * 100 / 150)
    assert report.latency_p50_seconds is not None and report.latency_p50_seconds > 0
    assert report.latency_p99_seconds is not None
    assert report.latency_p99_seconds >= report.latency_p50_seconds


def test_stranded_capacity_depends_on_the_request_mix(tmp_path: Path) -> None:
    hosts = fleet(tmp_path, ["h1,4,8192"])
    small = [req("a", 0, None, 3, 1024), req("tiny", 1, None, 1, 512)]
    # after a and tiny: 0 vCPUs free -> the 7168-512 MiB left are stranded
    report = simulate(hosts, small, EXACT, "default").report
    assert report.stranded_final["memory_mib"] == 8192 - 1024 - 512
    assert report.stranded_hosts_final == 1
    # the mix of only "a": after a, 1 vCPU / 7168 MiB free and no 3-vCPU shape fits
    report = simulate(hosts, small[:1], EXACT, "default").report
    assert report.stranded_final == {"vcpus": 1.0, "memory_mib": 7168.0, "gpus": 0.0}


def test_gpu_requests_respect_the_model(tmp_path: Path) -> None:
    hosts = fleet(
        tmp_path,
        ["cpu,32,65536,0,", "l40,32,65536,2,NVIDIA L40S", "a100,32,65536,2,NVIDIA A100"],
        header="host_id,vcpus,memory_mib,gpus,gpu_model",
    )
    requests = [
        req("g1", 0, None, gpus=2, gpu_model="NVIDIA A100"),
        req("g2", 1, None, gpus=1, gpu_model="NVIDIA A100"),
        req("g3", 2, None, gpus=1),
    ]
    result = simulate(hosts, requests, EXACT, "default")
    assert dict(result.assignments) == {"g1": "a100", "g2": "", "g3": "l40"}
    assert result.report.utilisation_final["gpus"] == pytest.approx(3 / 4)


def test_pack_uses_fewer_hosts_than_spread(tmp_path: Path) -> None:
    hosts = fleet(tmp_path, [f"h{i},16,32768" for i in range(10)])
    requests = [req(f"r{i}", float(i), None, 2, 4096) for i in range(16)]
    packed = simulate(hosts, requests, EXACT, "pack").report
    spread = simulate(hosts, requests, EXACT, "spread").report
    assert packed.placed == spread.placed == 16
    assert packed.peak_active_hosts == 2
    assert spread.peak_active_hosts == 10


def test_every_policy_runs(tmp_path: Path) -> None:
    hosts = fleet(tmp_path, [f"h{i},8,16384" for i in range(3)])
    requests = [req(f"r{i}", float(i), float(i) + 2.5, 2, 2048) for i in range(6)]
    for name in POLICIES:
        report = simulate(hosts, requests, EXACT, name).report
        assert report.policy == name and report.placed == 6


# ----------------------------------------------------- independent assignment check


def check_assignments(
    hosts_csv: str, requests_csv: str, assignments_csv: str, settings: PlacementSettings
) -> int:
    """Re-derive every host's load from the three files alone (plain csv, no project
    code) and assert capacity at every instant and group anti-affinity; returns how many
    requests were placed."""
    capacity = {
        row["host_id"]: (
            float(row["vcpus"]) * settings.cpu_allocation_ratio,
            float(row["memory_mib"]) * settings.ram_allocation_ratio,
        )
        for row in csv.DictReader(io.StringIO(hosts_csv))
    }
    requests = {row["request_id"]: row for row in csv.DictReader(io.StringIO(requests_csv))}
    assigned = {
        row["request_id"]: row["host_id"] for row in csv.DictReader(io.StringIO(assignments_csv))
    }
    assert set(assigned) == set(requests)
    events = []
    for request_id, host in assigned.items():
        if not host:
            continue
        assert host in capacity, f"{request_id} on unknown host {host}"
        row = requests[request_id]
        events.append((float(row["arrival_s"]), 1, request_id))
        if row["departure_s"]:
            events.append((float(row["departure_s"]), 0, request_id))
    used = {host: [0.0, 0.0] for host in capacity}
    members: dict[tuple[str, str], int] = {}
    for _, kind, request_id in sorted(events):
        row, host = requests[request_id], assigned[request_id]
        sign = 1 if kind else -1
        used[host][0] += sign * int(row["vcpus"])
        used[host][1] += sign * int(row["memory_mib"])
        assert used[host][0] <= capacity[host][0] + 1e-9, f"vCPUs over on {host}"
        assert used[host][1] <= capacity[host][1] + 1e-9, f"memory over on {host}"
        if row["group"]:
            key = (row["group"], host)
            members[key] = members.get(key, 0) + sign
            assert members[key] <= 1, f"group {row['group']} twice on {host}"
    return len(events) - sum(1 for _, kind, _ in events if kind == 0)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), policy=st.sampled_from(sorted(POLICIES)))
def test_assignments_pass_an_independent_check(
    tmp_path_factory: pytest.TempPathFactory, seed: int, policy: str
) -> None:
    rng = np.random.default_rng(seed)
    hosts_csv = "host_id,vcpus,memory_mib\n" + "".join(
        f"h{i},{rng.choice([4, 8, 16])},{rng.choice([4096, 8192, 16384])}\n" for i in range(6)
    )
    requests = []
    for i in range(60):
        arrival = float(rng.integers(0, 100))
        departure = arrival + float(rng.integers(1, 60)) if rng.random() < 0.7 else None
        group = f"g{rng.integers(0, 4)}" if rng.random() < 0.4 else ""
        requests.append(
            req(
                f"r{i}",
                arrival,
                departure,
                int(rng.integers(1, 5)),
                int(rng.choice([512, 2048, 4096])),
                group=group,
            )
        )
    directory = tmp_path_factory.mktemp("independent")
    (directory / "hosts.csv").write_text(hosts_csv)
    hosts = hosts_from_csv(directory / "hosts.csv", settings=EXACT)
    result = simulate(hosts, requests, EXACT, policy)
    placed = check_assignments(
        hosts_csv, format_requests(requests), format_assignments(result.assignments), EXACT
    )
    assert placed == result.report.placed
    assert result.report.placed + result.report.unplaced == len(requests)
    assert sum(result.report.unplaced_by_reason.values()) == result.report.unplaced
