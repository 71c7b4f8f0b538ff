"""SQLite implementation of :class:`~novacron.coordinator.store.Store` (through sqlite-utils).

Durability choices, because an ack makes the agent delete its copy:

* WAL journal: readers (``novacron-coordinator fleet``, the decision engines) never
  block the writer and the writer never blocks them.
* ``synchronous=FULL``: every commit fsyncs the WAL before it returns. With ``NORMAL`` a
  committed transaction survives a process crash but may roll back on power loss or an
  OS crash -- after the agent was told to delete those frames. The fsync is paid once
  per transaction, and a transaction holds a whole batch (``batch_max_frames`` frames
  of many streams), so it costs throughput only for tiny batches.
* ``BEGIN IMMEDIATE``: a write takes the write lock first, waiting up to
  ``busy_timeout_seconds`` for another writer, then fails with ``StoreUnavailable``; a
  deferred transaction could instead fail halfway when upgrading its read lock.
* Every write is one transaction: it is stored completely or not at all.

Tables (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`): ``nodes``, ``inventory``,
``frames`` (a rowid table: rows carry kilobytes of payload, and SQLite advises
WITHOUT ROWID only for rows far below a page), ``frames_downsampled``, ``predictions``,
``anomalies``, ``vms``. See ``docs/coordinator-store.md``.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from novacron.coordinator.config import StoreSettings
from novacron.coordinator.store import (
    FEATURE_DTYPE,
    CompactionResult,
    LatestFrame,
    NodeHello,
    NodeSummary,
    StoredFrame,
    StoredVm,
    StoreError,
    StoreUnavailable,
)
from novacron.coordinator.store_downsample import Bucket, RawRow, downsample, merge_buckets

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# A frame row is ~3.5 KB (payload included): 16 KiB pages hold four with little slack,
# where 4 KiB pages hold one and waste a fifth of each; measured ~30 % faster writes.
PAGE_SIZE_BYTES = 16384
# A VM row's last_seen_seconds is refreshed at most this often while nothing else changes.
VM_REFRESH_SECONDS = 60.0
# SQLite allows 32766 host parameters; node-id lists are sent in chunks well below it.
_IN_CHUNK = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
    node_id TEXT PRIMARY KEY,
    first_seen_seconds REAL NOT NULL,
    last_seen_seconds REAL,
    agent_version TEXT NOT NULL DEFAULT '',
    schema_version INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'connected',
    acked_seq INTEGER NOT NULL DEFAULT 0,
    max_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS inventory (
    node_id TEXT PRIMARY KEY,
    json TEXT NOT NULL,
    updated_seconds REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS frames (
    node_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    timestamp_seconds REAL NOT NULL,
    schema_version INTEGER NOT NULL,
    features BLOB NOT NULL,
    vm_count INTEGER NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (node_id, seq)
);
CREATE TABLE IF NOT EXISTS frames_downsampled (
    node_id TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    bucket_start_seconds REAL NOT NULL,
    step_seconds REAL NOT NULL,
    frame_count INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    features BLOB NOT NULL,
    feature_counts BLOB NOT NULL,
    vm_count_mean REAL NOT NULL,
    PRIMARY KEY (node_id, schema_version, bucket_start_seconds)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS predictions (
    node_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    timestamp_seconds REAL NOT NULL,
    scope TEXT NOT NULL,
    subject TEXT NOT NULL,
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    horizon_seconds REAL NOT NULL,
    probability REAL NOT NULL,
    ci_low REAL NOT NULL,
    ci_high REAL NOT NULL,
    PRIMARY KEY (node_id, seq, scope, subject, model_name, horizon_seconds)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS anomalies (
    node_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    timestamp_seconds REAL NOT NULL,
    scope TEXT NOT NULL,
    subject TEXT NOT NULL,
    model_name TEXT NOT NULL,
    score REAL NOT NULL,
    severity TEXT NOT NULL,
    PRIMARY KEY (node_id, seq, scope, subject, model_name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vms (
    node_id TEXT NOT NULL,
    vm_uuid TEXT NOT NULL,
    name TEXT NOT NULL,
    vcpus INTEGER NOT NULL,
    memory_bytes INTEGER NOT NULL,
    first_seen_seconds REAL NOT NULL,
    last_seen_seconds REAL NOT NULL,
    last_seq INTEGER NOT NULL,
    PRIMARY KEY (node_id, vm_uuid)
) WITHOUT ROWID;
"""

