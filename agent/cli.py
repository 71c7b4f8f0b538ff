"""``novacron-agent``: the hypervisor agent's command line.

``collect`` runs the collectors (once with ``--once``) and prints a summary table or,
with ``--json``, the full typed sample; ``inventory`` prints the static inventory;
``health`` asks the running agent on its health socket; ``run`` is the daemon
(:mod:`novacron.agent.daemon`).
The flags override the config file, so the same binary runs against fixture roots.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from novacron.agent.collectors.base import registry
from novacron.agent.config import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_HEALTH_SOCKET,
    AgentConfig,
    load_config,
    render_config,
    with_overrides,
)
from novacron.agent.daemon import DaemonConfigError, RunFlags, run_daemon, with_run_flags
from novacron.agent.health_client import (
    DEFAULT_TIMEOUT_SECONDS,
    HealthQueryError,
    fetch_node_health,
    health_json,
    render_health,
)
from novacron.agent.intelligence import NodeIntelligence
from novacron.agent.runner import CollectionRunner
from novacron.agent.sample import NodeSample, to_jsonable
from novacron.agent.scores_view import render_scores
from novacron.agent.scoring import NodeScores
from novacron.protos import __version__
from novacron.protos.runtime.jsonlog import configure_logging
from novacron.protos.runtime.tomlconfig import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="novacron-agent",
        description="NovaCron AIOps hypervisor agent: hardware telemetry, features, scores.",
    )
    parser.add_argument("--version", action="version", version=f"novacron-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"agent config file (default {DEFAULT_CONFIG_PATH} if it exists)",
    )
    common.add_argument("--sysfs-root", type=Path, help="read sysfs from here instead of /sys")
    common.add_argument("--procfs-root", type=Path, help="read procfs from here instead of /proc")
    common.add_argument("--smartctl", metavar="PATH", help="smartctl executable to run")
    common.add_argument("--libvirt-uri", metavar="URI", help="libvirt URI, e.g. test:///default")
    common.add_argument(
        "--collectors", metavar="A,B", help="run only these collectors (comma-separated names)"
    )
    common.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="override the config's log level",
    )

    collect = sub.add_parser(
        "collect",
        parents=[common],
        help="collect telemetry and print it",
        description="Run the enabled collectors and print what they read.",
    )
    collect.add_argument("--once", action="store_true", help="collect one sample and exit")
    collect.add_argument(
        "--json", action="store_true", help="print the full typed sample as one JSON object"
    )
    collect.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="restore feature windows from DIR before collecting and save them after, "
        "so repeated --once runs build history (default: windows in memory only)",
    )

    inventory = sub.add_parser(
        "inventory",
        parents=[common],
        help="print the static inventory",
        description="Print CPU model, flags, topology and NUMA layout.",
    )
    inventory.add_argument("--json", action="store_true", help="print JSON")

    sub.add_parser(
        "config",
        parents=[common],
        help="print the effective configuration as TOML",
        description="Validate the config file and flags, then print every setting with "
        "its effective value (a complete, valid agent.toml).",
    )

    run = sub.add_parser(
        "run",
        parents=[common],
        help="run the agent: collect, score, spool and stream to the coordinator",
        description="Run the agent daemon: collect every interval, score, store each frame "
        "in the local spool and stream the spool to the coordinator (mutual TLS unless "
        "--insecure). SIGTERM/SIGINT stop it gracefully (exit 0), SIGHUP reloads the config.",
    )
    run.add_argument(
        "--coordinator", metavar="HOST:PORT", help="coordinator address ([coordinator] address)"
    )
    run.add_argument("--node-id", metavar="ID", help="this node's id ([agent] node_id)")
    run.add_argument(
        "--interval",
        type=_positive_seconds,
        metavar="SECONDS",
        help="collection interval ([agent] interval_seconds)",
    )
    run.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="spool, feature windows and accepted models live here ([agent] state_dir)",
    )
    run.add_argument(
        "--insecure",
        action="store_true",
        help="plaintext to the coordinator, no certificates (tests and loopback demos only)",
    )
    run.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics",
    )

    health = sub.add_parser(
        "health",
        parents=[common],
        help="ask the running agent for its node's health",
        description="Query the running agent on its health socket and print the node's "
        "status, failure risk, anomalies, collectors, spool and coordinator link. Exit "
        f"status {EXIT_UNREACHABLE} when the agent cannot be reached.",
    )
    health.add_argument(
        "--socket",
        type=Path,
        metavar="PATH",
        help=f"the agent's health socket (default: [health] socket_path, {DEFAULT_HEALTH_SOCKET})",
    )
    health.add_argument("--json", action="store_true", help="print the answer as one JSON object")
    health.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"give up when the agent has not answered by then "
        f"(default {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    return parser


# ``health`` could not get an answer (no socket, dead agent, deadline passed).
EXIT_UNREACHABLE = 3


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def config_from_args(args: argparse.Namespace) -> AgentConfig:
    config = load_config(args.config)
    settings: dict[str, dict[str, Any]] = {}
    if args.smartctl:
        settings["smart"] = {"smartctl_path": args.smartctl}
    if args.libvirt_uri:
        settings["libvirt"] = {"uri": args.libvirt_uri}
    only = [c.strip() for c in args.collectors.split(",") if c.strip()] if args.collectors else None
    return with_overrides(
        config,
        sysfs_root=args.sysfs_root,
        procfs_root=args.procfs_root,
        only_collectors=only,
        collector_settings=settings,
    )


def render_summary(sample: NodeSample) -> str:
    """A readable table: one block per collector, status and duration, then its lines."""
    known = registry()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(sample.timestamp_seconds))
    lines = [f"node {sample.node_id}  {stamp}", ""]
    lines.append(f"{'COLLECTOR':<10} {'STATUS':<8} {'DURATION':>10}")
    for name, report in sample.reports.items():
        took = (
            f"{report.duration_seconds * 1000:.1f} ms"
            if report.duration_seconds is not None
            else "-"
        )
        lines.append(f"{name:<10} {'ok' if report.ok else 'FAILED':<8} {took:>10}")
    for name, report in sample.reports.items():
        lines.append("")
        lines.append(f"== {name}")
        if not report.ok:
            lines.append(f"  error: {report.error}")
            continue
        lines.extend(f"  {line}" for line in known[name].factory.summarize(report.data))  # type: ignore[attr-defined]
    return "\n".join(lines)


def render_output(sample: NodeSample, scores: NodeScores | None, *, as_json: bool) -> str:
    """One cycle as printed: JSON with a top-level ``scores`` key, or the table."""
    if as_json:
        document = sample.to_json_dict()
        document["scores"] = to_jsonable(scores)
        return json.dumps(document, sort_keys=False)
    return "\n".join([render_summary(sample), "", "== scores", *_indent(render_scores(scores))])


def _indent(lines: list[str]) -> list[str]:
    return [f"  {line}" for line in lines]


def cmd_collect(args: argparse.Namespace, config: AgentConfig) -> int:
    runner = CollectionRunner(config)
    interval = config.agent.interval_seconds
    try:
        intelligence = NodeIntelligence(config, state_dir=args.state_dir)
        intelligence.restore(time.time())
        next_cycle = time.monotonic()
        while True:
            sample = runner.collect()
            scores = intelligence.observe(sample)
            intelligence.save(sample.timestamp_seconds)
            print(render_output(sample, scores, as_json=args.json), flush=True)
            if args.once:
                return 0
            # Fixed rate, not fixed delay: a slow cycle does not shift the next one, and
            # a cycle longer than the interval starts the next one at once.
            next_cycle = max(next_cycle + interval, time.monotonic())
            time.sleep(max(0.0, next_cycle - time.monotonic()))
    except KeyboardInterrupt:
        return 130
    finally:
        runner.close()


def cmd_inventory(args: argparse.Namespace, config: AgentConfig) -> int:
    config = with_overrides(config, only_collectors=["cpuinfo"])
    runner = CollectionRunner(config)
    try:
        sample = runner.collect()
    finally:
        runner.close()
    report = sample.reports["cpuinfo"]
    if args.json:
        print(json.dumps(sample.to_json_dict()["cpuinfo"]))
    elif report.ok:
        print("\n".join(registry()["cpuinfo"].factory.summarize(report.data)))  # type: ignore[attr-defined]
    else:
        print(f"inventory failed: {report.error}", file=sys.stderr)
    return 0 if report.ok else 1


def cmd_health(args: argparse.Namespace, config: AgentConfig) -> int:
    socket_path = args.socket or config.health.socket_path
    try:
        node = fetch_node_health(socket_path, timeout_seconds=args.timeout)
    except HealthQueryError as exc:
        print(f"novacron-agent: health: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    print(health_json(node) if args.json else render_health(node))
    return 0


def run_config(args: argparse.Namespace) -> AgentConfig:
    """The config file with the collect flags and ``run``'s own flags applied."""
    return with_run_flags(
        config_from_args(args),
        RunFlags(
            coordinator=args.coordinator,
            node_id=args.node_id,
            interval_seconds=args.interval,
            state_dir=args.state_dir,
            insecure=args.insecure,
            log_level=args.log_level,
        ),
    )


def cmd_run(args: argparse.Namespace) -> int:
    try:
        config = run_config(args)
    except (ConfigError, DaemonConfigError) as exc:
        print(f"novacron-agent: config error: {exc}", file=sys.stderr)
        return 2
    return run_daemon(
        config, reload_config=lambda: run_config(args), metrics_listen=args.metrics_listen
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"novacron-agent: config error: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.log_level or config.agent.log_level)
    if args.command == "collect":
        return cmd_collect(args, config)
    if args.command == "config":
        print(render_config(config), end="")
        return 0
    if args.command == "health":
        return cmd_health(args, config)
    if args.command == "run":
        return cmd_run(args)
    return cmd_inventory(args, config)


if __name__ == "__main__":
    sys.exit(main())
