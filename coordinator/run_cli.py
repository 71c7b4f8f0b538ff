"""``novacron-coordinator run``: start the coordinator service (stable flags).

``--listen``, ``--db``, ``--insecure``, ``--metrics-listen`` and ``--config`` are an
interface that operators and external checks drive; the flags win over the config file.
Flags are only ever added (``--ingest-workers``), never changed.
Exit status: 0 after a graceful stop (SIGTERM, SIGINT); 2 for a configuration problem
(the message names the file and the key, or the TLS / signing-key file); 1 when the
service cannot start for another reason (database unusable, address in use).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from novacron.coordinator.config import DEFAULT_CONFIG_PATH, CoordinatorConfig, with_overrides
from novacron.coordinator.server import ServiceStartError, run_coordinator
from novacron.coordinator.store import StoreError
from novacron.models.signing import ModelSignatureError
from novacron.protos.runtime.jsonlog import configure_logging
from novacron.protos.runtime.tls import TlsConfigError
from novacron.protos.runtime.tomlconfig import ConfigError

log = logging.getLogger(__name__)

EXIT_CONFIG = 2
EXIT_START_FAILED = 1


def add_run_command(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``run`` command; :func:`cmd_run` executes it."""
    run = subparsers.add_parser(
        "run",
        help="serve agents' telemetry streams and store the fleet",
        description="Run the coordinator: gRPC ingest of agent streams (mutual TLS unless "
        "--insecure), batched durable writes to the store, Prometheus metrics. Stops "
        "gracefully on SIGTERM or SIGINT.",
    )
    run.add_argument(
        "--listen", metavar="HOST:PORT", help="address agents connect to ([coordinator] listen)"
    )
    run.add_argument(
        "--db", type=Path, metavar="PATH", help="store database ([coordinator] db_path)"
    )
    run.add_argument(
        "--insecure",
        action="store_true",
        default=None,
        help="plaintext gRPC, node ids taken from Hello unauthenticated (tests, demos on "
        "loopback only)",
    )
    run.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help="address of the Prometheus /metrics endpoint ([coordinator] metrics_listen)",
    )
    run.add_argument(
        "--api-listen",
        metavar="HOST:PORT",
        help="address of the scheduler API: placement ([api] listen)",
    )
    run.add_argument(
        "--ingest-workers",
        type=int,
        metavar="N",
        help="processes serving the agent port; 0: one per CPU (at most 4), 1: this "
        "process only ([ingest] workers)",
    )
    run.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"coordinator config file (default {DEFAULT_CONFIG_PATH} if it exists)",
    )
    run.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="override the config's log level",
    )


def cmd_run(args: argparse.Namespace, config: CoordinatorConfig) -> int:
    """Run the service with ``config`` (the loaded ``--config`` file) and the flags."""
    try:
        config = with_overrides(
            config,
            listen=args.listen,
            db_path=args.db,
            insecure=args.insecure,
            metrics_listen=args.metrics_listen,
            log_level=args.log_level,
            ingest_workers=args.ingest_workers,
            api_listen=args.api_listen,
        )
    except ConfigError as exc:
        print(f"novacron-coordinator: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(config.coordinator.log_level)
    try:
        run_coordinator(config)
    except (TlsConfigError, ModelSignatureError) as exc:
        return _fail(EXIT_CONFIG, "configuration error", exc)
    except (StoreError, ServiceStartError) as exc:
        return _fail(EXIT_START_FAILED, "cannot start", exc)
    return 0


def _fail(status: int, what: str, exc: Exception) -> int:
    log.error(f"coordinator {what}", extra={"error": str(exc)})
    print(f"novacron-coordinator: {exc}", file=sys.stderr)
    return status
