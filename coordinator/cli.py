"""``novacron-coordinator``: the central service's command line.

Sub-commands (``run``, ``fleet``, ``place``, ``plans``, ...) arrive with the
capabilities that own them; this entry point already gives ``--version`` and ``--help``
so packaging and service units can rely on the script existing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from novacron.protos import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="novacron-coordinator",
        description="NovaCron AIOps coordinator: ingest, store, placement, remediation.",
    )
    parser.add_argument(
        "--version", action="version", version=f"novacron-coordinator {__version__}"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    build_parser().parse_args(argv)
    build_parser().print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
