"""Deadlines for blocking library calls (worker threads, shared by collectors)."""

from __future__ import annotations

import threading
import time

import pytest

from novacron.agent.collectors._deadline import (
    DeadlineExceeded,
    Failed,
    Finished,
    KeyedCalls,
    TimedOut,
    call_with_deadline,
)


def test_call_returns_its_value_and_raises_its_error() -> None:
    assert call_with_deadline(lambda: 42, 1.0, "answer") == 42

    def broken() -> int:
        raise KeyError("nope")

    with pytest.raises(KeyError, match="nope"):
        call_with_deadline(broken, 1.0, "broken")


def test_call_past_its_deadline_raises_and_late_result_is_handed_over() -> None:
    release = threading.Event()
    late: list[str] = []
    handed = threading.Event()

    def slow() -> str:
        release.wait(5)
        return "connection"

    def on_late(value: str) -> None:
        late.append(value)
        handed.set()

    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"^slow-open: no answer after 0.1 s$"):
        call_with_deadline(slow, 0.1, "slow-open", on_late_result=on_late)
    assert time.monotonic() - started < 1.0
    release.set()
    assert handed.wait(5)
    assert late == ["connection"]


def test_keyed_calls_report_each_outcome() -> None:
    release = threading.Event()
    calls: KeyedCalls[str, int] = KeyedCalls("test")

    def fails() -> int:
        raise RuntimeError("bad domain")

    def stuck() -> int:
        release.wait(5)
        return 3

    try:
        outcomes = calls.run({"ok": lambda: 1, "bad": fails, "stuck": stuck}, 0.1)
        assert outcomes["ok"] == Finished(1)
        bad = outcomes["bad"]
        assert isinstance(bad, Failed) and str(bad.error) == "bad domain"
        assert isinstance(outcomes["stuck"], TimedOut)
        assert calls.stuck() == ["stuck"]
    finally:
        release.set()


def test_stuck_key_is_not_started_again_and_stale_result_is_dropped() -> None:
    release = threading.Event()
    started: list[int] = []
    calls: KeyedCalls[str, int] = KeyedCalls("test")

    def slow() -> int:
        started.append(1)
        release.wait(5)
        return len(started)

    first = calls.run({"vm": slow}, 0.05)
    second = calls.run({"vm": slow}, 0.05)
    assert isinstance(first["vm"], TimedOut) and isinstance(second["vm"], TimedOut)
    assert second["vm"].running_seconds >= first["vm"].running_seconds
    assert len(started) == 1
    release.set()
    deadline = time.monotonic() + 5
    while calls.stuck() and time.monotonic() < deadline:
        time.sleep(0.01)
    # The finished late call held old data: a fresh call runs instead of reusing it.
    third = calls.run({"vm": slow}, 1.0)
    assert third["vm"] == Finished(2)
    assert len(started) == 2
