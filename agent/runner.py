"""Run every enabled collector once per cycle, isolated from each other.

Each collector runs in its own worker thread with a deadline. One that raises gives a
failed report; one that hangs (a sick disk under smartctl, a stuck libvirt domain) is
reported as timed out and is not started again until its call returns, so a hang costs
one thread, never the cycle and never the other collectors.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, wait
from typing import Any

from novacron.agent.collectors._deadline import start_in_thread
from novacron.agent.collectors.base import Collector, registry
from novacron.agent.config import AgentConfig
from novacron.agent.metrics import COLLECTOR_DURATION, COLLECTOR_RUNS, COLLECTOR_SUCCESS
from novacron.agent.sample import CollectorReport, NodeSample
from novacron.protos.runtime.jsonlog import LogOnce

log = logging.getLogger(__name__)


class CollectionRunner:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.collectors: dict[str, Collector[Any]] = {}
        self._broken: dict[str, str] = {}
        known = registry()
        for name in config.enabled_collectors():
            try:
                self.collectors[name] = known[name].factory(config.context, config.collectors[name])
            except Exception as exc:  # a broken collector must not stop the agent
                log.exception("collector failed to start", extra={"collector": name})
                self._broken[name] = f"failed to start: {exc}"
        self._running: dict[str, tuple[Future[tuple[Any, float]], float]] = {}
        self._last_start: dict[str, float] = {}
        self._last_report: dict[str, CollectorReport] = {}
        self._log = LogOnce(log)

    def collect(self) -> NodeSample:
        """One cycle: start every idle collector, wait up to the timeout, report all."""
        now = time.time()
        for name, collector in self.collectors.items():
            if name not in self._running and self._due(name, now):
                self._running[name] = (_start(collector, now), now)
                self._last_start[name] = now
        timeout = self.config.agent.collector_timeout_seconds
        wait([f for f, _ in self._running.values()], timeout=timeout)
        reports: dict[str, CollectorReport] = {}
        for name in self.config.enabled_collectors():
            reports[name] = self._report(name)
        return NodeSample(self.config.node_id, now, reports)

    def _due(self, name: str, now: float) -> bool:
        """Whether a collector with its own interval_seconds should run this cycle.

        Half an agent interval of slack, so a 60 s collector on a 10 s loop runs every
        sixth cycle even when cycles start a few milliseconds early.
        """
        interval = self.config.collectors[name].interval_seconds
        last = self._last_start.get(name)
        if interval is None or last is None:
            return True
        return now - last >= interval - self.config.agent.interval_seconds / 2

    def _report(self, name: str) -> CollectorReport:
        if name in self._broken:
            return CollectorReport(name, False, None, self._broken[name], None)
        if name not in self._running:
            return self._last_report[name]  # not due this cycle: the last reading stands
        report = self._finish(name)
        if report.ok:
            self._last_report[name] = report
        else:
            self._last_report.pop(name, None)
            self._last_start.pop(name, None)  # retry a failed collector next cycle
        return report

    def _finish(self, name: str) -> CollectorReport:
        future, started = self._running[name]
        if not future.done():
            stuck_for = time.time() - started
            self._log.problem(
                name,
                logging.ERROR,
                "collector timed out",
                collector=name,
                running_seconds=round(stuck_for, 1),
            )
            COLLECTOR_RUNS.labels(name, "timeout").inc()
            COLLECTOR_SUCCESS.labels(name).set(0)
            return CollectorReport(
                name,
                False,
                None,
                f"timed out: still running after {stuck_for:.1f} s",
                None,
            )
        del self._running[name]
        try:
            data, duration = future.result()
        except Exception as exc:
            self._log.problem(
                name,
                logging.ERROR,
                "collector failed",
                collector=name,
                error=f"{type(exc).__name__}: {exc}",
            )
            COLLECTOR_RUNS.labels(name, "error").inc()
            COLLECTOR_SUCCESS.labels(name).set(0)
            return CollectorReport(name, False, None, f"{type(exc).__name__}: {exc}", None)
        self._log.recovered(name, "collector works again", collector=name)
        COLLECTOR_RUNS.labels(name, "ok").inc()
        COLLECTOR_SUCCESS.labels(name).set(1)
        COLLECTOR_DURATION.labels(name).set(duration)
        return CollectorReport(name, True, duration, None, data, collected_at_seconds=started)

    def close(self) -> None:
        for name, collector in self.collectors.items():
            try:
                collector.close()
            except Exception:
                log.exception("collector failed to close", extra={"collector": name})


def _start(collector: Collector[Any], now: float) -> Future[tuple[Any, float]]:
    """Run ``collector.collect`` in a daemon thread, timing it."""

    def timed() -> tuple[Any, float]:
        began = time.perf_counter()
        return collector.collect(now), time.perf_counter() - began

    return start_in_thread(timed, f"collector-{collector.name}")
