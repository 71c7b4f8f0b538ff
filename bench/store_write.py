"""Store write throughput: ``SqliteStore.write_batch`` frames/s for a few batch shapes.

A frame is realistic (tests/coordinator/frames.py): 35 node features, 10 VMs with 11
features each, three failure predictions with a contributing factor, one anomaly and
seven collector statuses -- about 3.3 KB serialized, all kept in ``payload``. The store
runs as shipped (WAL, synchronous=FULL: one fsync per batch) on a file in ``--dir``.

Shapes: ``fleet`` batches hold one frame of each of N different nodes (the steady state:
the ingest's writer gathers many streams into one transaction); ``replay`` batches hold
consecutive frames of one node (an agent resending its spool). Prints the median of
``--runs`` runs per shape, beside a baseline from the same run: plain ``sqlite3``
inserting the same payload bytes keyed by (node, seq) in the same batches, with the same
WAL and synchronous=FULL, so the ratio is what the store's schema, feature/prediction
rows and ack watermark cost over a bare durable insert.

    .venv/bin/python -m bench.store_write [--dir /var/tmp] [--runs 3]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from novacron.coordinator.store import StoredFrame
from novacron.coordinator.store_sqlite import SqliteStore
from tests.coordinator.frames import stored

# (shape, frames per batch, frames in the run)
CASES = (
    ("fleet", 1, 1_000),
    ("fleet", 100, 10_000),
    ("fleet", 1000, 30_000),
    ("replay", 1000, 30_000),
)


def frames_for(shape: str, batch: int, total: int) -> list[list[StoredFrame]]:
    template = stored("template", 1)
    batches = []
    for start in range(0, total, batch):
        if shape == "fleet":
            seq = start // batch + 1
            when = 1_700_000_000.0 + 10.0 * seq  # one cycle per batch, every 10 s
            batches.append(
                [
                    replace(template, node_id=f"node-{n:04d}", seq=seq, timestamp_seconds=when)
                    for n in range(batch)
                ]
            )
        else:
            batches.append(
                [
                    replace(
                        template,
                        node_id="node-0000",
                        seq=s + 1,
                        timestamp_seconds=1_700_000_000.0 + 10.0 * s,
                    )
                    for s in range(start, start + batch)
                ]
            )
    return batches


def run_once(directory: Path, batches: list[list[StoredFrame]]) -> float:
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        store = SqliteStore.open(Path(scratch) / "bench.db")
        try:
            started = time.perf_counter()
            for batch in batches:
                store.write_batch(batch, now=1.0)
            elapsed = time.perf_counter() - started
        finally:
            store.close()
    return sum(len(b) for b in batches) / elapsed


def run_baseline(directory: Path, batches: list[list[StoredFrame]]) -> float:
    """Plain sqlite3: one (node_id, seq, payload) row per frame, one transaction a batch."""
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        db = sqlite3.connect(Path(scratch) / "baseline.db", isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(
                "CREATE TABLE frames (node_id TEXT, seq INTEGER, payload BLOB,"
                " PRIMARY KEY (node_id, seq)) WITHOUT ROWID"
            )
            started = time.perf_counter()
            for batch in batches:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(
                    "INSERT OR IGNORE INTO frames VALUES (?, ?, ?)",
                    [(f.node_id, f.seq, f.payload) for f in batch],
                )
                db.execute("COMMIT")
            elapsed = time.perf_counter() - started
        finally:
            db.close()
    return sum(len(b) for b in batches) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"payload {len(stored('x', 1).payload)} bytes per frame; database in {args.dir}")
    print(
        f"{'shape':<8} {'batch':>6} {'frames/s':>10} {'ms/batch':>9} "
        f"{'baseline/s':>11} {'ratio':>6}   runs (frames/s)"
    )
    for shape, batch, total in CASES:
        batches = frames_for(shape, batch, total)
        rates = [run_once(args.dir, batches) for _ in range(args.runs)]
        median = statistics.median(rates)
        baseline = statistics.median(run_baseline(args.dir, batches) for _ in range(args.runs))
        runs = ", ".join(f"{r:,.0f}" for r in rates)
        print(
            f"{shape:<8} {batch:>6} {median:>10,.0f} {1000 * batch / median:>9.2f} "
            f"{baseline:>11,.0f} {median / baseline:>6.2f}   {runs}"
        )


if __name__ == "__main__":
    main()
