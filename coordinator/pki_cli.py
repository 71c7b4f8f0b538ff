"""``novacron-coordinator pki ...``: create the fleet's CA, certificates and signing key.

``pki init`` makes a complete PKI directory in one step (CA, coordinator server
certificate, model-signing key), enough for ``make demo`` or a first install;
``pki issue-agent`` adds one agent's certificate, ``pki issue-client`` one API client's
(the scheduler) and ``pki issue-server`` re-issues the server's (rotation, new host
names). The layout is described in ``docs/security.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from novacron.coordinator.pki import (
    AGENTS_DIR,
    CA_DAYS,
    CLIENTS_DIR,
    LEAF_DAYS,
    SIGNING_KEY,
    CertFiles,
    PkiError,
    PkiFileExists,
    ca_in,
    init_pki,
    issue_agent,
    issue_client,
    issue_server,
)
from novacron.models.signing import key_id

DEFAULT_HOSTS = "localhost,127.0.0.1"


def add_pki_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``pki`` command (``init``, ``issue-agent``, ``issue-client``, ``issue-server``).

    Each leaf parser sets ``pki_handler``; :func:`run_pki` dispatches on it.
    """
    pki = subparsers.add_parser(
        "pki",
        help="create the CA, certificates and model-signing key",
        description="Manage the private PKI: mutual TLS between agents and coordinator, "
        "and the Ed25519 key that signs models.",
    )
    commands = pki.add_subparsers(dest="pki_command", required=True, metavar="PKI_COMMAND")

    init = commands.add_parser(
        "init",
        help="create a CA, the coordinator's server certificate and a model-signing key",
        description="Create DIR/ca.crt, DIR/ca.key, DIR/server.crt, DIR/server.key, "
        f"DIR/{SIGNING_KEY} and its .pub. Refuses to replace existing files without --force.",
    )
    _add_dir(init)
    init.add_argument("--hosts", default=DEFAULT_HOSTS, help=_HOSTS_HELP)
    init.add_argument("--ca-name", default="NovaCron fleet CA", help="the CA's common name")
    init.add_argument(
        "--ca-days", type=int, default=CA_DAYS, help=f"CA lifetime (default {CA_DAYS})"
    )
    _add_leaf_options(init)
    init.set_defaults(pki_handler=_cmd_init)

    agent = commands.add_parser(
        "issue-agent",
        help="issue an agent's client certificate bound to its node id",
        description=f"Write DIR/{AGENTS_DIR}/NODE_ID.crt and .key, signed by DIR's CA.",
    )
    _add_dir(agent)
    agent.add_argument("--node-id", required=True, help="the agent's node id (its host name)")
    _add_leaf_options(agent)
    agent.set_defaults(pki_handler=_cmd_issue_agent)

    client = commands.add_parser(
        "issue-client",
        help="issue an API client certificate (the scheduler, an operator's CLI)",
        description=f"Write DIR/{CLIENTS_DIR}/NAME.crt and .key, signed by DIR's CA; the "
        "scheduler API ([api] listen) accepts only such certificates.",
    )
    _add_dir(client)
    client.add_argument("--name", required=True, help="the client's name, e.g. scheduler")
    _add_leaf_options(client)
    client.set_defaults(pki_handler=_cmd_issue_client)

    server = commands.add_parser(
        "issue-server",
        help="(re-)issue the coordinator's server certificate",
        description="Write DIR/server.crt and DIR/server.key, signed by DIR's CA.",
    )
    _add_dir(server)
    server.add_argument("--hosts", default=DEFAULT_HOSTS, help=_HOSTS_HELP)
    _add_leaf_options(server)
    server.set_defaults(pki_handler=_cmd_issue_server)


def run_pki(args: argparse.Namespace) -> int:
    """Run the parsed ``pki`` sub-command: 0 on success, 1 with a message on stderr."""
    try:
        code: int = args.pki_handler(args)
    except PkiFileExists as exc:
        print(f"novacron-coordinator pki: {exc} (pass --force to replace)", file=sys.stderr)
        return 1
    except PkiError as exc:
        print(f"novacron-coordinator pki: {exc}", file=sys.stderr)
        return 1
    return code


_HOSTS_HELP = (
    "comma-separated DNS names and IP addresses agents use to reach the coordinator "
    f"(default {DEFAULT_HOSTS})"
)


def _add_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, required=True, help="the PKI directory")


def _add_leaf_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--days",
        type=int,
        default=LEAF_DAYS,
        help=f"certificate lifetime (default {LEAF_DAYS})",
    )
    parser.add_argument("--force", action="store_true", help="replace existing files")


def _cmd_init(args: argparse.Namespace) -> int:
    layout = init_pki(
        args.dir,
        _hosts(args.hosts),
        ca_name=args.ca_name,
        ca_days=args.ca_days,
        days=args.days,
        overwrite=args.force,
    )
    _print("CA certificate", layout.ca.cert)
    _print("CA key", layout.ca.key)
    _print_leaf("server", layout.server)
    _print("model signing key", layout.signing_key)
    _print("model public key", layout.signing_public_key)
    _print("model key id", key_id(layout.signing_public_key))
    return 0


def _cmd_issue_agent(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    files = issue_agent(
        ca_in(directory),
        directory / AGENTS_DIR,
        args.node_id,
        days=args.days,
        overwrite=args.force,
    )
    _print_leaf(f"agent {args.node_id}", files)
    return 0


def _cmd_issue_client(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    files = issue_client(
        ca_in(directory), directory / CLIENTS_DIR, args.name, days=args.days, overwrite=args.force
    )
    _print_leaf(f"client {args.name}", files)
    return 0


def _cmd_issue_server(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    files = issue_server(
        ca_in(directory),
        directory,
        _hosts(args.hosts),
        days=args.days,
        overwrite=args.force,
    )
    _print_leaf("server", files)
    return 0


def _print_leaf(label: str, files: CertFiles) -> None:
    _print(f"{label} certificate", files.cert)
    _print(f"{label} key", files.key)


def _print(label: str, value: object) -> None:
    print(f"{label:<19} {value}")


def _hosts(text: str) -> list[str]:
    hosts = [host.strip() for host in text.split(",") if host.strip()]
    if not hosts:
        raise PkiError("--hosts: give at least one DNS name or IP address")
    return hosts
