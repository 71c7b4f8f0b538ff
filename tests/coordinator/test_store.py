"""The SQLite store on real database files: exactly once, the ack rule, gaps, retention,
locked and full databases."""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from novacron.coordinator.config import StoreSettings
from novacron.coordinator.store import NodeHello, StoreError, StoreUnavailable
from novacron.coordinator.store_frames import node_hello, severity, stored_frame, subject_kind
from novacron.coordinator.store_sqlite import (
    PAGE_SIZE_BYTES,
    SCHEMA_VERSION,
    SqliteStore,
    next_watermark,
)
from novacron.models.schema import NODE
from novacron.protos import telemetry_pb2
from tests.coordinator.frames import make_frame, stored, stored_range


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore.open(tmp_path / "coordinator.db", StoreSettings(busy_timeout_seconds=0.2))
    yield opened
    opened.close()


def count(store: SqliteStore, table: str, node_id: str | None = None) -> int:
    if node_id is None:
        return int(store.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    query = f"SELECT COUNT(*) FROM {table} WHERE node_id = ?"
    return int(store.db.execute(query, [node_id]).fetchone()[0])


def seqs(store: SqliteStore, node_id: str) -> list[int]:
    rows = store.db.execute("SELECT seq FROM frames WHERE node_id = ? ORDER BY seq", [node_id])
    return [row[0] for row in rows]


def summary(store: SqliteStore, node_id: str):
    (found,) = [s for s in store.node_summary() if s.node_id == node_id]
    return found


def assert_consistent(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        orphans = conn.execute(
            "SELECT COUNT(*) FROM predictions AS p LEFT JOIN frames AS f "
            "ON f.node_id = p.node_id AND f.seq = p.seq WHERE f.seq IS NULL"
        ).fetchone()[0]
        assert orphans == 0
    finally:
        conn.close()


# ---------------------------------------------------------------- opening


def test_open_sets_wal_full_sync_and_schema_version(store: SqliteStore) -> None:
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] == 200
    assert store.db.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE_BYTES
    assert {
        "nodes",
        "inventory",
        "frames",
        "frames_downsampled",
        "predictions",
        "anomalies",
    } <= set(store.db.table_names())


def test_reopen_keeps_data_and_watermark(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    first = SqliteStore.open(path)
    assert first.write_batch(stored_range("n1", 1, 5)) == {"n1": 5}
    first.close()
    again = SqliteStore.open(path)
    try:
        assert again.highest_durable_seq("n1") == 5
        assert seqs(again, "n1") == [1, 2, 3, 4, 5]
    finally:
        again.close()


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    SqliteStore.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this coordinator"):
        SqliteStore.open(path)


def test_open_readonly_refuses_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no coordinator database"):
        SqliteStore.open_readonly(tmp_path / "missing.db")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a coordinator database"):
        SqliteStore.open_readonly(garbage)
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).execute("CREATE TABLE other (x)").connection.close()
    with pytest.raises(StoreError, match="no nodes/frames tables"):
        SqliteStore.open_readonly(empty)


def test_readonly_store_refuses_writes(store: SqliteStore) -> None:
    store.write_batch(stored_range("n1", 1, 2))
    reader = SqliteStore.open_readonly(store.path)
    try:
        with pytest.raises(StoreError, match="read-only"):
            reader.write_batch(stored_range("n1", 3, 3))
        assert summary(reader, "n1").frames_stored == 2
    finally:
        reader.close()


# ---------------------------------------------------------------- exactly once


def test_replayed_frames_are_stored_once(store: SqliteStore) -> None:
    frames = stored_range("n1", 1, 10)
    assert store.write_batch(frames) == {"n1": 10}
    assert store.write_batch(frames) == {"n1": 10}
    assert store.write_batch(stored_range("n1", 5, 15)) == {"n1": 15}  # overlapping batch
    assert store.write_batch(stored_range("n1", 12, 13) * 2) == {"n1": 15}  # dupes in a batch
    assert seqs(store, "n1") == list(range(1, 16))
    assert count(store, "predictions", "n1") == 15 * 3  # 2 node horizons + 1 disk per frame
    assert count(store, "anomalies", "n1") == 15
    node = summary(store, "n1")
    assert (node.frames_stored, node.lowest_seq, node.highest_seq, node.gaps) == (15, 1, 15, 0)


def test_first_write_of_a_seq_wins(store: SqliteStore) -> None:
    store.write_batch([stored("n1", 1, probability=0.5)])
    store.write_batch([stored("n1", 1, probability=0.9)])
    rows = store.db.execute(
        "SELECT DISTINCT probability FROM predictions WHERE seq = 1 AND horizon_seconds = 1800"
    ).fetchall()
    assert rows == [(0.5,)]


def test_frames_keep_features_and_full_payload(store: SqliteStore) -> None:
    frame = make_frame("n1", 7)
    store.write_batch([stored_frame("n1", frame)])
    row = store.db.execute(
        "SELECT timestamp_seconds, schema_version, features, vm_count, payload FROM frames"
    ).fetchone()
    assert row[0] == 1_700_000_070.0
    assert row[1] == NODE.version
    values = np.frombuffer(row[2], dtype="<f4")
    assert values.shape == (len(NODE.features),)
    np.testing.assert_allclose(values[:3], [7.0, 7.01, 7.02], rtol=1e-6)
    assert math.isnan(values[6])
    assert row[3] == 10
    assert telemetry_pb2.Frame.FromString(row[4]) == frame


# ---------------------------------------------------------------- acks


def test_next_watermark_walks_the_contiguous_run() -> None:
    assert next_watermark(0, [1, 2, 3]) == 3
    assert next_watermark(5, [3, 4, 5, 6, 8]) == 6
    assert next_watermark(5, [7, 8]) == 5
    assert next_watermark(5, []) == 5


def test_frames_beyond_a_gap_are_stored_but_not_acked(store: SqliteStore) -> None:
    assert store.write_batch(stored_range("n1", 1, 5)) == {"n1": 5}
    assert store.write_batch(stored_range("n1", 8, 10)) == {"n1": 5}
    assert seqs(store, "n1") == [1, 2, 3, 4, 5, 8, 9, 10]
    assert store.highest_durable_seq("n1") == 5
    # The replay fills the gap; the watermark jumps over the frames stored before.
    assert store.write_batch(stored_range("n1", 6, 7)) == {"n1": 10}
    assert store.highest_durable_seq("n1") == 10


def test_failed_batch_blocks_acks_until_the_agent_replays(tmp_path: Path) -> None:
    """A stream that went on after a failed write must not get the later frames acked."""
    path = tmp_path / "c.db"
    store = SqliteStore.open(path, StoreSettings(busy_timeout_seconds=0.1))
    try:
        assert store.write_batch(stored_range("n1", 1, 10)) == {"n1": 10}
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable):
            store.write_batch(stored_range("n1", 11, 20))
        blocker.execute("ROLLBACK")
        blocker.close()
        assert store.write_batch(stored_range("n1", 21, 30)) == {"n1": 10}
        # Reconnect: Welcome says 10, the agent replays 11.. as the stream's first batch.
        assert store.highest_durable_seq("n1") == 10
        assert store.write_batch(stored_range("n1", 11, 30), resumed={"n1"}) == {"n1": 30}
        assert seqs(store, "n1") == list(range(1, 31))
    finally:
        store.close()


