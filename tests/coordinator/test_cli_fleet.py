"""``novacron-coordinator fleet`` run as the installed console script, on real databases."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from novacron.coordinator.cli import build_parser, render_fleet
from novacron.coordinator.store import NodeHello
from novacron.coordinator.store_sqlite import SqliteStore
from tests.coordinator.frames import stored, stored_range
from tests.fixtures.processes import console_script

COORDINATOR = console_script("novacron-coordinator")


def coordinator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COORDINATOR, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def fleet_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stopped coordinator's database: a live node with a gap, a stale one, a silent one."""
    path = tmp_path_factory.mktemp("fleet") / "coordinator.db"
    store = SqliteStore.open(path)
    now = time.time()
    store.write_batch(stored_range("cmp-a", 1, 10), now=now)
    store.write_batch(stored_range("cmp-a", 14, 20), now=now)
    store.write_batch([stored("cmp-b", s) for s in (3, 4, 5)], now=now - 120)
    store.record_hello(NodeHello("cmp-c", "0.1.0", 1), now=now)
    store.close()
    assert not path.with_name("coordinator.db-wal").exists()  # cleanly closed
    return path


def test_table(fleet_db: Path) -> None:
    result = coordinator("fleet", "--db", str(fleet_db))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "NODE",
        "STATUS",
        "LAST",
        "SEEN",
        "FRAMES",
        "LOWEST",
        "HIGHEST",
        "GAPS",
    ]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["cmp-a"][1] == "live"
    assert rows["cmp-a"][3:] == ["17", "1", "20", "1"]
    assert rows["cmp-b"][1] == "stale"
    assert rows["cmp-b"][3:] == ["3", "3", "5", "0"]
    assert rows["cmp-c"][1:] == ["unknown", "-", "0", "-", "-", "0"]
    assert len(rows) == 3


def test_json(fleet_db: Path) -> None:
    result = coordinator("fleet", "--db", str(fleet_db), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["db"] == str(fleet_db)
    nodes = {n["node_id"]: n for n in document["nodes"]}
    a = nodes["cmp-a"]
    assert (a["status"], a["connection"]) == ("live", "connected")
    assert (a["frames_stored"], a["lowest_seq"], a["highest_seq"]) == (17, 1, 20)
    assert (a["gaps"], a["missing_frames"], a["acked_seq"]) == (1, 3, 10)
    assert a["last_seen"].endswith("Z")
    assert nodes["cmp-b"]["status"] == "stale"
    assert nodes["cmp-b"]["acked_seq"] == 0
    c = nodes["cmp-c"]
    assert (c["status"], c["last_seen"], c["frames_stored"], c["lowest_seq"]) == (
        "unknown",
        None,
        0,
        None,
    )


def test_liveness_thresholds_come_from_the_config(fleet_db: Path, tmp_path: Path) -> None:
    config = tmp_path / "coordinator.toml"
    config.write_text(
        f'[coordinator]\ndb_path = "{fleet_db}"\n'
        "stale_after_seconds = 600\nunknown_after_seconds = 900\n"
    )
    result = coordinator("fleet", "--config", str(config), "--json")  # --db from the config
    assert result.returncode == 0, result.stderr
    nodes = {n["node_id"]: n for n in json.loads(result.stdout)["nodes"]}
    assert nodes["cmp-b"]["status"] == "live"


def test_usable_while_the_coordinator_writes(tmp_path: Path) -> None:
    path = tmp_path / "running.db"
    store = SqliteStore.open(path)
    template = stored("busy", 1)
    stop = threading.Event()
    committed: list[int] = []

    def write() -> None:
        seq = 1
        while not stop.is_set():
            batch = [replace(template, seq=s) for s in range(seq, seq + 10)]
            store.write_batch(batch)
            committed.append(seq + 9)
            seq += 10
            time.sleep(0.005)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while not committed:
            time.sleep(0.01)
        for _ in range(2):
            result = coordinator("fleet", "--db", str(path), "--json")
            assert result.returncode == 0, result.stderr
            (node,) = json.loads(result.stdout)["nodes"]
            # Whole transactions only: multiples of 10 frames, never a gap.
            assert node["frames_stored"] % 10 == 0 and node["frames_stored"] >= 10
            assert node["highest_seq"] == node["acked_seq"] == node["frames_stored"]
            assert node["gaps"] == 0
    finally:
        stop.set()
        writer.join()
        store.close()
    assert len(committed) > 2, "the writer was blocked by the readers"


def test_empty_store(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    SqliteStore.open(path).close()
    result = coordinator("fleet", "--db", str(path), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["nodes"] == []
    assert render_fleet([]) == "no nodes in the store"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no coordinator database here"),
        (b"SQLite? no, a text file\n" * 50, "not a coordinator database"),
    ],
)
def test_unusable_database_is_exit_2_without_traceback(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "coordinator.db"
    if content is not None:
        path.write_bytes(content)
    result = coordinator("fleet", "--db", str(path))
    assert result.returncode == 2
    assert message in result.stderr and str(path) in result.stderr
    assert "Traceback" not in result.stderr
    assert not path.with_name("coordinator.db-wal").exists()  # nothing created


def test_config_error_is_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "coordinator.toml"
    config.write_text("[store]\nbatch_max_frames = 0\n")
    result = coordinator("fleet", "--config", str(config), "--db", str(tmp_path / "x.db"))
    assert result.returncode == 2
    assert f"config error: {config}: store.batch_max_frames: must be > 0" in result.stderr


def test_version_and_usage() -> None:
    version = coordinator("--version")
    assert version.returncode == 0 and version.stdout.startswith("novacron-coordinator ")
    usage = coordinator()
    assert usage.returncode == 2
    assert "required: COMMAND" in usage.stderr
    assert "fleet" in build_parser().format_help()
