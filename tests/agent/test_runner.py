"""The collection runner: isolation, deadlines, no double starts, metrics."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import REGISTRY

from novacron.agent.collectors import base
from novacron.agent.collectors.base import (
    Collector,
    CollectorContext,
    CollectorSettings,
    register,
)
from novacron.agent.config import AgentConfig, AgentSettings
from novacron.agent.runner import CollectionRunner

TIMEOUT_SECONDS = 0.3
_names = itertools.count()


@dataclass(frozen=True)
class Reading:
    value: int


@pytest.fixture(autouse=True)
def isolated_registry() -> Iterator[None]:
    """Collectors registered by a test leave the global registry as they found it."""
    base.registry()  # import every real collector first, so they stay registered
    saved = dict(base._REGISTRY)
    yield
    base._REGISTRY.clear()
    base._REGISTRY.update(saved)


class Controls:
    """What a test collector does, shared by the class the test registers."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0
        self.closed = False


@pytest.fixture
def controls() -> Iterator[Controls]:
    shared = Controls()
    yield shared
    shared.release.set()  # never leave a hung thread behind


def unique(kind: str) -> str:
    """Metric values are process-wide: every test uses collector names of its own."""
    return f"test_{kind}_{next(_names)}"


def register_collector(kind: str, controls: Controls) -> str:
    name = unique(kind)

    class TestCollector(Collector[CollectorSettings]):
        """A collector made for the runner tests."""

        def __init__(self, context: CollectorContext, settings: CollectorSettings) -> None:
            if kind == "broken":
                raise OSError("device node missing")
            super().__init__(context, settings)

        def collect(self, now: float) -> Any:
            controls.calls += 1
            if kind == "raising":
                raise RuntimeError("sensor bus on fire")
            if kind == "hanging":
                controls.release.wait(timeout=30)
            if kind == "slow":
                time.sleep(0.05)
            return Reading(controls.calls)

        def close(self) -> None:
            controls.closed = True
            if kind == "bad_close":
                raise RuntimeError("cannot close")

    register(name)(TestCollector)
    return name


def runner_for(*names: str, disabled: tuple[str, ...] = ()) -> CollectionRunner:
    collectors = {n: CollectorSettings(enabled=True) for n in names}
    collectors |= {n: CollectorSettings(enabled=False) for n in disabled}
    agent = AgentSettings(node_id="test-node", collector_timeout_seconds=TIMEOUT_SECONDS)
    return CollectionRunner(AgentConfig(agent=agent, collectors=collectors, source="test"))


def runs(name: str, result: str) -> float | None:
    return REGISTRY.get_sample_value(
        "novacron_agent_collector_runs_total", {"collector": name, "result": result}
    )


def last_success(name: str) -> float | None:
    return REGISTRY.get_sample_value("novacron_agent_collector_last_success", {"collector": name})


def duration(name: str) -> float | None:
    return REGISTRY.get_sample_value(
        "novacron_agent_collector_duration_seconds", {"collector": name}
    )


def test_registry_holds_no_test_collectors_at_the_start_of_a_test() -> None:
    # Every other test here registers some; the fixture removed them again.
    assert [name for name in base.registry() if name.startswith("test_")] == []


def test_raising_collector_fails_alone(controls: Controls) -> None:
    ok, raising = register_collector("ok", controls), register_collector("raising", Controls())
    runner = runner_for(ok, raising)
    sample = runner.collect()
    assert sample.node_id == "test-node"
    assert list(sample.reports) == [ok, raising]
    good, bad = sample.reports[ok], sample.reports[raising]
    assert (good.ok, good.error, good.data) == (True, None, Reading(1))
    assert (bad.ok, bad.duration_seconds, bad.data) == (False, None, None)
    assert bad.error == "RuntimeError: sensor bus on fire"
    assert (runs(ok, "ok"), last_success(ok)) == (1.0, 1.0)
    assert (runs(raising, "error"), last_success(raising)) == (1.0, 0.0)
    assert runs(raising, "ok") is None


def test_duration_is_recorded(controls: Controls) -> None:
    slow = register_collector("slow", controls)
    report = runner_for(slow).collect().reports[slow]
    assert report.ok
    assert report.duration_seconds is not None
    assert 0.05 <= report.duration_seconds < TIMEOUT_SECONDS
    assert duration(slow) == report.duration_seconds