def test_resumed_stream_may_start_past_frames_the_agent_dropped(store: SqliteStore) -> None:
    assert store.write_batch(stored_range("n1", 1, 5)) == {"n1": 5}
    # The agent's spool dropped 6..8 while the coordinator was away; it sends from 9.
    assert store.write_batch(stored_range("n1", 9, 12), resumed={"n1"}) == {"n1": 12}
    node = summary(store, "n1")
    assert (node.gaps, node.missing_frames, node.acked_seq) == (1, 3, 12)
    # Without the resume mark the same situation is a gap in the stream: no ack.
    assert store.write_batch(stored_range("n2", 4, 6)) == {"n2": 0}
    assert store.write_batch(stored_range("n3", 4, 6), resumed={"n3"}) == {"n3": 6}


def test_resumed_batch_below_the_watermark_changes_nothing(store: SqliteStore) -> None:
    store.write_batch(stored_range("n1", 1, 10))
    assert store.write_batch(stored_range("n1", 3, 6), resumed={"n1"}) == {"n1": 10}
    assert store.write_batch(stored_range("n1", 2, 12), resumed={"n1"}) == {"n1": 12}


def test_acks_per_node_in_a_mixed_batch(store: SqliteStore) -> None:
    batch = [stored(node, seq) for seq in range(1, 4) for node in ("a", "b", "c")]
    batch.append(stored("c", 5))
    assert store.write_batch(batch) == {"a": 3, "b": 3, "c": 3}
    assert store.write_batch([]) == {}


