"""``novacron-coordinator simulate``: options, output formats, errors, the real script."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from novacron.coordinator.cli import main
from tests.fixtures.processes import console_script

HOSTS = (
    "host_id,vcpus,memory_mib,gpus,gpu_model,zone\nh1,8,16384,0,,z1\nh2,8,16384,1,NVIDIA L40S,z1\n"
)
REQUESTS = (
    "request_id,arrival_s,departure_s,vcpus,memory_mib,gpus,gpu_model,group\n"
    "a,0,100,4,4096,0,,web\n"
    "b,1,,4,4096,0,,web\n"
    "c,2,,4,4096,0,,web\n"  # a third member of an anti-affine group on two hosts
    "g,3,,2,2048,1,NVIDIA L40S,\n"
)


def files(tmp_path: Path) -> tuple[Path, Path]:
    hosts, requests = tmp_path / "hosts.csv", tmp_path / "requests.csv"
    hosts.write_text(HOSTS)
    requests.write_text(REQUESTS)
    return hosts, requests


def test_json_report_and_assignments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hosts, requests = files(tmp_path)
    out = tmp_path / "assignments.csv"
    argv = ["simulate", "--hosts", str(hosts), "--requests", str(requests), "--json"]
    assert main([*argv, "--policy", "pack", "--assignments-out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["policy"] == "pack"
    assert (report["requests"], report["placed"], report["unplaced"]) == (4, 3, 1)
    assert sum(report["unplaced_by_reason"].values()) == 1
    assert report["peak_active_hosts"] == 2
    assert set(report["utilisation_mean"]) == {"vcpus", "memory_mib", "gpus"}
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["request_id"] for row in rows] == ["a", "b", "c", "g"]
    assert rows[2]["host_id"] == "" and rows[3]["host_id"] == "h2"
    assert rows[0]["host_id"] != rows[1]["host_id"]


def test_text_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hosts, requests = files(tmp_path)
    assert main(["simulate", "--hosts", str(hosts), "--requests", str(requests)]) == 0
    text = capsys.readouterr().out
    assert "policy default: 4 requests on 2 hosts" in text
    assert "placed 3, unplaced 1" in text
    assert "active hosts: peak 2" in text
    assert "decision latency: p50" in text


@pytest.mark.parametrize(
    ("hosts_text", "requests_text", "message"),
    [
        (HOSTS, REQUESTS.replace("vcpus,memory_mib", "vcpu,memory_mib", 1), "requests.csv:1: vcpu"),
        (HOSTS, REQUESTS + "x,5,4,1,1,0,,\n", "requests.csv:6: departure_s"),
        ("host_id,vcpus\nh1,4\n", REQUESTS, "hosts.csv:1: memory_mib"),
    ],
)
def test_input_errors_exit_2_naming_file_line_and_column(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    hosts_text: str,
    requests_text: str,
    message: str,
) -> None:
    hosts, requests = tmp_path / "hosts.csv", tmp_path / "requests.csv"
    hosts.write_text(hosts_text)
    requests.write_text(requests_text)
    assert main(["simulate", "--hosts", str(hosts), "--requests", str(requests)]) == 2
    assert message in capsys.readouterr().err


def test_missing_requests_file_and_unknown_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hosts, _ = files(tmp_path)
    assert main(["simulate", "--hosts", str(hosts), "--requests", str(tmp_path / "no.csv")]) == 2
    assert "no.csv" in capsys.readouterr().err
    with pytest.raises(SystemExit) as raised:
        main(["simulate", "--hosts", str(hosts), "--requests", "r.csv", "--policy", "random"])
    assert raised.value.code == 2


def test_console_script(tmp_path: Path) -> None:
    hosts, requests = files(tmp_path)
    done = subprocess.run(
        [
            console_script("novacron-coordinator"),
            "simulate",
            "--hosts",
            str(hosts),
            "--requests",
            str(requests),
            "--policy",
            "first-fit",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["placed"] == 3
