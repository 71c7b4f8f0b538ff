"""Placement decisions and their reported outcomes, stored for learning and audit.

Lives in the coordinator's database file (the store's, WAL mode) through its own
connection; both tables are created on open and written idempotently.

``placement_decisions``: one row per ``SelectHosts`` call that was recorded

============================  ==============================================================
``request_id`` TEXT PK        RequestHeader.request_id (a retry keeps the first row)
``decided_at_seconds`` REAL   Unix time of the decision
``spec_json`` TEXT            the PlacementRequest as JSON (``request_to_json``)
``chosen_host`` TEXT NULL     the first-ranked host; NULL when no host passed
``claim_id`` TEXT NULL        the claim made with the decision, if any
``factor_ids_json`` TEXT      JSON list: the factors that carried weight (vector columns)
``weights_json`` TEXT         JSON list: the effective weight of each of those factors
``objectives_json`` TEXT      JSON object: the objective profile used
``overrides_json`` TEXT       JSON object: the request's per-factor weight overrides
``candidates_json`` TEXT      JSON list, best first, of the returned hosts:
                              ``{"host", "rank", "score", "confidence", "normalized"}``
                              where ``normalized`` is aligned with ``factor_ids_json``
                              (0..1, 1 = most favourable; a factor not measured on the host
                              is 0.5, as the engine scored it)
``hosts_considered`` INTEGER  hosts in the snapshot
``hosts_passed`` INTEGER      hosts that passed every filter
``analysis_seconds`` REAL     time the engine took
============================  ==============================================================

``placement_outcomes``: what the scheduler reported (``ReportOutcome``)

============================  ==============================================================
``request_id`` TEXT           the decision's request id (may be unknown: kept for audit)
``host`` TEXT                 the host the outcome happened on
``outcome`` TEXT              ``placed``, ``failed``, ``migrated_later``, ``sla_met``,
                              ``sla_violated``
``details`` TEXT              free text from the scheduler
``occurred_at_seconds`` REAL  when it happened (the scheduler's time)
``vm_uuid`` TEXT              the VM, "" if not given
``recorded_at_seconds`` REAL  when the coordinator stored it
============================  ==============================================================

Primary key ``(request_id, host, outcome)``: a retried report is not stored twice
(:meth:`OutcomeLog.record_outcome` returns False). A learner joins the tables on
``request_id`` (:meth:`OutcomeLog.joined` does it in Python).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import sqlite_utils

from novacron.coordinator.placement.engine import Decision
from novacron.coordinator.placement.request import PlacementRequest


class Outcome(Enum):
    PLACED = "placed"
    FAILED = "failed"
    MIGRATED_LATER = "migrated_later"
    SLA_MET = "sla_met"
    SLA_VIOLATED = "sla_violated"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS placement_decisions (
    request_id TEXT PRIMARY KEY,
    decided_at_seconds REAL NOT NULL,
    spec_json TEXT NOT NULL,
    chosen_host TEXT,
    claim_id TEXT,
    factor_ids_json TEXT NOT NULL,
    weights_json TEXT NOT NULL,
    objectives_json TEXT NOT NULL,
    overrides_json TEXT NOT NULL,
    candidates_json TEXT NOT NULL,
    hosts_considered INTEGER NOT NULL,
    hosts_passed INTEGER NOT NULL,
    analysis_seconds REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS placement_decisions_at ON placement_decisions (decided_at_seconds);
CREATE TABLE IF NOT EXISTS placement_outcomes (
    request_id TEXT NOT NULL,
    host TEXT NOT NULL,
    outcome TEXT NOT NULL,
    details TEXT NOT NULL,
    occurred_at_seconds REAL NOT NULL,
    vm_uuid TEXT NOT NULL,
    recorded_at_seconds REAL NOT NULL,
    PRIMARY KEY (request_id, host, outcome)
)
"""


def request_to_json(request: PlacementRequest) -> dict[str, Any]:
    """The request as plain JSON values (enums by value, mappings as objects)."""
    group = request.server_group
    return {
        "vcpus": request.vcpus,
        "memory_mib": request.memory_mib,
        "disk_gib": request.disk_gib,
        "gpus": request.gpus,
        "gpu_model": request.gpu_model,
        "cpu_flags": list(request.cpu_flags),
        "numa_policy": request.numa_policy.value,
        "numa_nodes": request.numa_nodes,
        "image_arch": request.image_arch,
        "server_group": None
        if group is None
        else {
            "group_id": group.group_id,
            "policy": group.policy.value,
            "hard": group.hard,
            "member_hosts": list(group.member_hosts),
            "max_members_per_host": group.max_members_per_host,
        },
        "zone": request.zone,
        "aggregates": list(request.aggregates),
        "required_labels": dict(request.required_labels),
        "compliance": list(request.compliance),
        "current_host": request.current_host,
        "ignore_hosts": list(request.ignore_hosts),
        "vm_uuid": request.vm_uuid,
        "flavor": request.flavor,
    }


@dataclass(frozen=True)
class DecisionRecord:
    request_id: str
    decided_at_seconds: float
    spec: Mapping[str, Any]
    chosen_host: str | None
    claim_id: str | None
    factor_ids: tuple[str, ...]
    weights: tuple[float, ...]
    objectives: Mapping[str, float]
    overrides: Mapping[str, float]
    candidates: tuple[Mapping[str, Any], ...]  # best first, see the module docstring
    hosts_considered: int
    hosts_passed: int


