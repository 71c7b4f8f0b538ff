"""``novacron-coordinator learn-weights``: learn factor weights from stored outcomes.

    novacron-coordinator learn-weights --db PATH [--json] [--apply FILE] [--config FILE]

Reads ``placement_decisions`` and ``placement_outcomes`` (:mod:`.outcomes`), fits and
evaluates weights as :mod:`.learn` describes, and prints both weight sets with their
held-out metrics. ``--apply FILE`` writes the learned weights as a ``[placement.weights]``
table to FILE only when they beat the configured ones; otherwise FILE is left alone.

Exit status: 0 the evaluation ran (whatever its verdict); 1 too few usable outcomes;
2 a usage, config or database error.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

from novacron.coordinator.placement.engine import Policy
from novacron.coordinator.placement.learn import (
    NotEnoughOutcomes,
    config_weights,
    learn_from_log,
    weights_toml,
)
from novacron.coordinator.placement.outcomes import OutcomeLog
from novacron.coordinator.placement.settings import PlacementSettings

PROG = "novacron-coordinator learn-weights"
EXIT_NOT_ENOUGH = 1
EXIT_USAGE = 2


def add_learn_command(subparsers: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    """Add ``learn-weights``; the caller adds its shared options (``--config``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "learn-weights",
        help="learn placement factor weights from reported outcomes",
        description="Fit per-factor weights on the earlier stored outcomes, compare them "
        "with the configured weights on the later ones (log-loss, pairwise accuracy, top-1 "
        "agreement) and recommend them only if they reliably do better.",
    )
    parser.add_argument(
        "--db", type=Path, metavar="PATH", help="coordinator database (default: the config's)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--apply",
        type=Path,
        metavar="FILE",
        help="write the learned weights as [placement.weights] to FILE if they win",
    )
    return parser


def run_learn(args: argparse.Namespace, settings: PlacementSettings, db_path: Path) -> int:
    if not db_path.exists():
        print(f"{PROG}: {db_path}: no such database", file=sys.stderr)
        return EXIT_USAGE
    policy = Policy.from_settings(settings)
    try:
        log = OutcomeLog(db_path)
    except sqlite3.Error as exc:
        print(f"{PROG}: {db_path}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result, data = learn_from_log(log, policy)
    except NotEnoughOutcomes as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_NOT_ENOUGH
    finally:
        log.close()
    weights = config_weights(result, policy)
    applied = False
    if args.apply is not None and result.beats_default:
        args.apply.write_text(weights_toml(weights, result))
        applied = True
    if args.json:
        document = result.as_dict() | {
            "config_weights": weights,
            "skipped_outcomes": data.skipped,
            "applied_to": str(args.apply) if applied else None,
        }
        print(json.dumps(document))
        return 0
    print(result.verdict)
    print(
        f"{result.train_outcomes} training and {result.test_outcomes} held-out outcomes "
        f"(success rate {result.train_success_rate:.2f} / {result.test_success_rate:.2f}; "
        f"{data.skipped} skipped: host not among the stored candidates)"
    )
    print(f"{'metric (held out)':<22}{'default':>10}{'learned':>10}")
    for name in ("log_loss", "pairwise_accuracy", "top1_agreement"):
        values = [getattr(m, name) for m in (result.default_metrics, result.learned_metrics)]
        print(
            f"{name:<22}" + "".join("-".rjust(10) if v is None else f"{v:>10.4f}" for v in values)
        )
    print(f"\n{'factor':<36}{'default':>10}{'learned':>10}")
    for factor_id in result.factor_ids:
        print(
            f"{factor_id:<36}{result.default_weights[factor_id]:>10.3f}"
            f"{result.learned_weights[factor_id]:>10.3f}"
        )
    if applied:
        print(f"\nwrote [placement.weights] to {args.apply}")
    elif args.apply is not None:
        print(f"\n{args.apply} not written: the learned weights did not beat the defaults")
    return 0