# ---------------------------------------------------------------- nodes, vms, hello


def test_hello_records_node_inventory_and_returns_the_watermark(store: SqliteStore) -> None:
    hello = telemetry_pb2.Hello(agent_version="0.1.0", feature_schema_version=1)
    hello.node.host = "cmp-0042"
    hello.inventory.cpu_model = "AMD EPYC 7763 64-Core Processor"
    hello.inventory.cpu_cores = 64
    record = node_hello(hello)
    assert record.inventory == {"cpu_model": "AMD EPYC 7763 64-Core Processor", "cpu_cores": 64}
    assert store.record_hello(record, now=100.0) == 0
    store.write_batch(stored_range("cmp-0042", 1, 4), now=110.0)
    assert store.record_hello(record, now=120.0) == 4
    inventory = store.db.execute("SELECT json, updated_seconds FROM inventory").fetchone()
    assert json.loads(inventory[0])["cpu_cores"] == 64
    assert inventory[1] == 120.0
    node = store.db.execute(
        "SELECT first_seen_seconds, last_seen_seconds, agent_version, status FROM nodes"
    ).fetchone()
    assert node == (100.0, 110.0, "0.1.0", "connected")
    store.record_disconnect("cmp-0042", now=130.0)
    assert summary(store, "cmp-0042").connection == "disconnected"


def test_last_seen_never_goes_back(store: SqliteStore) -> None:
    store.write_batch(stored_range("n1", 1, 2), now=500.0)
    store.write_batch(stored_range("n1", 1, 1), now=400.0)
    assert summary(store, "n1").last_seen_seconds == 500.0


def vm_rows(store: SqliteStore) -> dict[str, tuple[str, int, float, float, int]]:
    rows = store.db.execute(
        "SELECT vm_uuid, name, vcpus, first_seen_seconds, last_seen_seconds, last_seq FROM vms"
    )
    return {r[0][-1]: tuple(r[1:]) for r in rows}


def test_vms_are_the_current_inventory_written_only_on_change(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    store = SqliteStore.open(path, StoreSettings(busy_timeout_seconds=0.1))
    t = 1_700_000_000.0
    try:
        store.write_batch(stored_range("n1", 1, 3, vms=2))  # VMs of the newest frame, seq 3
        assert vm_rows(store) == {
            "0": ("n1-vm0", 4, t + 30, t + 30, 3),
            "1": ("n1-vm1", 4, t + 30, t + 30, 3),
        }
        store.write_batch([stored("n1", 4, vms=3)])  # 10 s later: only the new VM is written
        assert vm_rows(store)["0"] == ("n1-vm0", 4, t + 30, t + 30, 3)
        assert vm_rows(store)["2"] == ("n1-vm2", 4, t + 40, t + 40, 4)
        store.write_batch([stored("n1", 5, vms=3, timestamp_seconds=t + 90)])  # refresh due
        assert vm_rows(store)["0"] == ("n1-vm0", 4, t + 30, t + 90, 5)
        assert vm_rows(store)["2"] == ("n1-vm2", 4, t + 40, t + 40, 4)  # 50 s: not yet
        resized = stored("n1", 6, vms=1, timestamp_seconds=t + 95)
        vm0 = resized.vms[0]._replace(name="renamed", vcpus=8)
        store.write_batch([replace(resized, vms=(vm0,))])  # a change is written at once
        assert vm_rows(store)["0"] == ("renamed", 8, t + 30, t + 95, 6)
        store.write_batch([stored("n1", 2, vms=2)])  # a replayed old frame changes nothing
        assert vm_rows(store)["0"] == ("renamed", 8, t + 30, t + 95, 6)

        # What a failed transaction would have written is written by its retry.
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable):
            store.write_batch([stored("n1", 7, vms=4, timestamp_seconds=t + 96)])
        blocker.execute("ROLLBACK")
        blocker.close()
        assert "3" not in vm_rows(store)
        store.write_batch([stored("n1", 7, vms=4, timestamp_seconds=t + 96)])
        assert vm_rows(store)["3"] == ("n1-vm3", 4, t + 96, t + 96, 7)
    finally:
        store.close()


