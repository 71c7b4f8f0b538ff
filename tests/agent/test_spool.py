"""The agent's spool: real SQLite files, real locks, a real process killed mid-append.

Frames here are real ``telemetry_pb2.Frame`` messages carrying the seq the spool gave
them (plus padding to a realistic size), so every check also proves that the seq inside
a stored frame is the seq of its row.
"""

from __future__ import annotations

import logging
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from novacron.agent.spool import (
    SPOOL_FILE_NAME,
    Spool,
    SpoolDepth,
    SpoolUnavailable,
    spool_path,
)
from novacron.protos import common_pb2, telemetry_pb2

T0 = 1_800_000_000.0
DAY = 86400.0


def frame_bytes(seq: int, size: int = 2000) -> bytes:
    """A real frame for ``seq``, about ``size`` bytes (node feature values as padding)."""
    values = [float(seq)] * max(0, (size - 40) // 8)
    frame = telemetry_pb2.Frame(
        seq=seq, node_features=common_pb2.FeatureVector(schema_version=1, values=values)
    )
    return frame.SerializeToString()


def stored_seqs(path: Path) -> list[int]:
    """Seqs in the file, read by a fresh connection, each checked against its body."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT seq, body FROM frames ORDER BY seq").fetchall()
    for seq, body in rows:
        assert telemetry_pb2.Frame.FromString(body).seq == seq
    return [seq for seq, _ in rows]


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def dropped(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "novacron_agent_spool_dropped_frames_total", {"reason": reason}
    )
    return value or 0.0


def fill(spool: Spool, count: int, *, size: int = 2000, created: float = T0) -> list[int]:
    return [spool.append(lambda seq: frame_bytes(seq, size), created) for _ in range(count)]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return spool_path(tmp_path)


def test_spool_lives_in_the_state_dir(tmp_path: Path) -> None:
    assert spool_path(tmp_path) == tmp_path / SPOOL_FILE_NAME
    with Spool(spool_path(tmp_path)) as spool:
        fill(spool, 1)
    with sqlite3.connect(spool_path(tmp_path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_append_assigns_consecutive_seqs_inside_the_frame(path: Path) -> None:
    seen: list[int] = []

    def make(seq: int) -> bytes:
        seen.append(seq)
        return frame_bytes(seq)

    with Spool(path) as spool:
        assert spool.last_seq == 0
        assert [spool.append(make, T0 + i) for i in range(5)] == [1, 2, 3, 4, 5]
        assert seen == [1, 2, 3, 4, 5]
        assert spool.last_seq == 5
        assert spool.depth() == SpoolDepth(5, sum(len(frame_bytes(s)) for s in range(1, 6)))
    assert stored_seqs(path) == [1, 2, 3, 4, 5]


def test_pending_replays_in_order_in_bounded_batches(path: Path) -> None:
    with Spool(path) as spool:
        fill(spool, 10, size=1000)
        frame_size = len(frame_bytes(1, 1000))
        everything = spool.pending(0, limit=100, max_bytes=1 << 20)
        assert [seq for seq, _ in everything] == list(range(1, 11))
        assert all(telemetry_pb2.Frame.FromString(b).seq == s for s, b in everything)
        assert [s for s, _ in spool.pending(7, limit=100, max_bytes=1 << 20)] == [8, 9, 10]
        assert [s for s, _ in spool.pending(0, limit=3, max_bytes=1 << 20)] == [1, 2, 3]
        by_bytes = spool.pending(2, limit=100, max_bytes=3 * frame_size + 10)
        assert [s for s, _ in by_bytes] == [3, 4, 5]
        # A frame larger than the batch budget still goes, alone: replay never stalls.
        assert [s for s, _ in spool.pending(0, limit=100, max_bytes=1)] == [1]
        assert spool.pending(10, limit=100, max_bytes=1 << 20) == []
        with pytest.raises(ValueError, match="limit"):
            spool.pending(0, limit=0)


def test_ack_deletes_up_to_seq_and_survives_restart(path: Path) -> None:
    with Spool(path) as spool:
        fill(spool, 6)
        assert spool.ack(4) == 4
        assert spool.last_acked == 4
        assert spool.ack(2) == 0  # a late, smaller ack changes nothing
        assert spool.last_acked == 4
        assert spool.depth().frames == 2
        assert [s for s, _ in spool.pending(0)] == [5, 6]
    assert stored_seqs(path) == [5, 6]
    with Spool(path) as spool:
        assert (spool.last_acked, spool.last_seq) == (4, 6)
        assert spool.depth() == SpoolDepth(2, 2 * len(frame_bytes(5)))
        assert fill(spool, 1) == [7]


def test_seq_is_never_reused_after_everything_was_acked(path: Path) -> None:
    with Spool(path) as spool:
        fill(spool, 3)
        spool.ack(3)
        assert spool.depth() == SpoolDepth(0, 0)
    with Spool(path) as spool:  # no frame left to take the highest seq from
        assert fill(spool, 2) == [4, 5]


def test_failed_build_stores_nothing_and_consumes_no_seq(path: Path) -> None:
    def broken(seq: int) -> bytes:
        raise RuntimeError(f"cannot build frame {seq}")

    with Spool(path, max_bytes=10_000) as spool:
        fill(spool, 1)
        with pytest.raises(RuntimeError, match="frame 2"):
            spool.append(broken, T0)
        with pytest.raises(ValueError, match="more than the spool's max_bytes"):
            spool.append(lambda seq: frame_bytes(seq, 20_000), T0)
        assert fill(spool, 1) == [2]
    assert stored_seqs(path) == [1, 2]


def test_over_max_bytes_drops_oldest_first_counted_and_logged(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    size = len(frame_bytes(1))
    before = dropped("max_bytes")
    with Spool(path, max_bytes=10 * size) as spool:
        fill(spool, 10)
        assert dropped("max_bytes") == before
        caplog.set_level(logging.WARNING, logger="novacron.agent.spool")
        assert fill(spool, 3) == [11, 12, 13]
        assert spool.depth() == SpoolDepth(10, 10 * size)
        assert REGISTRY.get_sample_value("novacron_agent_spool_depth_frames") == 10
        assert REGISTRY.get_sample_value("novacron_agent_spool_depth_bytes") == 10 * size
    assert stored_seqs(path) == list(range(4, 14))
    assert dropped("max_bytes") == before + 3
    drops = [r for r in caplog.records if "dropped the oldest" in r.getMessage()]
    assert [(r.reason, r.frames, r.first_seq, r.last_seq) for r in drops] == [  # type: ignore[attr-defined]
        ("max_bytes", 1, 1, 1),
        ("max_bytes", 1, 2, 2),
        ("max_bytes", 1, 3, 3),
    ]


def test_older_than_max_age_is_dropped_in_one_event(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = dropped("max_age")
    caplog.set_level(logging.WARNING, logger="novacron.agent.spool")
    with Spool(path, max_age_seconds=DAY) as spool:
        fill(spool, 4, created=T0)
        fill(spool, 2, created=T0 + 0.5 * DAY)
        assert fill(spool, 1, created=T0 + 1.2 * DAY) == [7]  # the first four are too old
        assert spool.depth().frames == 3
        assert spool.last_acked == 0  # dropping is not acknowledging
    assert stored_seqs(path) == [5, 6, 7]
    assert dropped("max_age") == before + 4
    (drop,) = [r for r in caplog.records if "dropped the oldest" in r.getMessage()]
    assert (drop.reason, drop.frames, drop.first_seq, drop.last_seq) == ("max_age", 4, 1, 4)  # type: ignore[attr-defined]


def test_ack_beyond_anything_produced_moves_the_seq_past_it(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A lost state dir restarts the spool at 1 while the coordinator holds up to 500:
    new frames must continue after 500 or the coordinator ignores them as duplicates."""
    with Spool(path) as spool:
        fill(spool, 2)
        assert spool.ack(500) == 2
        assert (spool.last_seq, spool.last_acked) == (500, 500)
        assert fill(spool, 1) == [501]
    assert "never produced" in caplog.text
    with Spool(path) as spool:
        assert fill(spool, 1) == [502]


def test_threads_appending_and_acking_get_unique_consecutive_seqs(path: Path) -> None:
    got: list[int] = []
    lock = threading.Lock()
    with Spool(path) as spool:

        def writer() -> None:
            for _ in range(40):
                seq = spool.append(lambda s: frame_bytes(s, 200), T0)
                with lock:
                    got.append(seq)

        def acker() -> None:
            for _ in range(40):
                batch = spool.pending(spool.last_acked, limit=10)
                if batch:
                    spool.ack(batch[-1][0])

        threads = [threading.Thread(target=writer) for _ in range(3)]
        threads.append(threading.Thread(target=acker))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(got) == list(range(1, 121))
        assert spool.depth().frames == 120 - spool.last_acked
    assert stored_seqs(path) == list(range(spool.last_acked + 1, 121))


def test_disk_full_raises_spool_unavailable_without_corruption(path: Path) -> None:
    """PRAGMA max_page_count caps the file: SQLite then fails with SQLITE_FULL
    ("database or disk is full") exactly where a full disk would stop it."""
    spool = Spool(path)
    stored = fill(spool, 3)
    pages = spool._conn.execute("PRAGMA page_count").fetchone()[0]
    spool._conn.execute(f"PRAGMA max_page_count = {pages + 8}")
    with pytest.raises(SpoolUnavailable, match="full") as full:
        for _ in range(100):
            stored.append(spool.append(lambda seq: frame_bytes(seq, 3000), T0))
    assert "SQLITE_FULL" in full.value.reason
    assert full.value.path == path
    assert len(stored) > 3  # it really filled up first
    # Nothing half-written: the spool still reads, its counters match the file.
    assert [s for s, _ in spool.pending(0, limit=1000)] == stored
    assert spool.depth().frames == len(stored)
    assert spool.last_seq == stored[-1]
    # Space again: the seq continues with no gap.
    spool._conn.execute("PRAGMA max_page_count = 1073741823")
    stored += fill(spool, 1)
    assert stored == list(range(1, len(stored) + 1))
    spool.close()
    assert integrity(path) == "ok"
    assert stored_seqs(path) == stored
    with Spool(path) as reopened:
        assert reopened.last_seq == stored[-1]


def test_locked_database_raises_spool_unavailable_then_recovers(path: Path) -> None:
    spool = Spool(path, busy_timeout_seconds=0.2)
    fill(spool, 2)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another writer holds the lock
    began = time.monotonic()
    with pytest.raises(SpoolUnavailable, match="locked"):
        spool.append(frame_bytes, T0)
    assert time.monotonic() - began < 3.0  # waited about the busy timeout, not for ever
    assert [s for s, _ in spool.pending(0)] == [1, 2]  # WAL readers are not blocked
    other.execute("ROLLBACK")
    assert fill(spool, 1) == [3]
    spool.close()
    other.close()
    assert integrity(path) == "ok"
    assert stored_seqs(path) == [1, 2, 3]


def test_open_while_another_process_holds_the_file_exclusively(path: Path) -> None:
    with Spool(path) as spool:
        fill(spool, 1)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sqlite3, sys
                conn = sqlite3.connect({str(path)!r}, isolation_level=None)
                conn.execute("PRAGMA locking_mode=EXCLUSIVE")
                conn.execute("BEGIN EXCLUSIVE")
                print("locked", flush=True)
                sys.stdin.read()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SpoolUnavailable, match="locked"):
            Spool(path, busy_timeout_seconds=0.2)
    finally:
        holder.kill()
        holder.wait(timeout=10)
    with Spool(path) as spool:
        assert fill(spool, 1) == [2]
    assert integrity(path) == "ok"


