"""``novacron-coordinator place`` and the docs' client example, against a real server."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import pytest

from novacron.coordinator.cli import main
from novacron.coordinator.placement.claims import ClaimBook
from tests.coordinator.placement.engine_support import make_policy
from tests.coordinator.placement.service_support import ApiThread, insecure_api_config, servicer
from tests.coordinator.placement.tables import host_table
from tests.fixtures.processes import free_port

DOCS = Path(__file__).resolve().parents[3] / "docs" / "placement.md"
FLEET: list[dict[str, Any]] = [
    {"host_id": "cmp-1", "zone": "az1"},
    {"host_id": "cmp-2", "zone": "az1", "failure_probability": 0.45},
    {"host_id": "cmp-3", "zone": "az2", "maintenance": 1},
]


@pytest.fixture
def book() -> ClaimBook:
    return ClaimBook()


@pytest.fixture
def api(tmp_path: Path, book: ClaimBook) -> Iterator[ApiThread]:
    db = tmp_path / "coordinator.db"
    placement = servicer(make_policy(), host_table(FLEET), db_path=db, book=book)
    with ApiThread(insecure_api_config(db), placement) as running:
        yield running


SMALL = ("--vcpus", "2", "--memory-mib", "4096")


class Place(Protocol):
    def __call__(
        self, *args: str, connection: Sequence[str] | None = None
    ) -> tuple[int, str, str]: ...


@pytest.fixture
def place(api: ApiThread, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Place:
    """Runs ``place`` with an empty config against the test server: (exit code, out, err).

    ``connection`` replaces the default ``--api <server> --insecure`` arguments.
    """
    config = tmp_path / "empty.toml"
    config.write_text("")

    def run(*args: str, connection: Sequence[str] | None = None) -> tuple[int, str, str]:
        if connection is None:
            connection = ("--api", api.address, "--insecure")
        code = main(["place", "--config", str(config), *connection, *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_ranked_hosts_with_pros_cons_and_filter_counts(place: Place) -> None:
    code, out, _ = place(*SMALL)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("2 of 3 hosts passed the filters")
    assert re.match(r"\s+1  cmp-1  score \d\.\d{3}  confidence 1\.00", lines[1])
    assert "24 h failure probability 0.45 (worst of 2 candidates)" in out
    assert re.search(r"TestStateFilter\s+1  in maintenance", out)


def test_json_claim_and_no_valid_host(place: Place, book: ClaimBook) -> None:
    code, out, _ = place(*SMALL, "--claim-ttl", "30", "--request-id", "cli-1", "--json")
    assert code == 0
    document: dict[str, Any] = json.loads(out)
    assert document["hosts"][0]["host"]["host"] == "cmp-1"
    assert document["claim"]["host"]["host"] == "cmp-1"
    assert [c.request_id for c in book.active()] == ["cli-1"]
    code, out, _ = place(*SMALL, "--zone", "az9")
    assert code == 0
    assert "no valid host:" in out and "not in zone az9" in out


def test_explain_and_factors(place: Place) -> None:
    code, out, _ = place(*SMALL, "--explain", "cmp-2")
    assert code == 0
    assert out.startswith("cmp-2 passed every filter and ranks 2 of 2")
    assert "failure_probability_24h" in out
    code, out, _ = place("--factors")
    assert code == 0
    assert out.splitlines()[0].split() == ["FACTOR", "CATEGORY", "UNIT", "WEIGHT", "NAME"]
    assert "failure_probability_24h" in out


def test_errors_and_exit_statuses(api: ApiThread, place: Place) -> None:
    code, _, err = place()
    assert code == 2 and "--vcpus and --memory-mib are required" in err
    code, _, err = place("--vcpus", "1", "--memory-mib", "1", "--objective", "speed=1")
    assert code == 2 and "INVALID_ARGUMENT" in err and "speed" in err
    code, _, err = place("--vcpus", "1", "--memory-mib", "1", connection=("--api", api.address))
    assert code == 2 and "--ca, --cert and --key" in err
    code, _, err = place(
        "--timeout",
        "0.5",
        "--vcpus",
        "1",
        "--memory-mib",
        "1",
        connection=("--api", f"127.0.0.1:{free_port()}", "--insecure"),
    )
    assert code == 1 and ("UNAVAILABLE" in err or "DEADLINE_EXCEEDED" in err)


def test_the_documented_client_example_runs(
    api: ApiThread, book: ClaimBook, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    (example,) = [block for block in blocks if "def choose_host" in block]
    namespace: dict[str, Any] = {}
    exec(compile(example, str(DOCS), "exec"), namespace)
    host, claim_id = namespace["choose_host"](api.address, 2, 4096)
    assert host == "cmp-1" and claim_id
    assert book.active() == ()  # the example releases its claim
    assert capsys.readouterr().out.startswith("1 cmp-1 ")
    host, reasons = namespace["choose_host"](api.address, 200, 4096)
    assert host is None and "lack 200 free vCPUs" in reasons
    with pytest.raises(ValueError, match=r"spec\.vcpus"):
        namespace["choose_host"](api.address, 0, 4096)
    # the outcome the example reported is stored for learning
    assert api.server.servicer.outcomes is not None
    assert [o.host for o in api.server.servicer.outcomes.outcomes()] == ["cmp-1"]


def test_pki_issue_client(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pki", "init", "--dir", str(tmp_path)]) == 0
    assert main(["pki", "issue-client", "--dir", str(tmp_path), "--name", "scheduler"]) == 0
    assert (tmp_path / "clients" / "scheduler.crt").is_file()
    assert main(["pki", "issue-client", "--dir", str(tmp_path), "--name", "bad name"]) == 1
    assert "client name" in capsys.readouterr().err
