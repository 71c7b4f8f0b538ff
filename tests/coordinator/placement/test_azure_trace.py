"""The Azure V1 trace conversion: layout, lifetimes inside their bins, groups, determinism."""

from __future__ import annotations

from pathlib import Path

import pytest

from novacron.coordinator.placement.azure_trace import (
    TraceError,
    convert,
    main,
    parse_bins,
    parse_flavours,
)
from novacron.coordinator.placement.simulate import read_requests

SHARED_TRACE = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "azure_vm_v1"


def write_trace(directory: Path, arrivals: str, lifetimes: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "flav_map.txt").write_text("1,0.75 a\n2,4 h\n4,28 i\n")
    # bins: 0 = [0, 300), 1 = [300, 600), 2 = [600, 1500) (300 s grid, last ends +300)
    (directory / "v1.interval_map.txt").write_text("0 0\n300 1\n600 2\n900 2\n1200 2\n")
    (directory / "v1.dev.txt").write_text(arrivals)
    (directory / "v1.dev.c2100000.txt").write_text(lifetimes)
    return directory


def test_flavours_and_bins_parse() -> None:
    assert parse_flavours(["1,0.75 a", "16,112 d"]) == {
        "a": parse_flavours(["1,0.75 a"])["a"],
        "d": parse_flavours(["16,112 d"])["d"],
    }
    flavour = parse_flavours(["1,0.75 a"])["a"]
    assert (flavour.vcpus, flavour.memory_mib) == (1, 768)
    assert parse_bins(["0 0", "300 1", "600 1", "900 2"]) == [
        (0.0, 300.0),
        (300.0, 900.0),
        (900.0, 1200.0),
    ]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["1,0.75"], "expected '<vcpus>,<GB> <letter>'"),
        (["0,1 a"], "sizes must be positive"),
    ],
)
def test_bad_flavour_lines_are_named(lines: list[str], message: str) -> None:
    with pytest.raises(TraceError, match=message):
        parse_flavours(lines, "flav_map.txt")


def test_bins_must_be_contiguous() -> None:
    with pytest.raises(TraceError, match="without gaps"):
        parse_bins(["0 0", "300 2"])


def test_conversion_layout_lifetimes_and_groups(tmp_path: Path) -> None:
    trace = write_trace(
        tmp_path / "trace",
        "1000 a,h,|,i,|,a,a,a,|,\n1300 h,|,\n",
        "1000 U0,U2,|,C1,|,U1,U1,U1,|,\n1300 U2,|,\n",
    )
    requests = convert(trace, seed=3, max_group_size=2)
    assert [r.request_id for r in requests] == [f"az-{i:06d}" for i in range(7)]
    # window 1 holds 6 VMs spread evenly over its 300 s; window 2 starts at 300 s
    assert [r.arrival_seconds for r in requests] == [0.0, 50.0, 100.0, 150.0, 200.0, 250.0, 300.0]
    assert [(r.vcpus, r.memory_mib) for r in requests[:3]] == [(1, 768), (2, 4096), (4, 28672)]
    # batch of 2 = group, single VM = none, batch of 3 > max_group_size = none
    assert requests[0].group == requests[1].group != ""
    assert requests[2].group == "" and requests[3].group == ""
    # lifetimes inside their bins (lower bound excluded); C = still running = stays
    bins = {"U0": (0, 300), "U1": (300, 600), "U2": (600, 1500)}
    tokens = ["U0", "U2", "C1", "U1", "U1", "U1", "U2"]
    for request, token in zip(requests, tokens, strict=True):
        if token.startswith("C"):
            assert request.departure_seconds is None
            continue
        assert request.departure_seconds is not None
        low, high = bins[token]
        assert low < request.departure_seconds - request.arrival_seconds <= high + 1e-3
    assert convert(trace, seed=3, max_group_size=2) == requests  # deterministic
    assert convert(trace, seed=4, max_group_size=2) != requests
    assert all(r.group == "" for r in convert(trace, max_group_size=0))


@pytest.mark.parametrize(
    ("arrivals", "lifetimes", "message"),
    [
        ("0 a,|,\n", "0 U0,U0,|,\n", "disagree"),
        ("0 a,|,\n", "0 U0,|,\n300 U0,|,\n", "has 1 lines"),
        ("0 a,a,\n", "0 U0,|,\n", "separators do not line up"),
        ("0 z,|,\n", "0 U0,|,\n", "unknown flavour 'z'"),
        ("0 a,|,\n", "0 X0,|,\n", "bad lifetime token 'X0'"),
        ("0 a,|,\n", "0 U9,|,\n", "bad lifetime token 'U9'"),
        ("300 a,|,\n0 a,|,\n", "300 U0,|,\n0 U0,|,\n", "windows must increase"),
    ],
)
def test_inconsistent_traces_are_refused(
    tmp_path: Path, arrivals: str, lifetimes: str, message: str
) -> None:
    trace = write_trace(tmp_path / "trace", arrivals, lifetimes)
    with pytest.raises(TraceError, match=message):
        convert(trace)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"flav_map\.txt: cannot read"):
        convert(tmp_path)


def test_command_writes_a_requests_file_the_simulator_reads(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "trace", "0 a,h,|,i,|,\n", "0 U0,U1,|,C2,|,\n")
    out = tmp_path / "requests.csv"
    assert main([str(trace), str(out), "--limit", "2"]) == 0
    assert read_requests(out) == convert(trace)[:2]
    assert main([str(tmp_path / "missing"), str(out)]) == 2


@pytest.mark.skipif(not SHARED_TRACE.is_dir(), reason="../shared/data/azure_vm_v1 not present")
def test_shared_trace_converts() -> None:
    requests = convert(SHARED_TRACE)
    assert len(requests) == 259_159  # every flavour letter of v1.dev.txt
    assert requests[0].arrival_seconds == 0.0
    assert requests[-1].arrival_seconds < 300_000.0  # 1000 windows of 300 s
    stays = sum(r.departure_seconds is None for r in requests)
    assert stays == 14_317  # the C<n> tokens: running at the 2,100,000 s cut
    assert all(
        r.departure_seconds is None or r.departure_seconds > r.arrival_seconds for r in requests
    )