def test_hanging_collector_times_out_and_is_not_started_twice(controls: Controls) -> None:
    hanging = register_collector("hanging", controls)
    ok_controls = Controls()
    ok = register_collector("ok", ok_controls)
    runner = runner_for(hanging, ok)

    started = time.monotonic()
    first = runner.collect()
    assert time.monotonic() - started < TIMEOUT_SECONDS + 1.0  # the cycle did not hang
    assert first.reports[ok].ok
    report = first.reports[hanging]
    assert (report.ok, report.data, report.duration_seconds) == (False, None, None)
    assert report.error is not None
    assert report.error.startswith("timed out: still running after")

    second = runner.collect()
    error = second.reports[hanging].error
    assert error is not None
    assert error.startswith("timed out")
    assert second.reports[ok].data == Reading(2)  # the others go on every cycle
    assert controls.calls == 1  # the stuck call was not started again
    assert runs(hanging, "timeout") == 2.0
    assert last_success(hanging) == 0.0

    controls.release.set()  # the stuck call returns ...
    _wait_until(lambda: not _still_running(runner, hanging))
    third = runner.collect()
    assert third.reports[hanging].ok  # ... and its late result is reported
    assert third.reports[hanging].data == Reading(1)
    assert controls.calls == 1
    fourth = runner.collect()  # only now is it started again
    assert controls.calls == 2
    assert fourth.reports[hanging].data == Reading(2)
    assert runs(hanging, "ok") == 2.0
    assert last_success(hanging) == 1.0


def test_collector_that_fails_to_start(controls: Controls) -> None:
    broken, ok = register_collector("broken", controls), register_collector("ok", Controls())
    sample = runner_for(broken, ok).collect()
    assert sample.reports[broken].ok is False
    assert sample.reports[broken].error == "failed to start: device node missing"
    assert sample.reports[ok].ok


def test_disabled_collectors_are_not_built_or_reported(controls: Controls) -> None:
    ok, off = register_collector("ok", Controls()), register_collector("ok", controls)
    runner = runner_for(ok, disabled=(off,))
    assert list(runner.collect().reports) == [ok]
    assert off not in runner.collectors
    assert controls.calls == 0


def test_close_reaches_every_collector_even_after_an_error(controls: Controls) -> None:
    other = Controls()
    bad, good = register_collector("bad_close", controls), register_collector("ok", other)
    runner = runner_for(bad, good)
    runner.close()
    assert controls.closed
    assert other.closed


def test_sample_json_shape(controls: Controls) -> None:
    ok, raising = register_collector("ok", controls), register_collector("raising", Controls())
    data = runner_for(ok, raising).collect().to_json_dict()
    assert list(data) == ["node_id", "timestamp_seconds", ok, raising]
    assert data[ok]["data"] == {"value": 1}
    assert set(data[raising]) == {"ok", "duration_seconds", "error", "collected_at_seconds", "data"}


def _still_running(runner: CollectionRunner, name: str) -> bool:
    running = runner._running.get(name)
    return running is not None and not running[0].done()


def _wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_collector_with_its_own_interval_is_reused_between_polls(controls: Controls) -> None:
    every, sparse = register_collector("ok", controls), register_collector("ok", Controls())
    collectors = {
        every: CollectorSettings(enabled=True),
        sparse: CollectorSettings(enabled=True, interval_seconds=0.4),
    }
    agent = AgentSettings(
        node_id="n", interval_seconds=0.1, collector_timeout_seconds=TIMEOUT_SECONDS
    )
    runner = CollectionRunner(AgentConfig(agent=agent, collectors=collectors, source="test"))
    first = runner.collect()
    second = runner.collect()
    assert second.reports[every].data == Reading(2)
    assert second.reports[sparse] is first.reports[sparse]  # reused, not re-read
    assert second.reports[sparse].collected_at_seconds == first.timestamp_seconds
    time.sleep(0.4)
    third = runner.collect()
    assert third.reports[sparse].data == Reading(2)
    assert third.reports[sparse].collected_at_seconds == third.timestamp_seconds


def test_failed_collector_with_an_interval_is_retried_next_cycle() -> None:
    flaky = Controls()
    name = register_collector("raising", flaky)
    collectors = {name: CollectorSettings(enabled=True, interval_seconds=3600.0)}
    agent = AgentSettings(node_id="n", collector_timeout_seconds=TIMEOUT_SECONDS)
    runner = CollectionRunner(AgentConfig(agent=agent, collectors=collectors, source="test"))
    runner.collect()
    runner.collect()
    assert flaky.calls == 2