# ---------------------------------------------------------------- summary


def test_gaps_are_counted_per_missing_range(store: SqliteStore) -> None:
    store.write_batch([stored("n1", s) for s in (1, 2, 3, 5, 9, 10)])
    store.write_batch([stored("n2", s) for s in (4, 5, 6)])
    store.record_hello(NodeHello("n3", "0.1.0", 1), now=1.0)
    by_id = {s.node_id: s for s in store.node_summary()}
    assert [*by_id] == ["n1", "n2", "n3"]
    n1, n2, n3 = by_id["n1"], by_id["n2"], by_id["n3"]
    assert (n1.frames_stored, n1.lowest_seq, n1.highest_seq) == (6, 1, 10)
    assert (n1.gaps, n1.missing_frames, n1.acked_seq) == (2, 4, 3)
    assert (n2.frames_stored, n2.lowest_seq, n2.highest_seq, n2.gaps) == (3, 4, 6, 0)
    assert (n3.frames_stored, n3.lowest_seq, n3.highest_seq, n3.gaps) == (0, None, None, 0)
    assert n3.last_seen_seconds is None


def test_summary_while_another_connection_writes(store: SqliteStore) -> None:
    stop = threading.Event()
    written = []

    def writer() -> None:
        seq = 1
        while not stop.is_set():
            store.write_batch(stored_range("busy", seq, seq + 19))
            written.append(seq + 19)
            seq += 20

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 1.0
        checks = 0
        while time.monotonic() < deadline or checks < 3:
            reader = SqliteStore.open_readonly(store.path)
            try:
                rows = reader.node_summary()
            finally:
                reader.close()
            for node in rows:
                # A reader sees whole transactions: 20 frames at a time, never a gap.
                assert node.frames_stored % 20 == 0
                assert node.gaps == 0
                assert node.highest_seq == node.acked_seq == node.frames_stored
            checks += 1
    finally:
        stop.set()
        thread.join()
    assert written, "the writer never committed"
    assert summary(store, "busy").frames_stored == written[-1]


# ---------------------------------------------------------------- latest frames


def test_latest_frames_give_each_nodes_newest_frame(store: SqliteStore) -> None:
    store.write_batch(stored_range("a", 1, 3), now=50.0)
    store.write_batch([stored("b", 7, probability=0.4, anomaly_score=0.8)], now=60.0)
    latest = {f.node_id: f for f in store.latest_frames()}
    assert (latest["a"].seq, latest["a"].last_seen_seconds) == (3, 50.0)
    assert latest["a"].timestamp_seconds == 1_700_000_030.0
    assert latest["a"].features[0] == pytest.approx(3.0)
    assert latest["b"].failure_probability == pytest.approx(0.4)
    assert latest["b"].anomaly_score == pytest.approx(0.8)


# ---------------------------------------------------------------- retention


