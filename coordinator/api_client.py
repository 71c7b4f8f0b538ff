"""What every operator command that talks to the coordinator's API shares.

``place``, ``recommend`` and later API clients take the same connection options
(``--api``, ``--insecure`` or ``--ca/--cert/--key`` for mutual TLS with an API client
certificate from ``pki issue-client``, ``--timeout``), stamp the same request header,
and report a failed call the same way: exit 2 when the API said the request itself
was wrong, exit 1 when the API could not be reached or failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from novacron.protos import CONTRACT_MINOR_VERSION, __version__, common_pb2
from novacron.protos.runtime.tls import channel_credentials

EXIT_UNAVAILABLE = 1
EXIT_USAGE = 2
DEFAULT_TIMEOUT_SECONDS = 5.0
# Codes that mean "your request is wrong", not "the service is unwell".
_CALLER_ERRORS = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)


class UsageError(Exception):
    """A command line that cannot be turned into a request (exit 2)."""


def add_api_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", required=True, metavar="HOST:PORT", help="the [api] address")
    parser.add_argument("--insecure", action="store_true", help="plaintext (tests, demos)")
    parser.add_argument("--ca", type=Path, help="CA certificate (mTLS)")
    parser.add_argument("--cert", type=Path, help="API client certificate (pki issue-client)")
    parser.add_argument("--key", type=Path, help="its private key")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help=f"deadline in seconds (default {DEFAULT_TIMEOUT_SECONDS:g})",
    )


def open_channel(args: argparse.Namespace) -> grpc.Channel:
    """A channel to ``--api``; UsageError (or TlsConfigError) when the options do not add up."""
    if args.insecure:
        return grpc.insecure_channel(args.api)
    if not (args.ca and args.cert and args.key):
        raise UsageError("give --ca, --cert and --key (mutual TLS), or --insecure")
    return grpc.secure_channel(args.api, channel_credentials(args.ca, args.cert, args.key))


def request_header(client: str, request_id: str = "") -> common_pb2.RequestHeader:
    return common_pb2.RequestHeader(
        contract_minor_version=CONTRACT_MINOR_VERSION,
        request_id=request_id,
        client=f"{client}/{__version__}",
    )


def report_rpc_error(prog: str, api: str, exc: grpc.RpcError) -> int:
    """Print one line naming the API and the status; the exit code for it."""
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    print(f"{prog}: {api}: {code.name if code else 'error'}: {details}", file=sys.stderr)
    return EXIT_USAGE if code in _CALLER_ERRORS else EXIT_UNAVAILABLE


def message_json(message: Any) -> str:
    return json.dumps(MessageToDict(message, preserving_proto_field_name=True), indent=2)
