"""Prometheus metrics of the agent itself (exposed by the daemon's /metrics)."""

from prometheus_client import Counter, Gauge

COLLECTOR_DURATION = Gauge(
    "novacron_agent_collector_duration_seconds",
    "Wall time of the collector's last finished run.",
    ["collector"],
)
COLLECTOR_SUCCESS = Gauge(
    "novacron_agent_collector_last_success",
    "1 if the collector's last run succeeded, 0 if it failed or timed out.",
    ["collector"],
)
COLLECTOR_RUNS = Counter(
    "novacron_agent_collector_runs",
    "Collector runs by result (ok, error, timeout).",
    ["collector", "result"],
)