def test_compaction_downsamples_whole_steps_exactly(tmp_path: Path) -> None:
    settings = StoreSettings(
        retention_raw_seconds=1000.0,
        downsample_step_seconds=300.0,
        retention_downsampled_seconds=5000.0,
    )
    store = SqliteStore.open(tmp_path / "c.db", settings)
    width = len(NODE.features)

    def frame(k: int, first: float, second: float, rest: float):
        values = [first, second] + [rest] * (width - 2)
        return stored("n1", k, timestamp_seconds=100.0 * (k - 1), features=values, vms=k % 3)

    try:
        # Frames every 100 s from t=0 (seq k at t=100*(k-1)); feature 0 = k, feature 1 =
        # 10k but NaN on even seqs, the rest 2k. Seq 2 does not arrive (yet), so the
        # watermark stays at 1 and only seq 1 may be folded.
        nan = float("nan")
        store.write_batch(
            [frame(k, k, nan if k % 2 == 0 else 10.0 * k, 2.0 * k) for k in range(1, 13) if k != 2]
        )
        assert store.highest_durable_seq("n1") == 1
        # now=2150: cutoff 1150 aligned down to 900 -> steps [0,300) [300,600) [600,900).
        result = store.compact(2150.0)
        assert (result.frames_downsampled, result.downsampled_rows_written) == (1, 1)
        assert seqs(store, "n1") == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12]

        # Seq 2 arrives late (the agent replays it): the watermark jumps over the frames
        # stored before, and the next pass folds up to the cutoff, merging step [0,300)
        # with the row that already holds seq 1.
        assert store.write_batch([frame(2, 20.0, 40.0, 0.0)]) == {"n1": 12}
        result = store.compact(2150.0)
        assert result.frames_downsampled == 8
        assert result.downsampled_rows_written == 3
        assert result.predictions_deleted == 8 * 3
        assert result.anomalies_deleted == 8
        assert seqs(store, "n1") == [10, 11, 12]
        assert count(store, "predictions") == 3 * 3
        rows = store.db.execute(
            "SELECT bucket_start_seconds, step_seconds, frame_count, first_seq, last_seq, "
            "features, feature_counts, vm_count_mean FROM frames_downsampled ORDER BY 1"
        ).fetchall()
        assert [r[:5] for r in rows] == [
            (0.0, 300.0, 3, 1, 3),
            (300.0, 300.0, 3, 4, 6),
            (600.0, 300.0, 3, 7, 9),
        ]
        means = [np.frombuffer(r[5], dtype="<f4") for r in rows]
        counts = [np.frombuffer(r[6], dtype="<u4") for r in rows]
        assert means[0][0] == pytest.approx((1 + 20 + 3) / 3)
        assert means[0][1] == pytest.approx((10 + 40 + 30) / 3)
        assert means[0][2] == pytest.approx((2 + 0 + 6) / 3)
        assert [m[0] for m in means[1:]] == [5.0, 8.0]
        assert [m[1] for m in means[1:]] == [50.0, 80.0]  # mean of the odd seqs only
        assert [m[2] for m in means[1:]] == [10.0, 16.0]
        assert [c[1] for c in counts] == [3, 1, 2]
        assert [c[0] for c in counts] == [3, 3, 3]
        assert [r[7] for r in rows] == [1.0, 1.0, 1.0]  # vms = k % 3

        # A second pass at the same time has nothing left to fold.
        assert store.compact(2150.0).frames_downsampled == 0
        assert count(store, "frames_downsampled") == 3

        # At now=5600 the raw frames left fold into [900,1200), and the steps that ended
        # before now - 5000 = 600 are deleted.
        result = store.compact(5600.0)
        assert (result.frames_downsampled, result.downsampled_rows_deleted) == (3, 2)
        remaining = store.db.execute("SELECT bucket_start_seconds FROM frames_downsampled")
        assert sorted(r[0] for r in remaining) == [600.0, 900.0]
        assert count(store, "frames") == count(store, "predictions") == 0
    finally:
        store.close()
    assert_consistent(tmp_path / "c.db")


