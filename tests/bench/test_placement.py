"""Smoke test: the placement benchmark runs end to end on a tiny fleet (not a timing)."""

from __future__ import annotations

import pytest

from bench.placement import main


def test_placement_bench_runs_on_a_tiny_fleet(capsys: pytest.CaptureFixture[str]) -> None:
    main(
        [
            "--hosts",
            "60",
            "--requests",
            "5",
            "--baseline-requests",
            "2",
            "--azure-requests",
            "40",
            "--azure-hosts",
            "20",
        ]
    )
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if line.startswith("     60 ")]
    # hosts, in-process p50/p99/rate, gRPC p50/p99/rate (best hosts asserted equal),
    # loop p50 and ratio (same ranking asserted)
    cells = row.split()
    assert len(cells) == 9 and cells[-1].endswith("x"), row
    assert all(float(cell.replace(",", "")) > 0 for cell in cells[1:7]), row
    if "policy comparison skipped" not in out:
        assert all(name in out for name in ("first-fit", "pack", "spread"))
