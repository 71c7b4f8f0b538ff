"""The agent's durable outbox: every frame waits here until the coordinator stores it.

One SQLite file in the agent's state directory (WAL, ``synchronous=FULL``: a frame whose
:meth:`Spool.append` returned survives a crash of the process and of the machine).

* **Sequence numbers** belong to the spool, not to the caller: ``append`` takes a
  function that builds the frame *for* a seq and runs it inside the transaction that
  stores it, so the seq inside the frame and the seq of the row are the same number by
  construction, a seq is consumed only when its frame is stored (a failed build or a
  full disk rolls it back, leaving no gap), and it is never reused: the highest seq
  produced lives in the database, beside the frames, and survives restarts, acks and
  drops. (The alternative, ``next_seq()`` then ``append(seq, frame)``, splits one fact
  over two calls that a crash, a second thread or a bug can pull apart.)
* **Acknowledgement** (:meth:`Spool.ack`) deletes every frame up to the coordinator's
  highest durable seq and records it; :meth:`Spool.pending` gives the rest in seq order,
  in batches bounded by count and bytes, for replay.
* **Bounds**: more than ``max_bytes`` of frames, or frames older than
  ``max_age_seconds``, are dropped oldest first, in the append's own transaction. Each
  drop is counted in ``novacron_agent_spool_dropped_frames_total{reason}`` and logged
  once with how many frames and which seq range: the only way a frame is ever lost.
* **Failure**: a full disk, a database locked by someone else or an I/O error raise
  :class:`SpoolUnavailable` with what happened and where; the transaction is rolled
  back, so the file stays consistent and the caller (the daemon) carries on and tries
  again next cycle.

Every method is safe to call from several threads (one connection behind a lock): the
collection loop appends while the stream thread reads and acknowledges.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)

SPOOL_FILE_NAME = "spool.sqlite"
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_AGE_SECONDS = 7 * 86400.0
DEFAULT_BUSY_TIMEOUT_SECONDS = 2.0

DROPPED_FRAMES = Counter(
    "novacron_agent_spool_dropped_frames",
    "Frames dropped from the spool before the coordinator acknowledged them, by reason "
    "(max_bytes: over the size bound; max_age: older than the age bound).",
    ["reason"],
)
DEPTH_FRAMES = Gauge(
    "novacron_agent_spool_depth_frames", "Frames in the spool not yet acknowledged."
)
DEPTH_BYTES = Gauge(
    "novacron_agent_spool_depth_bytes", "Bytes of frames in the spool not yet acknowledged."
)

_SCHEMA = (
    # body last: walking seq, created and size never reads the blobs' overflow pages
    "CREATE TABLE IF NOT EXISTS frames (seq INTEGER PRIMARY KEY, created_seconds REAL NOT NULL,"
    " size_bytes INTEGER NOT NULL, body BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO counters (name, value) VALUES ('last_seq', 0), ('last_acked', 0)",
)

# SQLite primary result codes (sqlite3.h) that mean "cannot write now", not "our bug".
_UNAVAILABLE_CODES = {
    5: "the database is locked by another connection (SQLITE_BUSY)",
    6: "a table is locked (SQLITE_LOCKED)",
    8: "the database is read-only (SQLITE_READONLY)",
    10: "disk I/O error (SQLITE_IOERR)",
    11: "the database file is corrupt (SQLITE_CORRUPT)",
    13: "the disk or the database is full (SQLITE_FULL)",
    14: "the database file cannot be opened (SQLITE_CANTOPEN)",
    26: "the file is not a database (SQLITE_NOTADB)",
}


class SpoolUnavailable(Exception):
    """The spool cannot take or give frames right now; nothing was changed.

    ``reason`` is one line for logs and the health report.
    """

    def __init__(self, reason: str, path: Path) -> None:
        super().__init__(f"spool {path}: {reason}")
        self.reason = reason
        self.path = path


@dataclass(frozen=True)
class SpoolDepth:
    frames: int
    bytes: int


@dataclass(frozen=True)
class _Drop:
    reason: str
    frames: int
    bytes: int
    first_seq: int
    last_seq: int


class Spool:
    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
        busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
    ) -> None:
        """Open (or create) the spool at ``path``; raises SpoolUnavailable if impossible.

        ``max_bytes`` bounds the frames' own bytes (the file is a little larger);
        ``busy_timeout_seconds`` is how long a write waits for another writer's lock.
        """
        if max_bytes <= 0:
            raise ValueError(f"max_bytes: must be > 0, got {max_bytes}")
        if max_age_seconds <= 0:
            raise ValueError(f"max_age_seconds: must be > 0, got {max_age_seconds}")
        self.path = path
        self.max_bytes = max_bytes
        self.max_age_seconds = max_age_seconds
        self._lock = threading.Lock()
        with self._errors("open"):
            self._conn = sqlite3.connect(
                path,
                timeout=busy_timeout_seconds,
                isolation_level=None,  # transactions are explicit (BEGIN IMMEDIATE)
                check_same_thread=False,  # shared by threads, serialised by self._lock
            )
        try:
            with self._errors("open"):
                self._setup()
        except BaseException:
            self._conn.close()
            raise
        self._publish()

    def _setup(self) -> None:
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot switch to WAL (journal_mode is {mode})")
        self._conn.execute("PRAGMA synchronous=FULL")
        with self._transaction():
            for statement in _SCHEMA:
                self._conn.execute(statement)
        counters = dict(self._conn.execute("SELECT name, value FROM counters").fetchall())
        highest_stored = self._conn.execute("SELECT max(seq) FROM frames").fetchone()[0] or 0
        # last_seq is written with every frame; max(seq) only guards a hand-edited file.
        self._last_seq = max(int(counters["last_seq"]), int(highest_stored))
        self._last_acked = int(counters["last_acked"])
        frames, size = self._conn.execute(
            "SELECT count(*), coalesce(sum(size_bytes), 0) FROM frames"
        ).fetchone()
        self._depth = SpoolDepth(int(frames), int(size))
        log.info(
            "spool opened",
            extra={
                "path": str(self.path),
                "last_seq": self._last_seq,
                "last_acked": self._last_acked,
                "depth_frames": self._depth.frames,
                "depth_bytes": self._depth.bytes,
            },
        )

    # -- writing -------------------------------------------------------------------

    def append(self, make_frame: Callable[[int], bytes], created: float) -> int:
        """Store the frame ``make_frame(seq)`` under the next seq; returns that seq.

        ``make_frame`` gets the seq the frame must carry and returns its serialized
        bytes; it runs inside the transaction, so if it raises nothing is stored and
        the seq is not consumed. ``created`` (unix seconds) is the frame's time, for
        the age bound, which is applied (with the size bound) in the same transaction.
        Returns once the frame is durable. Raises SpoolUnavailable (nothing stored) or
        ValueError for a frame larger than the whole spool may hold.
        """
        with self._lock, self._errors("append"):
            with self._transaction():
                seq = self._last_seq + 1
                body = make_frame(seq)
                if len(body) > self.max_bytes:
                    raise ValueError(
                        f"frame {seq} is {len(body)} bytes, more than the spool's "
                        f"max_bytes ({self.max_bytes})"
                    )
                self._conn.execute(
                    "INSERT INTO frames (seq, created_seconds, size_bytes, body) "
                    "VALUES (?, ?, ?, ?)",
                    (seq, created, len(body), body),
                )
                self._conn.execute("UPDATE counters SET value = ? WHERE name = 'last_seq'", (seq,))
                depth = SpoolDepth(self._depth.frames + 1, self._depth.bytes + len(body))
                drops, depth = self._trim(depth, created)
            self._last_seq, self._depth = seq, depth
        self._publish()
        self._report(drops)
        return seq

    def ack(self, seq: int) -> int:
        """The coordinator stores every frame up to ``seq``: delete them; frames deleted.

        An ack beyond the highest seq produced means the coordinator holds frames of
        this node that this spool does not know (its state directory was lost): the
        seq jumps past it, or every new frame would be ignored as a duplicate.
        """
        with self._lock, self._errors("ack"):
            if seq <= self._last_acked and seq <= self._last_seq:
                return 0
            last_seq = self._last_seq
            with self._transaction():
                removed, size = self._conn.execute(
                    "SELECT count(*), coalesce(sum(size_bytes), 0) FROM frames WHERE seq <= ?",
                    (seq,),
                ).fetchone()
                self._conn.execute("DELETE FROM frames WHERE seq <= ?", (seq,))
                acked = max(self._last_acked, seq)
                self._conn.execute(
                    "UPDATE counters SET value = ? WHERE name = 'last_acked'", (acked,)
                )
                if seq > last_seq:
                    self._conn.execute(
                        "UPDATE counters SET value = ? WHERE name = 'last_seq'", (seq,)
                    )
            self._last_acked = acked
            self._last_seq = max(last_seq, seq)
            self._depth = SpoolDepth(self._depth.frames - removed, self._depth.bytes - size)
        if seq > last_seq:
            log.warning(
                "coordinator acknowledged a seq this spool never produced; continuing after it",
                extra={"path": str(self.path), "acked_seq": seq, "last_produced_seq": last_seq},
            )
        self._publish()
        return int(removed)

    def _trim(self, depth: SpoolDepth, now: float) -> tuple[list[_Drop], SpoolDepth]:
        """Drop the oldest frames while over max_bytes or older than max_age_seconds."""
        excess = depth.bytes - self.max_bytes
        cutoff = now - self.max_age_seconds
        if excess <= 0:
            oldest = self._conn.execute(
                "SELECT created_seconds FROM frames ORDER BY seq LIMIT 1"
            ).fetchone()
            if oldest is None or oldest[0] >= cutoff:
                return [], depth
        drops: list[_Drop] = []
        dropped: dict[str, list[int]] = {}  # reason -> [frames, bytes, first, last]
        last_dropped = 0
        rows = self._conn.execute(
            "SELECT seq, created_seconds, size_bytes FROM frames ORDER BY seq"
        )
        for seq, created, size in rows:
            if created < cutoff:
                reason = "max_age"
            elif excess > 0:
                reason = "max_bytes"
            else:
                break
            entry = dropped.setdefault(reason, [0, 0, seq, seq])
            entry[0] += 1
            entry[1] += size
            entry[3] = seq
            excess -= size
            last_dropped = seq
        rows.close()
        self._conn.execute("DELETE FROM frames WHERE seq <= ?", (last_dropped,))
        for reason, (frames, size, first, last) in dropped.items():
            drops.append(_Drop(reason, frames, size, first, last))
            depth = SpoolDepth(depth.frames - frames, depth.bytes - size)
        return drops, depth

    def _report(self, drops: list[_Drop]) -> None:
        for drop in drops:
            DROPPED_FRAMES.labels(drop.reason).inc(drop.frames)
            log.warning(
                "spool bound reached: dropped the oldest unacknowledged frames",
                extra={
                    "path": str(self.path),
                    "reason": drop.reason,
                    "frames": drop.frames,
                    "bytes": drop.bytes,
                    "first_seq": drop.first_seq,
                    "last_seq": drop.last_seq,
                    "max_bytes": self.max_bytes,
                    "max_age_seconds": self.max_age_seconds,
                },
            )

    # -- reading -------------------------------------------------------------------

    def pending(
        self, after_seq: int = 0, limit: int = 1000, max_bytes: int = 4 * 1024 * 1024
    ) -> list[tuple[int, bytes]]:
        """Up to ``limit`` frames with seq > ``after_seq``, ascending, about ``max_bytes``.

        The batch stops before the frame that would pass ``max_bytes``, but always holds
        at least one frame when there is one, so a large frame cannot stall replay.
        """
        if limit < 1:
            raise ValueError(f"limit: must be >= 1, got {limit}")
        out: list[tuple[int, bytes]] = []
        total = 0
        with self._lock, self._errors("read"):
            rows = self._conn.execute(
                "SELECT seq, size_bytes, body FROM frames WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            )
            for seq, size, body in rows:
                if out and total + size > max_bytes:
                    break
                out.append((int(seq), bytes(body)))
                total += size
            rows.close()
        return out

    @property
    def last_seq(self) -> int:
        """Highest seq produced so far (0 when none), stored or not."""
        return self._last_seq

    @property
    def last_acked(self) -> int:
        """Highest seq the coordinator acknowledged (0 when none)."""
        return self._last_acked

    def depth(self) -> SpoolDepth:
        """Frames (and their bytes) waiting for an acknowledgement."""
        return self._depth

    # -- plumbing ------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE (take the write lock up front: no deadlock-prone upgrade)."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._conn.execute("COMMIT")  # can fail too: SQLITE_FULL writing the WAL
        except BaseException:
            if self._conn.in_transaction:
                try:
                    self._conn.execute("ROLLBACK")
                except sqlite3.Error:  # the original error says more; SQLite cleans up
                    log.debug("spool rollback failed", exc_info=True)
            raise

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn SQLite's "cannot now" errors into SpoolUnavailable; bugs stay errors."""
        try:
            yield
        except sqlite3.Error as exc:
            code = getattr(exc, "sqlite_errorcode", None)
            what = _UNAVAILABLE_CODES.get(code & 0xFF) if isinstance(code, int) else None
            if what is None and not isinstance(exc, sqlite3.OperationalError):
                raise
            reason = f"{action} failed: {what or 'operational error'}: {exc}"
            raise SpoolUnavailable(reason, self.path) from exc

    def _publish(self) -> None:
        DEPTH_FRAMES.set(self._depth.frames)
        DEPTH_BYTES.set(self._depth.bytes)

    def close(self) -> None:
        """Checkpoint and close; the spool must not be used afterwards."""
        with self._lock:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:  # the WAL is replayed on the next open anyway
                log.info("spool checkpoint at close failed", extra={"error": str(exc)})
            self._conn.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def spool_path(state_dir: Path) -> Path:
    """Where the spool lives in the agent's state directory."""
    return state_dir / SPOOL_FILE_NAME
