"""Call a blocking library function with a deadline, in a daemon worker thread.

Some sources block inside C code with no timeout of their own: ``libvirt.open`` can wait
for a daemon that accepted the socket but never answers, and a per-domain stats call
waits on a QEMU monitor that a migrating or stuck guest holds. A Python thread cannot be
interrupted, so the caller stops *waiting* at the deadline and the call finishes (or not)
in the background. Daemon threads, not a ThreadPoolExecutor: executor workers are joined
at interpreter exit, so one hung call would keep the agent from stopping.

:class:`KeyedCalls` adds the rule the runner uses for whole collectors: a key whose call
from an earlier round is still stuck is not started again, so a hang costs one thread,
never a growing pile of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class DeadlineExceeded(Exception):
    """The call did not return in time; it may still be running in its thread."""


def start_in_thread(fn: Callable[[], T], name: str) -> Future[T]:
    """Run ``fn`` in a new daemon thread and return a future for its result."""
    future: Future[T] = Future()

    def run() -> None:
        try:
            result = fn()
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)

    future.set_running_or_notify_cancel()
    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def call_with_deadline(
    fn: Callable[[], T],
    timeout_seconds: float,
    name: str,
    on_late_result: Callable[[T], None] | None = None,
) -> T:
    """Return ``fn()``, or raise :class:`DeadlineExceeded` after ``timeout_seconds``.

    Exceptions from ``fn`` propagate unchanged. ``on_late_result`` receives a result that
    arrives after the deadline, so a resource nobody waits for any more (a connection
    that opened too late) can be released instead of leaking.
    """
    future = start_in_thread(fn, name)
    try:
        return future.result(timeout=timeout_seconds)
    except FutureTimeout:
        if on_late_result is not None:
            future.add_done_callback(_late_result_handler(on_late_result))
        raise DeadlineExceeded(f"{name}: no answer after {timeout_seconds:g} s") from None


def _late_result_handler(handler: Callable[[T], None]) -> Callable[[Future[T]], None]:
    def handle(future: Future[T]) -> None:
        if future.exception() is None:
            handler(future.result())

    return handle


@dataclass(frozen=True)
class Finished(Generic[T]):
    value: T


@dataclass(frozen=True)
class Failed:
    error: BaseException


@dataclass(frozen=True)
class TimedOut:
    running_seconds: float  # how long the call (maybe from an earlier round) has run


class KeyedCalls(Generic[K, T]):
    """Run one call per key in parallel under one shared deadline.

    Each round returns, per key, :class:`Finished`, :class:`Failed` or
    :class:`TimedOut`. A key whose earlier call has not returned yet is reported as
    timed out again without starting a second call for it.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._running: dict[K, tuple[Future[T], float]] = {}

    def run(
        self, calls: Mapping[K, Callable[[], T]], timeout_seconds: float
    ) -> dict[K, Finished[T] | Failed | TimedOut]:
        started = time.monotonic()
        # A call that finished after an earlier deadline holds stale data: drop it and
        # ask again. Only a call that is still running blocks a new one for its key.
        for key in [k for k, (future, _) in self._running.items() if future.done()]:
            del self._running[key]
        for key, fn in calls.items():
            if key not in self._running:
                self._running[key] = (start_in_thread(fn, f"{self._name}-{key}"), started)
        wait([self._running[key][0] for key in calls], timeout=timeout_seconds)
        now = time.monotonic()
        outcomes: dict[K, Finished[T] | Failed | TimedOut] = {}
        for key in calls:
            future, since = self._running[key]
            if not future.done():
                outcomes[key] = TimedOut(now - since)
                continue
            del self._running[key]
            error = future.exception()
            outcomes[key] = Finished(future.result()) if error is None else Failed(error)
        return outcomes

    def stuck(self) -> list[K]:
        """Keys whose call is still running (from any round)."""
        return [key for key, (future, _) in self._running.items() if not future.done()]
