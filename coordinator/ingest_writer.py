"""One writer thread for every stream: batched, ordered, durable store writes.

Why one thread: SQLite has one writer at a time and pays one fsync per commit, so the
frames of all agents share transactions (up to ``batch_max_frames`` frames, or what
arrived within ``batch_max_delay_seconds`` of the oldest waiting frame). Under load the
delay costs nothing: while one batch commits, the next one fills, and by the time the
writer comes back the oldest job has waited long enough. It also keeps blocking SQLite
calls off the asyncio event loop that serves the streams.

Every store operation of the ingest goes through here, in submission order: frames
(:meth:`BatchWriter.submit`), and single calls such as ``record_hello`` and
``record_disconnect`` (:meth:`BatchWriter.call`, :meth:`BatchWriter.post`). A stream's
frames are answered with the node's durable watermark after the commit (the store's ack
rule), through an asyncio future resolved on the stream's event loop (one wake-up per
batch and loop, not one per stream).

Failures never kill the thread:

* :class:`~novacron.coordinator.store.StoreUnavailable` (locked, disk full, I/O error):
  the batch's futures fail with it; nothing was stored, nothing is acknowledged, and the
  streams close so their agents replay (see :mod:`novacron.coordinator.ingest`).
* Any other exception (a bug, or one frame the database refuses): the batch is retried
  one job at a time, so only the job at fault fails and other agents' frames are stored.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from novacron.coordinator import metrics
from novacron.coordinator.store import Store, StoredFrame, StoreUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(eq=False)
class _FramesJob:
    frames: Sequence[StoredFrame]
    node_id: str
    resumed: bool
    future: asyncio.Future[int]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class _CallJob:
    fn: Callable[[Store], Any]
    what: str
    future: asyncio.Future[Any] | None
    loop: asyncio.AbstractEventLoop | None
    enqueued: float = field(default_factory=time.monotonic)


_Job = _FramesJob | _CallJob
_Outcome = tuple[asyncio.Future[Any], Any, BaseException | None]


#: Told after every commit: the newest committed frame of each node, and the commit's
#: ``now`` (the nodes' ``last_seen``). Runs on the writer thread; must not block long.
OnCommit = Callable[[list[StoredFrame], float], None]


def newest_per_node(frames: Sequence[StoredFrame]) -> list[StoredFrame]:
    """The highest-seq frame of each node in ``frames`` (first-appearance order)."""
    newest: dict[str, StoredFrame] = {}
    for frame in frames:
        known = newest.get(frame.node_id)
        if known is None or frame.seq > known.seq:
            newest[frame.node_id] = frame
    return list(newest.values())


class BatchWriter:
    """Batches frames of all streams into store transactions on one thread.

    ``on_commit``: told the newest frame of each node after every commit (the fleet
    snapshot needs only that: all frames of a commit share its receive time, and older
    frames never replace a node's data), so a commit of 2,000 frames from 40 agents
    costs 40 fleet updates, not 2,000. In a single-process coordinator it is
    ``FleetState.observe_frames``; in an ingest worker it sends compact updates to the
    main process. ``clock``: the coordinator's clock, recorded as the nodes' ``last_seen``.
    """

    def __init__(
        self,
        store: Store,
        *,
        max_frames: int = 2000,
        max_delay_seconds: float = 0.05,
        on_commit: OnCommit | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_frames < 1:
            raise ValueError(f"max_frames: must be >= 1, got {max_frames}")
        if max_delay_seconds < 0:
            raise ValueError(f"max_delay_seconds: must be >= 0, got {max_delay_seconds}")
        self.store = store
        self.max_frames = max_frames
        self.max_delay_seconds = max_delay_seconds
        self.on_commit = on_commit
        self._clock = clock
        self._cond = threading.Condition()
        self._jobs: deque[_Job] = deque()
        self._queued_frames = 0
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)

    # ---------------------------------------------------------------- API

    def start(self) -> None:
        self._thread.start()

    def submit(
        self, frames: Sequence[StoredFrame], *, node_id: str, resumed: bool = False
    ) -> asyncio.Future[int]:
        """Queue one stream's frames (all of ``node_id``); the future gives the node's ack.

        Call from a running event loop. ``resumed``: these are the stream's first frames
        after its Welcome (see ``Store.write_batch``). The future fails with
        StoreUnavailable when the commit fails or the writer is closed.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._enqueue(_FramesJob(frames, node_id, resumed, future, loop), len(frames))
        return future

    async def call(self, fn: Callable[[Store], T], what: str = "store call") -> T:
        """Run ``fn(store)`` on the writer thread, in order with the frames; its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._enqueue(_CallJob(fn, what, future, loop), 0)
        return await future

    def post(self, fn: Callable[[Store], object], what: str = "store call") -> None:
        """Like :meth:`call` without waiting; a failure is logged."""
        self._enqueue(_CallJob(fn, what, None, None), 0)

    @property
    def queued_frames(self) -> int:
        return self._queued_frames

    def close(self, timeout: float | None = None) -> bool:
        """Write everything queued, then stop the thread; True if it stopped in time.

        Later submissions fail with StoreUnavailable.
        """
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    # ---------------------------------------------------------------- thread

    def _enqueue(self, job: _Job, frames: int) -> None:
        with self._cond:
            if self._closing:
                # Called on the job's own loop (submit, call) or fire-and-forget (post).
                if job.future is not None:
                    job.future.set_exception(
                        StoreUnavailable(
                            "the coordinator is shutting down; nothing more is written"
                        )
                    )
                else:
                    log.info("store writer closed; skipped %s", getattr(job, "what", "a write"))
                return
            self._jobs.append(job)
            self._queued_frames += frames
            self._cond.notify()

    def _run(self) -> None:
        while True:
            jobs = self._next_jobs()
            if jobs is None:
                return
            try:
                self._process(jobs)
            except BaseException:  # never lose the thread; every future was settled
                log.exception("store writer: unexpected failure processing a batch")

    def _next_jobs(self) -> list[_Job] | None:
        """Wait for work; collect one batch (None: closed and drained)."""
        with self._cond:
            while not self._jobs:
                if self._closing:
                    return None
                self._cond.wait()
            if isinstance(self._jobs[0], _FramesJob):
                deadline = self._jobs[0].enqueued + self.max_delay_seconds
                while self._queued_frames < self.max_frames and not self._closing:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            jobs: list[_Job] = []
            taken = 0
            while self._jobs:
                job = self._jobs[0]
                size = len(job.frames) if isinstance(job, _FramesJob) else 0
                if jobs and taken + size > self.max_frames:
                    break
                self._jobs.popleft()
                jobs.append(job)
                taken += size
            self._queued_frames -= taken
            return jobs

    def _process(self, jobs: list[_Job]) -> None:
        """Run the jobs in order: consecutive frame jobs share one transaction."""
        outcomes: list[tuple[asyncio.AbstractEventLoop, _Outcome]] = []
        run: list[_FramesJob] = []
        for job in jobs:
            if isinstance(job, _FramesJob):
                run.append(job)
                continue
            if run:
                outcomes += self._write(run)
                run = []
            outcomes += self._call(job)
        if run:
            outcomes += self._write(run)
        _settle(outcomes)

    def _call(self, job: _CallJob) -> list[tuple[asyncio.AbstractEventLoop, _Outcome]]:
        try:
            result, error = job.fn(self.store), None
        except Exception as exc:
            result, error = None, exc
            if job.future is None:
                log.warning(
                    "store writer: %s failed", job.what, extra={"error": str(exc)}, exc_info=True
                )
        if job.future is None or job.loop is None:
            return []
        return [(job.loop, (job.future, result, error))]

    def _write(self, jobs: list[_FramesJob]) -> list[tuple[asyncio.AbstractEventLoop, _Outcome]]:
        try:
            acks = self._commit(jobs)
        except StoreUnavailable as exc:
            return [(job.loop, (job.future, None, exc)) for job in jobs]
        except Exception as exc:
            if len(jobs) == 1:
                log.exception(
                    "store writer: a batch of frames could not be written",
                    extra={"node_id": jobs[0].node_id, "frames": len(jobs[0].frames)},
                )
                return [(jobs[0].loop, (jobs[0].future, None, exc))]
            log.warning(
                "store writer: a shared batch failed; retrying each stream's frames alone",
                extra={"jobs": len(jobs), "error": repr(exc)},
            )
            return [outcome for job in jobs for outcome in self._write([job])]
        return [(job.loop, (job.future, acks.get(job.node_id, 0), None)) for job in jobs]

    def _commit(self, jobs: list[_FramesJob]) -> dict[str, int]:
        frames = [frame for job in jobs for frame in job.frames]
        resumed = {job.node_id for job in jobs if job.resumed}
        now = self._clock()
        started = time.perf_counter()
        try:
            acks = self.store.write_batch(frames, resumed=resumed, now=now)
        except StoreUnavailable as exc:
            metrics.STORE_WRITE_FAILURES.inc()
            metrics.DROPPED_FRAMES.inc(len(frames))
            log.error(
                "store write failed; the frames stay unacknowledged and will be replayed",
                extra={"frames": len(frames), "streams": len(jobs), "error": str(exc)},
            )
            raise
        metrics.STORE_WRITE_SECONDS.observe(time.perf_counter() - started)
        metrics.STORE_BATCH_FRAMES.observe(len(frames))
        metrics.FRAMES_STORED.inc(len(frames))
        if self.on_commit is not None:
            try:
                self.on_commit(newest_per_node(frames), now)
            except Exception:  # the frames are committed: their acks must still go out
                log.exception("store writer: the commit observer failed")
        return acks


def _settle(outcomes: list[tuple[asyncio.AbstractEventLoop, _Outcome]]) -> None:
    """Resolve futures on their loops: one thread-safe wake-up per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for loop, outcome in outcomes:
        by_loop.setdefault(loop, []).append(outcome)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, items)
        except RuntimeError:  # the loop closed: nobody waits for these answers any more
            log.debug("store writer: event loop closed before results were delivered")


def _resolve(items: list[_Outcome]) -> None:
    for future, result, error in items:
        if future.done():  # the stream went away and cancelled its wait
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