def test_watermark_survives_compaction_and_folded_frames_stay_folded(
    store: SqliteStore,
) -> None:
    store.write_batch(stored_range("n1", 1, 5, timestamp_seconds=0.0))
    store.compact(10 * 86400.0)
    assert seqs(store, "n1") == []
    assert store.highest_durable_seq("n1") == 5
    # A stray replay of folded frames is not stored (or downsampled) a second time.
    assert store.write_batch(stored_range("n1", 1, 6, timestamp_seconds=0.0)) == {"n1": 6}
    assert seqs(store, "n1") == [6]
    store.compact(10 * 86400.0)
    frames = store.db.execute("SELECT SUM(frame_count) FROM frames_downsampled").fetchone()[0]
    assert frames == 6


def test_frames_above_the_watermark_are_not_folded(store: SqliteStore) -> None:
    store.write_batch([stored("n1", s, timestamp_seconds=0.0) for s in (1, 2, 4, 5)])
    assert store.compact(10 * 86400.0).frames_downsampled == 2
    assert seqs(store, "n1") == [4, 5]


# ---------------------------------------------------------------- failures


def test_locked_database_is_a_clear_error_then_works_again(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    store = SqliteStore.open(path, StoreSettings(busy_timeout_seconds=0.2))
    try:
        store.write_batch(stored_range("n1", 1, 5))
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="database is locked") as caught:
            store.write_batch(stored_range("n1", 6, 10))
        waited = time.monotonic() - started
        assert 0.15 <= waited < 5.0
        assert isinstance(caught.value.cause, sqlite3.OperationalError)
        assert str(path) in str(caught.value)
        blocker.execute("ROLLBACK")
        blocker.close()
        assert store.write_batch(stored_range("n1", 6, 10)) == {"n1": 10}
        assert seqs(store, "n1") == list(range(1, 11))
    finally:
        store.close()
    assert_consistent(path)


def test_full_database_is_a_clear_error_and_stores_nothing(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    store = SqliteStore.open(path)
    try:
        store.write_batch(stored_range("n1", 1, 5))
        pages = store.db.execute("PRAGMA page_count").fetchone()[0]
        store.db.execute(f"PRAGMA max_page_count = {pages + 2}")  # a disk that is full
        with pytest.raises(StoreUnavailable, match="full") as caught:
            store.write_batch(stored_range("n1", 6, 200))
        assert isinstance(caught.value.cause, sqlite3.OperationalError)
        assert seqs(store, "n1") == [1, 2, 3, 4, 5]
        assert store.highest_durable_seq("n1") == 5
        assert count(store, "predictions") == 5 * 3
        store.db.execute("PRAGMA max_page_count = 1073741823")
        assert store.write_batch(stored_range("n1", 6, 200)) == {"n1": 200}
    finally:
        store.close()
    assert_consistent(path)


def test_open_in_an_unwritable_place_is_store_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreUnavailable, match="cannot open the store"):
        SqliteStore.open(blocker / "sub" / "c.db")


# ---------------------------------------------------------------- decoding


def test_enum_words_tolerate_unknown_values() -> None:
    assert subject_kind(2) == "disk"
    assert subject_kind(99) == "kind_99"
    assert severity(2) == "warning"
    assert severity(42) == "severity_42"


def test_stored_frame_extracts_scores() -> None:
    record = stored("n1", 3, probability=0.3, anomaly_score=0.6)
    assert [(p.scope, p.horizon_seconds) for p in record.predictions] == [
        ("node", 1800.0),
        ("node", 86400.0),
        ("disk", 7 * 86400.0),
    ]
    assert record.predictions[0].model_name == "node_failure"
    assert record.failure_probability() == pytest.approx(0.3)
    assert record.anomalies[0].severity == "info"
    assert record.anomaly_score() == pytest.approx(0.6)
    empty = stored_frame("n1", telemetry_pb2.Frame(seq=1))
    assert math.isnan(empty.failure_probability()) and math.isnan(empty.anomaly_score())
    assert empty.features == b"" and empty.vm_count == 0
