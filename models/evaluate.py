"""``python -m novacron.models.evaluate DATASET --data DIR [--json] [--predictions-out FILE]``

Evaluates the shipped models on any directory laid out like the public sets in
``../shared/data/`` and prints the metrics; ``--predictions-out`` writes every row's
score and flag as CSV (``series_or_serial, timestamp_or_date, score, flag``) so an
external scorer can re-score them. Each dataset is one module in
:mod:`novacron.models.evaluation` exposing ``MODEL_NAME`` (the shipped model ``--card``
defaults to), ``add_arguments(parser)`` for its own options and ``run(args)``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

DATASETS = {
    "disk-backblaze": (
        "novacron.models.evaluation.disk_backblaze",
        "disk failure model on Backblaze Drive Stats CSVs",
    ),
    "nab": (
        "novacron.models.evaluation.nab",
        "anomaly detection on Numenta Anomaly Benchmark series + combined_windows.json",
    ),
}


def build_parser(dataset: str | None = None) -> argparse.ArgumentParser:
    """The command line; only ``dataset``'s own module is imported (for its arguments),
    so a broken or missing evaluator cannot take the others down with it."""
    parser = argparse.ArgumentParser(
        prog="python -m novacron.models.evaluate",
        description="Evaluate the shipped models on labelled public data.",
    )
    sub = parser.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    for name, (module_name, help_text) in DATASETS.items():
        full = name == dataset
        p = sub.add_parser(name, help=help_text, add_help=full)
        p.add_argument("--data", required=full, help="directory laid out like ../shared/data/...")
        p.add_argument("--json", action="store_true", help="print machine-readable JSON")
        p.add_argument(
            "--predictions-out",
            metavar="FILE",
            help="write series_or_serial,timestamp_or_date,score,flag per row",
        )
        if full:
            module = importlib.import_module(module_name)
            p.description = module.__doc__
            p.add_argument(
                "--card",
                type=Path,
                default=None,
                help=f"model card to evaluate (default: the shipped {module.MODEL_NAME})",
            )
            module.add_arguments(p)
            p.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    chosen, _ = build_parser().parse_known_args(arguments)
    args = build_parser(chosen.dataset).parse_args(arguments)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