# Exactly once: a (node_id, seq) already stored is skipped, with what it carries.
_INSERT_FRAME = (
    "INSERT OR IGNORE INTO frames (node_id, seq, timestamp_seconds, schema_version, features, "
    "vm_count, payload) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_PREDICTION = (
    "INSERT OR IGNORE INTO predictions (node_id, seq, timestamp_seconds, scope, subject, "
    "model_name, model_version, horizon_seconds, probability, ci_low, ci_high) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_ANOMALY = (
    "INSERT OR IGNORE INTO anomalies (node_id, seq, timestamp_seconds, scope, subject, "
    "model_name, score, severity) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)

# last_seen and the watermark only move forward: a replayed old frame changes neither.
_UPSERT_NODE = """
INSERT INTO nodes (node_id, first_seen_seconds, last_seen_seconds, schema_version,
                   acked_seq, max_seq)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (node_id) DO UPDATE SET
    last_seen_seconds = max(coalesce(last_seen_seconds, 0), excluded.last_seen_seconds),
    schema_version = CASE WHEN excluded.max_seq >= max_seq
                          THEN excluded.schema_version ELSE schema_version END,
    acked_seq = max(acked_seq, excluded.acked_seq),
    max_seq = max(max_seq, excluded.max_seq)
"""

# The VMs of a node's newest frame in each batch (the current VM inventory; a replayed
# batch's older frames keep their VMs in ``payload``). Attributes follow the newest seq.
# last_seen_seconds lags by up to VM_REFRESH_SECONDS (see SqliteStore._upsert_vms).
_UPSERT_VM = """
INSERT INTO vms (node_id, vm_uuid, name, vcpus, memory_bytes, first_seen_seconds,
                 last_seen_seconds, last_seq)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (node_id, vm_uuid) DO UPDATE SET
    name = CASE WHEN excluded.last_seq > last_seq THEN excluded.name ELSE name END,
    vcpus = CASE WHEN excluded.last_seq > last_seq THEN excluded.vcpus ELSE vcpus END,
    memory_bytes = CASE WHEN excluded.last_seq > last_seq
                        THEN excluded.memory_bytes ELSE memory_bytes END,
    first_seen_seconds = min(first_seen_seconds, excluded.first_seen_seconds),
    last_seen_seconds = max(last_seen_seconds, excluded.last_seen_seconds),
    last_seq = max(last_seq, excluded.last_seq)
"""

_UPSERT_HELLO = """
INSERT INTO nodes (node_id, first_seen_seconds, agent_version, schema_version, status)
VALUES (?, ?, ?, ?, 'connected')
ON CONFLICT (node_id) DO UPDATE SET
    agent_version = excluded.agent_version,
    schema_version = excluded.schema_version,
    status = 'connected'
"""

# Gaps: a step of more than 1 between consecutive stored seqs of a node is one missing
# range. LAG() walks each node's frames in primary-key order (no sort needed).
_NODE_SUMMARY = """
WITH steps AS (
    SELECT node_id, seq, seq - LAG(seq) OVER (PARTITION BY node_id ORDER BY seq) AS step
    FROM frames
), per_node AS (
    SELECT node_id, COUNT(*) AS frames_stored, MIN(seq) AS lowest_seq, MAX(seq) AS highest_seq,
           COALESCE(SUM(step > 1), 0) AS gaps,
           COALESCE(SUM(CASE WHEN step > 1 THEN step - 1 ELSE 0 END), 0) AS missing_frames
    FROM steps GROUP BY node_id
)
SELECT n.node_id, n.status, n.last_seen_seconds, n.acked_seq,
       COALESCE(p.frames_stored, 0), p.lowest_seq, p.highest_seq,
       COALESCE(p.gaps, 0), COALESCE(p.missing_frames, 0)
FROM nodes AS n LEFT JOIN per_node AS p ON p.node_id = n.node_id
ORDER BY n.node_id
"""

_LATEST_FRAMES = """
SELECT f.node_id, f.seq, f.timestamp_seconds,
       COALESCE(n.last_seen_seconds, f.timestamp_seconds), f.schema_version, f.features,
       (SELECT MAX(probability) FROM predictions AS p
         WHERE p.node_id = f.node_id AND p.seq = f.seq),
       (SELECT MAX(score) FROM anomalies AS a WHERE a.node_id = f.node_id AND a.seq = f.seq)
FROM nodes AS n
JOIN frames AS f ON f.node_id = n.node_id
    AND f.seq = (SELECT MAX(seq) FROM frames WHERE node_id = n.node_id)
ORDER BY f.node_id
"""


_VmState = tuple[str, int, int, float]  # name, vcpus, memory_bytes, last_seen_seconds
_NodeVms = tuple[int, dict[str, _VmState]]  # seq of the frame they came from, VMs by UUID


def _seq(frame: StoredFrame) -> int:
    return frame.seq


def next_watermark(acked_seq: int, stored_above: Iterable[int]) -> int:
    """Advance ``acked_seq`` over the contiguous run of ``stored_above``.

    ``stored_above``: ascending seqs stored for the node (values <= ``acked_seq`` are
    skipped). Stops at the first gap, so an iterator over a database cursor reads only
    the run it advances over.
    """
    watermark = acked_seq
    for seq in stored_above:
        if seq <= watermark:
            continue
        if seq != watermark + 1:
            break
        watermark = seq
    return watermark


class SqliteStore:
    """The store in one SQLite file; safe to share between threads (calls serialize).

    Open with :meth:`open` (creates the schema) or :meth:`open_readonly` (inspection
    while the coordinator runs). ``db`` is the sqlite-utils Database, for maintenance
    and tests.
    """

    def __init__(
        self, db: sqlite_utils.Database, path: Path, settings: StoreSettings, *, read_only: bool
    ) -> None:
        self.db = db
        self.path = path
        self.settings = settings
        self.read_only = read_only
        self._lock = threading.RLock()
        # Per node: the seq and VM rows last committed (see _upsert_vms).
        self._vms_written: dict[str, _NodeVms] = {}

    # ---------------------------------------------------------------- opening

    @classmethod
    def open(cls, path: Path, settings: StoreSettings | None = None) -> SqliteStore:
        """Open (creating if needed) the database at ``path`` for reading and writing."""
        settings = settings or StoreSettings()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = _connect(str(path), settings.busy_timeout_seconds, uri=False)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"{path}: cannot open the store: {exc}", exc) from exc
        store = cls(sqlite_utils.Database(conn), path, settings, read_only=False)
        try:
            store._prepare()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreUnavailable(f"{path}: cannot prepare the store: {exc}", exc) from exc
        except StoreError:
            conn.close()
            raise
        return store

    @classmethod
    def open_readonly(cls, path: Path, *, busy_timeout_seconds: float = 5.0) -> SqliteStore:
        """Open an existing store read-only; a missing or foreign file is a StoreError."""
        if not path.is_file():
            raise StoreError(f"{path}: no coordinator database here")
        uri = f"{path.resolve().as_uri()}?mode=ro"
        try:
            conn = _connect(uri, busy_timeout_seconds, uri=True)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open the database: {exc}") from exc
        store = cls(
            sqlite_utils.Database(conn),
            path,
            StoreSettings(busy_timeout_seconds=busy_timeout_seconds),
            read_only=True,
        )
        try:
            store._check_schema(require_tables=True)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"{path}: not a coordinator database: {exc}") from exc
        except StoreError:
            conn.close()
            raise
        return store

    def _prepare(self) -> None:
        # Only takes effect when the file is created (before WAL is enabled).
        self.db.execute(f"PRAGMA page_size = {PAGE_SIZE_BYTES}")
        self.db.enable_wal()
        self.db.execute("PRAGMA synchronous = FULL")
        self._check_schema(require_tables=False)
        with self._write_transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self.db.execute(statement)
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_schema(self, *, require_tables: bool) -> None:
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: database schema version {version} is newer than this "
                f"coordinator's ({SCHEMA_VERSION}); upgrade the coordinator"
            )
        if require_tables and not {"nodes", "frames"} <= set(self.db.table_names()):
            raise StoreError(f"{self.path}: not a coordinator database (no nodes/frames tables)")

    def close(self) -> None:
        with self._lock:
            self.db.close()

    # ---------------------------------------------------------------- writing

    def record_hello(self, hello: NodeHello, *, now: float) -> int:
        # A new stream of the node: its VMs may have been written meanwhile by another
        # process sharing this database (an ingest worker), so this process's memory of
        # them is no longer a safe reason to skip a write.
        self._vms_written.pop(hello.node_id, None)
        with self._guard("record hello"), self._write_transaction():
            self.db.execute(
                _UPSERT_HELLO, [hello.node_id, now, hello.agent_version, hello.schema_version]
            )
            self.db.table("inventory").upsert(
                {
                    "node_id": hello.node_id,
                    "json": json.dumps(hello.inventory, sort_keys=True),
                    "updated_seconds": now,
                },
                pk="node_id",
            )
            return self._acked_seq(hello.node_id)

    def record_disconnect(self, node_id: str, *, now: float) -> None:
        with self._guard("record disconnect"), self._write_transaction():
            self.db.execute("UPDATE nodes SET status = 'disconnected' WHERE node_id = ?", [node_id])

    def highest_durable_seq(self, node_id: str) -> int:
        with self._guard("read watermark"):
            return self._acked_seq(node_id)

    def write_batch(
        self,
        frames: Sequence[StoredFrame],
        *,
        resumed: Collection[str] = (),
        now: float | None = None,
    ) -> dict[str, int]:
        if not frames:
            return {}
        received = time.time() if now is None else now
        by_node: dict[str, list[StoredFrame]] = defaultdict(list)
        for frame in frames:
            by_node[frame.node_id].append(frame)
        with self._guard(f"write {len(frames)} frames"):
            with self._write_transaction():
                acks, vms_written = self._write_frames(by_node, frames, resumed, received)
            self._vms_written.update(vms_written)  # only what was committed
            return acks

    def _write_frames(
        self,
        by_node: dict[str, list[StoredFrame]],
        frames: Sequence[StoredFrame],
        resumed: Collection[str],
        received: float,
    ) -> tuple[dict[str, int], dict[str, _NodeVms]]:
        before = self._node_seqs(list(by_node))
        # A frame at or below its node's watermark is durable already (or was
        # downsampled, or declared lost): writing it again would count it twice.
        self._insert_frames([f for f in frames if f.seq > before.get(f.node_id, (0, 0))[0]])
        newest = {node_id: max(fs, key=_seq) for node_id, fs in by_node.items()}
        vms_written = self._upsert_vms(newest.values())
        acks: dict[str, int] = {}
        node_rows = []
        for node_id, node_frames in by_node.items():
            seqs = sorted({f.seq for f in node_frames})
            acked, max_before = before.get(node_id, (0, 0))
            if node_id in resumed:
                acked = max(acked, seqs[0] - 1)
            acks[node_id] = self._advance(node_id, acked, max_before, seqs)
            node_rows.append(
                (
                    node_id,
                    received,
                    received,
                    newest[node_id].schema_version,
                    acks[node_id],
                    max(max_before, seqs[-1]),
                )
            )
        self.db.conn.executemany(_UPSERT_NODE, node_rows)
        return acks, vms_written

    def _advance(self, node_id: str, acked: int, max_before: int, seqs: list[int]) -> int:
        if max_before <= acked:
            # Nothing was stored above the watermark before: the batch is all there is.
            return next_watermark(acked, seqs)
        cursor = self.db.execute(
            "SELECT seq FROM frames WHERE node_id = ? AND seq > ? ORDER BY seq", [node_id, acked]
        )
        try:
            return next_watermark(acked, (row[0] for row in cursor))
        finally:
            cursor.close()

    def _insert_frames(self, frames: Sequence[StoredFrame]) -> None:
        conn = self.db.conn
        conn.executemany(
            _INSERT_FRAME,
            [
                (
                    f.node_id,
                    f.seq,
                    f.timestamp_seconds,
                    f.schema_version,
                    f.features,
                    len(f.vms),
                    f.payload,
                )
                for f in frames
            ],
        )
        # StoredPrediction and StoredAnomaly are in the tables' column order after
        # (node_id, seq, timestamp_seconds): each row is one tuple concatenation.
        conn.executemany(
            _INSERT_PREDICTION,
            [(f.node_id, f.seq, f.timestamp_seconds, *p) for f in frames for p in f.predictions],
        )
        conn.executemany(
            _INSERT_ANOMALY,
            [(f.node_id, f.seq, f.timestamp_seconds, *a) for f in frames for a in f.anomalies],
        )

    def _upsert_vms(self, newest: Iterable[StoredFrame]) -> dict[str, _NodeVms]:
        """Upsert the VMs of each node's newest frame; skip rows that would change nothing.

        A VM's row is written when it is new, when its name, vCPUs or memory changed, or
        when its ``last_seen_seconds`` is :data:`VM_REFRESH_SECONDS` old; otherwise ten
        VMs per node would cost ten upserts per frame for no information. Returns the
        written state per node, which the caller keeps once the transaction commits.
        """
        rows = []
        written: dict[str, _NodeVms] = {}
        for f in newest:
            known_seq, known = self._vms_written.get(f.node_id, (0, {}))
            if f.seq <= known_seq:
                continue  # a replayed older frame: the current VMs are known already
            ts = f.timestamp_seconds
            current: dict[str, _VmState] = {}
            for vm in f.vms:
                state = (vm.name, vm.vcpus, vm.memory_bytes, ts)
                before = known.get(vm.vm_uuid)
                if (
                    before is not None
                    and before[:3] == state[:3]
                    and ts - before[3] < VM_REFRESH_SECONDS
                ):
                    current[vm.vm_uuid] = before
                    continue
                current[vm.vm_uuid] = state
                rows.append(
                    (f.node_id, vm.vm_uuid, vm.name, vm.vcpus, vm.memory_bytes, ts, ts, f.seq)
                )
            written[f.node_id] = (f.seq, current)
        if rows:
            self.db.conn.executemany(_UPSERT_VM, rows)
        return written

    # ---------------------------------------------------------------- reading

    def node_summary(self) -> list[NodeSummary]:
        with self._guard("summarise nodes"):
            rows = self.db.execute(_NODE_SUMMARY).fetchall()
        return [
            NodeSummary(
                node_id=row[0],
                connection=row[1],
                last_seen_seconds=row[2],
                acked_seq=row[3],
                frames_stored=row[4],
                lowest_seq=row[5],
                highest_seq=row[6],
                gaps=row[7],
                missing_frames=row[8],
            )
            for row in rows
        ]

    def latest_frames(self) -> list[LatestFrame]:
        with self._guard("read latest frames"):
            rows = self.db.execute(_LATEST_FRAMES).fetchall()
        return [
            LatestFrame(
                node_id=row[0],
                seq=row[1],
                timestamp_seconds=row[2],
                last_seen_seconds=row[3],
                schema_version=row[4],
                features=np.frombuffer(row[5], dtype=FEATURE_DTYPE),
                failure_probability=math.nan if row[6] is None else float(row[6]),
                anomaly_score=math.nan if row[7] is None else float(row[7]),
            )
            for row in rows
        ]

    # ---------------------------------------------------------------- retention

    def compact(self, now: float) -> CompactionResult:
        """Downsample raw frames past their retention, then delete what has expired.

        Only whole downsampling steps are folded (the cut-off is aligned down to a step
        boundary), so a step is normally written once. A frame that arrives later for
        an already folded step (an agent replaying a week-old spool) is merged into the
        step's row exactly, through the per-feature counts. Predictions and anomalies
        go with their raw frames. One short transaction per node, so ingest writes are
        never held up for long.
        """
        step = self.settings.downsample_step_seconds
        cutoff = math.floor((now - self.settings.retention_raw_seconds) / step) * step
        with self._guard("list nodes"):
            nodes = [row[0] for row in self.db.execute("SELECT node_id FROM nodes").fetchall()]
        totals = dict.fromkeys(("frames", "rows", "predictions", "anomalies"), 0)
        for node_id in nodes:
            with self._guard(f"compact {node_id}"), self._write_transaction():
                for key, count in self._compact_node(node_id, cutoff, step).items():
                    totals[key] += count
        expired = now - self.settings.retention_downsampled_seconds
        with self._guard("delete expired rows"), self._write_transaction():
            deleted = self.db.execute(
                "DELETE FROM frames_downsampled WHERE bucket_start_seconds + step_seconds <= ?",
                [expired],
            ).rowcount
        result = CompactionResult(
            frames_downsampled=totals["frames"],
            downsampled_rows_written=totals["rows"],
            downsampled_rows_deleted=deleted,
            predictions_deleted=totals["predictions"],
            anomalies_deleted=totals["anomalies"],
        )
        log.info("store compacted", extra={"cutoff_seconds": cutoff, **vars(result)})
        return result

    def _compact_node(self, node_id: str, cutoff: float, step: float) -> dict[str, int]:
        # A node's frames in seq order are in time order; the primary key serves the
        # scan, which stops at the first frame inside the raw retention. Frames above
        # the watermark stay raw: the agent may still replay them, and a replay of a
        # folded frame would be stored (and counted) again.
        cursor = self.db.execute(
            "SELECT schema_version, seq, timestamp_seconds, features, vm_count FROM frames "
            "WHERE node_id = ? AND seq <= (SELECT acked_seq FROM nodes WHERE node_id = ?) "
            "ORDER BY seq",
            [node_id, node_id],
        )
        rows: list[RawRow] = []
        try:
            for row in cursor:
                if row[2] >= cutoff:
                    break
                rows.append(row)
        finally:
            cursor.close()
        if not rows:
            return {}
        fresh = downsample(rows, step)
        existing = self._existing_buckets(node_id, fresh)
        merged = [merge_buckets(existing[b.key], b) if b.key in existing else b for b in fresh]
        self.db.conn.executemany(
            "INSERT OR REPLACE INTO frames_downsampled (node_id, schema_version, "
            "bucket_start_seconds, step_seconds, frame_count, first_seq, last_seq, features, "
            "feature_counts, vm_count_mean) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[node_id, *b.row()] for b in merged],
        )
        last = [node_id, rows[-1][1]]
        counts = {"frames": len(rows), "rows": len(merged)}
        for table, key in (("predictions", "predictions"), ("anomalies", "anomalies")):
            counts[key] = self.db.execute(
                f"DELETE FROM {table} WHERE node_id = ? AND seq <= ?",  # noqa: S608 - fixed names
                last,
            ).rowcount
        self.db.execute("DELETE FROM frames WHERE node_id = ? AND seq <= ?", last)
        return counts

    def _existing_buckets(
        self, node_id: str, fresh: list[Bucket]
    ) -> dict[tuple[int, float], Bucket]:
        found: dict[tuple[int, float], Bucket] = {}
        for b in fresh:
            row = self.db.execute(
                "SELECT schema_version, bucket_start_seconds, step_seconds, frame_count, "
                "first_seq, last_seq, features, feature_counts, vm_count_mean "
                "FROM frames_downsampled WHERE node_id = ? AND schema_version = ? "
                "AND bucket_start_seconds = ?",
                [node_id, b.schema_version, b.bucket_start_seconds],
            ).fetchone()
            if row is not None:
                found[b.key] = Bucket.from_row(row)
        return found

    # ---------------------------------------------------------------- helpers

    def _acked_seq(self, node_id: str) -> int:
        row = self.db.execute("SELECT acked_seq FROM nodes WHERE node_id = ?", [node_id]).fetchone()
        return 0 if row is None else int(row[0])

    def _node_seqs(self, node_ids: list[str]) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        for start in range(0, len(node_ids), _IN_CHUNK):
            chunk = node_ids[start : start + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            for node_id, acked, max_seq in self.db.execute(
                f"SELECT node_id, acked_seq, max_seq FROM nodes WHERE node_id IN ({marks})",  # noqa: S608 - placeholders only
                chunk,
            ):
                found[node_id] = (acked, max_seq)
        return found

    @contextmanager
    def _write_transaction(self) -> Iterator[None]:
        if self.read_only:
            raise StoreError(f"{self.path}: opened read-only")
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.rollback()
            raise
        try:
            self.db.execute("COMMIT")
        except BaseException:
            self.db.rollback()
            raise

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Serialize access; turn database failures into StoreUnavailable naming the file."""
        with self._lock:
            try:
                yield
            except sqlite3.IntegrityError:
                raise
            except sqlite3.DatabaseError as exc:
                raise StoreUnavailable(f"{self.path}: cannot {what}: {exc}", exc) from exc

    # ---------------------------------------------------------------- placement reads

    def inventories(self) -> dict[str, dict[str, Any]]:
        with self._guard("read inventories"):
            rows = self.db.execute(
                "SELECT node_id, json FROM inventory ORDER BY node_id"
            ).fetchall()
        found: dict[str, dict[str, Any]] = {}
        for node_id, text in rows:
            try:
                document = json.loads(text)
            except ValueError:
                document = None
            if not isinstance(document, dict):
                log.warning(
                    "stored inventory is not a JSON object; ignored", extra={"node_id": node_id}
                )
                continue
            found[node_id] = document
        return found

    def current_vms(self) -> dict[str, list[StoredVm]]:
        # A VM row is rewritten at least every VM_REFRESH_SECONDS while the node's frames
        # list it (see _upsert_vms), so the VMs of the newest frame are exactly those
        # seen within that interval of it, plus VMs gone since less than the interval.
        with self._guard("read current VMs"):
            rows = self.db.execute(
                """
                WITH newest AS (
                    SELECT n.node_id, COALESCE(
                        (SELECT f.timestamp_seconds FROM frames AS f
                          WHERE f.node_id = n.node_id ORDER BY f.seq DESC LIMIT 1),
                        (SELECT MAX(w.last_seen_seconds) FROM vms AS w
                          WHERE w.node_id = n.node_id)) AS seen
                    FROM nodes AS n
                )
                SELECT v.node_id, v.vm_uuid, v.name, v.vcpus, v.memory_bytes
                FROM vms AS v JOIN newest ON newest.node_id = v.node_id
                WHERE v.last_seen_seconds > newest.seen - ?
                ORDER BY v.node_id, v.vm_uuid
                """,
                [VM_REFRESH_SECONDS],
            ).fetchall()
        found: dict[str, list[StoredVm]] = defaultdict(list)
        for node_id, vm_uuid, name, vcpus, memory_bytes in rows:
            found[node_id].append(StoredVm(vm_uuid, name, vcpus, memory_bytes))
        return dict(found)


def _connect(target: str, busy_timeout_seconds: float, *, uri: bool) -> sqlite3.Connection:
    # isolation_level=None: no implicit BEGIN; transactions are explicit (BEGIN IMMEDIATE).
    conn = sqlite3.connect(
        target,
        timeout=busy_timeout_seconds,
        isolation_level=None,
        check_same_thread=False,
        uri=uri,
    )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_seconds * 1000)}")
    return conn