def test_not_a_database_is_spool_unavailable(path: Path) -> None:
    path.write_bytes(b"this is no sqlite file\n" * 400)
    with pytest.raises(SpoolUnavailable, match="not a database"):
        Spool(path)


def test_missing_directory_is_spool_unavailable(tmp_path: Path) -> None:
    with pytest.raises(SpoolUnavailable, match="cannot be opened"):
        Spool(tmp_path / "missing" / SPOOL_FILE_NAME)


def test_bounds_must_be_positive(path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        Spool(path, max_bytes=0)
    with pytest.raises(ValueError, match="max_age_seconds"):
        Spool(path, max_age_seconds=0)


WRITER = """
import sys, time
from pathlib import Path
from novacron.agent.spool import Spool
from novacron.protos import common_pb2, telemetry_pb2

def frame(seq):
    values = [float(seq)] * 250
    return telemetry_pb2.Frame(
        seq=seq, node_features=common_pb2.FeatureVector(schema_version=1, values=values)
    ).SerializeToString()

spool = Spool(Path(sys.argv[1]))
print("start", spool.last_seq, flush=True)
while True:
    seq = spool.append(frame, time.time())
    print(seq, flush=True)
"""


def test_sigkill_mid_append_loses_no_returned_frame(tmp_path: Path, path: Path) -> None:
    """A writer process is killed at a random moment, three times over: every append
    that returned is on disk, the next seq follows the highest stored, the file is sound."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    rng = random.Random(5)
    highest = 0
    for _ in range(3):
        child = subprocess.Popen(
            [sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        assert child.stdout.readline().split() == ["start", str(highest)]
        first = child.stdout.readline()  # appends are going (fsync pace varies with load)
        time.sleep(rng.uniform(0.0, 0.4))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=10)
        assert child.returncode == -signal.SIGKILL
        returned = [int(line) for line in (first + out).split()]
        assert returned == list(range(highest + 1, returned[-1] + 1))
        assert integrity(path) == "ok"
        stored = stored_seqs(path)
        # At most one more than reported: committed, killed before its print.
        assert stored[-1] in (returned[-1], returned[-1] + 1)
        assert stored == list(range(1, stored[-1] + 1))
        highest = stored[-1]
    with Spool(path) as spool:
        assert spool.last_seq == highest
        assert fill(spool, 1) == [highest + 1]