@dataclass(frozen=True)
class OutcomeRecord:
    request_id: str
    host: str
    outcome: Outcome
    details: str
    occurred_at_seconds: float
    vm_uuid: str
    recorded_at_seconds: float


class OutcomeLog:
    """The two tables in ``path`` (the coordinator database); thread-safe."""

    def __init__(self, path: Path, *, busy_timeout_seconds: float = 5.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            str(path), timeout=busy_timeout_seconds, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_seconds * 1000)}")
        self.db = sqlite_utils.Database(conn)
        self.db.enable_wal()
        self._lock = threading.Lock()
        with self._lock:
            self.db.conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self.db.conn.close()

    def record_decision(
        self,
        request_id: str,
        request: PlacementRequest,
        decision: Decision,
        *,
        decided_at_seconds: float,
        overrides: Mapping[str, float] | None = None,
        claim_id: str | None = None,
    ) -> bool:
        """Store one decision; False when ``request_id`` was already recorded."""
        position = {factor_id: i for i, factor_id in enumerate(decision.factor_ids)}
        candidates = []
        for ranked in decision.hosts:
            vector = [0.5] * len(position)
            for score in ranked.factor_scores:
                vector[position[score.factor_id]] = score.normalized
            candidates.append(
                {
                    "host": ranked.host_id,
                    "rank": ranked.rank,
                    "score": ranked.score,
                    "confidence": ranked.confidence,
                    "normalized": vector,
                }
            )
        row = (
            request_id,
            decided_at_seconds,
            json.dumps(request_to_json(request), sort_keys=True),
            decision.hosts[0].host_id if decision.hosts else None,
            claim_id,
            json.dumps(list(decision.factor_ids)),
            json.dumps(list(decision.weights)),
            json.dumps(dict(decision.objectives), sort_keys=True),
            json.dumps(dict(overrides or {}), sort_keys=True),
            json.dumps(candidates),
            decision.hosts_considered,
            decision.hosts_passed,
            decision.analysis_seconds,
        )
        with self._lock:
            cursor = self.db.conn.execute(
                "INSERT OR IGNORE INTO placement_decisions VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            return cursor.rowcount == 1

    def record_outcome(
        self,
        request_id: str,
        host: str,
        outcome: Outcome,
        *,
        details: str = "",
        occurred_at_seconds: float,
        vm_uuid: str = "",
        recorded_at_seconds: float,
    ) -> bool:
        """Store one outcome; False when the same (request, host, outcome) was stored."""
        with self._lock:
            cursor = self.db.conn.execute(
                "INSERT OR IGNORE INTO placement_outcomes VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    request_id,
                    host,
                    outcome.value,
                    details,
                    occurred_at_seconds,
                    vm_uuid,
                    recorded_at_seconds,
                ),
            )
            return cursor.rowcount == 1

    def decision(self, request_id: str) -> DecisionRecord | None:
        with self._lock:
            rows = list(
                self.db.query(
                    "SELECT * FROM placement_decisions WHERE request_id = ?", [request_id]
                )
            )
        return _decision(rows[0]) if rows else None

    def outcomes(self) -> tuple[OutcomeRecord, ...]:
        with self._lock:
            rows = list(self.db.query("SELECT * FROM placement_outcomes ORDER BY rowid"))
        return tuple(_outcome(row) for row in rows)

    def joined(self) -> tuple[tuple[DecisionRecord, OutcomeRecord], ...]:
        """Every outcome whose decision is stored, with it, in decision-time order."""
        with self._lock:
            rows = list(
                self.db.query(
                    "SELECT d.*, o.host AS o_host, o.outcome AS o_outcome, o.details AS "
                    "o_details, o.occurred_at_seconds AS o_occurred, o.vm_uuid AS o_vm, "
                    "o.recorded_at_seconds AS o_recorded FROM placement_outcomes o JOIN "
                    "placement_decisions d ON d.request_id = o.request_id "
                    "ORDER BY d.decided_at_seconds, o.rowid"
                )
            )
        return tuple(
            (
                _decision(row),
                OutcomeRecord(
                    row["request_id"],
                    row["o_host"],
                    Outcome(row["o_outcome"]),
                    row["o_details"],
                    row["o_occurred"],
                    row["o_vm"],
                    row["o_recorded"],
                ),
            )
            for row in rows
        )


def _decision(row: Mapping[str, Any]) -> DecisionRecord:
    return DecisionRecord(
        request_id=row["request_id"],
        decided_at_seconds=row["decided_at_seconds"],
        spec=json.loads(row["spec_json"]),
        chosen_host=row["chosen_host"],
        claim_id=row["claim_id"],
        factor_ids=tuple(json.loads(row["factor_ids_json"])),
        weights=tuple(json.loads(row["weights_json"])),
        objectives=json.loads(row["objectives_json"]),
        overrides=json.loads(row["overrides_json"]),
        candidates=tuple(json.loads(row["candidates_json"])),
        hosts_considered=row["hosts_considered"],
        hosts_passed=row["hosts_passed"],
    )


def _outcome(row: Mapping[str, Any]) -> OutcomeRecord:
    return OutcomeRecord(
        row["request_id"],
        row["host"],
        Outcome(row["outcome"]),
        row["details"],
        row["occurred_at_seconds"],
        row["vm_uuid"],
        row["recorded_at_seconds"],
    )
