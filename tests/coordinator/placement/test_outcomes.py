"""Decisions and outcomes in a real SQLite file, next to the store's tables."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from novacron.coordinator.placement.engine import select
from novacron.coordinator.placement.outcomes import Outcome, OutcomeLog, request_to_json
from novacron.coordinator.placement.request import (
    GroupPolicy,
    PlacementRequest,
    ServerGroup,
)
from novacron.coordinator.store_sqlite import SqliteStore
from tests.coordinator.placement.engine_support import make_policy
from tests.coordinator.placement.tables import host_table

REQUEST = PlacementRequest(
    vcpus=2,
    memory_mib=4096,
    server_group=ServerGroup("g1", GroupPolicy.ANTI_AFFINITY, member_hosts=("b",)),
    required_labels={"tier": "gold"},
)


@pytest.fixture
def log(tmp_path: Path) -> OutcomeLog:
    store = SqliteStore.open(tmp_path / "coordinator.db")  # the same file as the store
    store.close()
    return OutcomeLog(tmp_path / "coordinator.db")


def test_decision_round_trip_with_vectors_aligned_to_factor_ids(log: OutcomeLog) -> None:
    table = host_table(
        [{"host_id": "a", "failure_probability": 0.3}, {"host_id": "b", "memory_mib_used": 9000}]
    )
    decision = select(table, REQUEST, make_policy())
    assert log.record_decision("r1", REQUEST, decision, decided_at_seconds=100.0, claim_id="c1")
    assert not log.record_decision("r1", REQUEST, decision, decided_at_seconds=200.0)
    record = log.decision("r1")
    assert record is not None
    assert record.decided_at_seconds == 100.0
    assert record.chosen_host == decision.hosts[0].host_id
    assert record.claim_id == "c1"
    assert record.factor_ids == decision.factor_ids
    assert record.weights == decision.weights == (1.0, 4.0)
    assert record.spec == request_to_json(REQUEST)
    assert record.spec["server_group"]["policy"] == "anti-affinity"
    assert [c["host"] for c in record.candidates] == [h.host_id for h in decision.hosts]
    first = decision.hosts[0]
    assert record.candidates[0]["normalized"] == [s.normalized for s in first.factor_scores]
    assert log.decision("nope") is None


def test_no_valid_host_decision_has_no_chosen_host(log: OutcomeLog) -> None:
    decision = select(host_table([{"host_id": "a", "maintenance": 1}]), REQUEST, make_policy())
    log.record_decision("r2", REQUEST, decision, decided_at_seconds=1.0)
    record = log.decision("r2")
    assert record is not None and record.chosen_host is None and record.candidates == ()


def test_outcomes_are_idempotent_and_join_their_decision(log: OutcomeLog) -> None:
    decision = select(host_table([{"host_id": "a"}]), REQUEST, make_policy())
    log.record_decision("r1", REQUEST, decision, decided_at_seconds=5.0)

    def report(request_id: str, outcome: Outcome, details: str = "") -> bool:
        return log.record_outcome(
            request_id,
            "a",
            outcome,
            details=details,
            occurred_at_seconds=10.0,
            vm_uuid="vm-1",
            recorded_at_seconds=11.0,
        )

    assert report("r1", Outcome.PLACED)
    assert not report("r1", Outcome.PLACED)
    assert report("r1", Outcome.SLA_MET)
    assert report("unknown", Outcome.FAILED, details="boom")
    assert [o.outcome for o in log.outcomes()] == [
        Outcome.PLACED,
        Outcome.SLA_MET,
        Outcome.FAILED,
    ]
    joined = log.joined()
    assert [(d.request_id, o.outcome) for d, o in joined] == [
        ("r1", Outcome.PLACED),
        ("r1", Outcome.SLA_MET),
    ]


def test_tables_live_in_the_store_file_in_wal_mode(log: OutcomeLog, tmp_path: Path) -> None:
    log.close()
    conn = sqlite3.connect(tmp_path / "coordinator.db")
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert {"placement_decisions", "placement_outcomes", "frames"} <= tables
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
