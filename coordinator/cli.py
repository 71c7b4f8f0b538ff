"""``novacron-coordinator``: the central service's command line.

One sub-command per capability, each a ``_add_<name>`` parser builder plus a
``cmd_<name>`` handler registered in :data:`COMMANDS`:

* ``fleet``: what the store holds per node (works while the coordinator runs, or after).
* ``run``: the service itself.
* ``pki``: a CA, server and agent certificates, the model signing key.

Exit status: 0 success, 1 the store could not be read now (locked, I/O error), 2 a
usage, config or missing-database error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from novacron.coordinator.config import DEFAULT_CONFIG_PATH, CoordinatorConfig, load_config
from novacron.coordinator.fleet import liveness
from novacron.coordinator.optimization.recommend_cli import add_recommend_command, run_recommend
from novacron.coordinator.pki_cli import add_pki_commands, run_pki
from novacron.coordinator.placement.learn_cli import add_learn_command, run_learn
from novacron.coordinator.placement.place_cli import add_place_command, cmd_place
from novacron.coordinator.placement.settings import PlacementSettings
from novacron.coordinator.placement.simulate_cli import add_simulate_command, run_simulate
from novacron.coordinator.run_cli import add_run_command, cmd_run
from novacron.coordinator.store import NodeSummary, StoreError, StoreUnavailable
from novacron.coordinator.store_sqlite import SqliteStore
from novacron.protos import __version__
from novacron.protos.runtime.tomlconfig import ConfigError

PROG = "novacron-coordinator"
EXIT_UNAVAILABLE = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="NovaCron AIOps coordinator: ingest, store, placement, remediation.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_run_command(sub)
    _add_fleet(sub)
    add_pki_commands(sub)
    _config_option(add_simulate_command(sub))
    _config_option(add_learn_command(sub))
    _config_option(add_place_command(sub))
    _config_option(add_recommend_command(sub))
    return parser


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"coordinator config file (default {DEFAULT_CONFIG_PATH} if it exists)",
    )


# ---------------------------------------------------------------------- fleet


def _add_fleet(sub: Any) -> None:
    fleet = sub.add_parser(
        "fleet",
        help="show what the store holds per node",
        description="Per node: status, last frame received, frames stored, lowest and "
        "highest sequence number and the number of sequence gaps. Reads the database "
        "read-only, so it is safe while the coordinator runs.",
    )
    fleet.add_argument(
        "--db", type=Path, metavar="PATH", help="coordinator database (default: the config's)"
    )
    fleet.add_argument("--json", action="store_true", help="print one JSON object")
    _config_option(fleet)


def cmd_fleet(args: argparse.Namespace, config: CoordinatorConfig) -> int:
    db_path: Path = args.db or config.coordinator.db_path
    try:
        store = SqliteStore.open_readonly(
            db_path, busy_timeout_seconds=config.store.busy_timeout_seconds
        )
    except StoreError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        nodes = store.node_summary()
    except StoreUnavailable as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    finally:
        store.close()
    now = time.time()
    rows = [_fleet_row(node, now, config) for node in nodes]
    if args.json:
        print(json.dumps({"db": str(db_path), "generated_at": _iso(now), "nodes": rows}))
    else:
        print(render_fleet(rows))
    return 0


def _fleet_row(node: NodeSummary, now: float, config: CoordinatorConfig) -> dict[str, Any]:
    settings = config.coordinator
    status = liveness(
        node.last_seen_seconds,
        now,
        stale_after_seconds=settings.stale_after_seconds,
        unknown_after_seconds=settings.unknown_after_seconds,
    )
    return {
        "node_id": node.node_id,
        "status": status.label,
        "connection": node.connection,
        "last_seen": None if node.last_seen_seconds is None else _iso(node.last_seen_seconds),
        "last_seen_seconds": node.last_seen_seconds,
        "frames_stored": node.frames_stored,
        "lowest_seq": node.lowest_seq,
        "highest_seq": node.highest_seq,
        "gaps": node.gaps,
        "missing_frames": node.missing_frames,
        "acked_seq": node.acked_seq,
    }


_COLUMNS = (
    ("NODE", "node_id"),
    ("STATUS", "status"),
    ("LAST SEEN", "last_seen"),
    ("FRAMES", "frames_stored"),
    ("LOWEST", "lowest_seq"),
    ("HIGHEST", "highest_seq"),
    ("GAPS", "gaps"),
)


def render_fleet(rows: Sequence[dict[str, Any]]) -> str:
    """The fleet as an aligned text table (numbers right-aligned, ``-`` for none)."""
    if not rows:
        return "no nodes in the store"
    cells = [[h for h, _ in _COLUMNS]]
    cells += [["-" if row[key] is None else str(row[key]) for _, key in _COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
    numeric = {
        i for i, (_, key) in enumerate(_COLUMNS) if key not in {"node_id", "status", "last_seen"}
    }
    lines = [
        "  ".join(
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ).rstrip()
        for line in cells
    ]
    return "\n".join(lines)


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


# ---------------------------------------------------------------------- simulate


def _placement_settings(config: CoordinatorConfig) -> PlacementSettings:
    """The config's ``[placement]`` section (the defaults while the config has none)."""
    settings = getattr(config, "placement", None)
    return settings if isinstance(settings, PlacementSettings) else PlacementSettings()


def cmd_simulate(args: argparse.Namespace, config: CoordinatorConfig) -> int:
    return run_simulate(args, _placement_settings(config))


def cmd_learn_weights(args: argparse.Namespace, config: CoordinatorConfig) -> int:
    return run_learn(args, _placement_settings(config), args.db or config.coordinator.db_path)


# ---------------------------------------------------------------------- main

COMMANDS: dict[str, Callable[[argparse.Namespace, CoordinatorConfig], int]] = {
    "fleet": cmd_fleet,
    "run": cmd_run,
    "simulate": cmd_simulate,
    "learn-weights": cmd_learn_weights,
    "place": lambda args, config: cmd_place(args),  # needs no coordinator config
    "recommend": lambda args, config: run_recommend(args),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "pki":  # certificates and keys: no coordinator config involved
        return run_pki(args)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"{PROG}: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return COMMANDS[args.command](args, config)


if __name__ == "__main__":
    sys.exit(main())
