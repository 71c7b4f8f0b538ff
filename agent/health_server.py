"""The agent's node-health server: gRPC on a local Unix socket.

Serves three things on one socket (default ``/run/novacron-agent/agent.sock``):

* ``novacron.v1.HealthService`` (``health.proto``): this node's health, read from the
  daemon's :class:`~novacron.agent.health_report.HealthState`;
* the standard ``grpc.health.v1.Health`` service, SERVING per service name while the
  agent runs, NOT_SERVING once it stops;
* server reflection, so ``grpcurl -unix -plaintext /run/novacron-agent/agent.sock list``
  works without the ``.proto`` files.

Why a Unix socket: only local users may ask, and file permissions decide which ones.
The socket gets mode 0660 and the configured group; a parent directory the server has to
create gets mode 0750 and the same group, so nobody outside the group can reach the
socket even in the instant between gRPC creating it and the chmod. A socket file left
by a dead agent is replaced; a live agent's socket, or anything that is not a socket,
is never removed. The servicer is thin: it takes a snapshot and calls the builders of
:mod:`novacron.agent.health_report`.
"""

from __future__ import annotations

import errno
import grp
import logging
import os
import socket
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from grpc_health.v1 import health as grpc_health
from grpc_health.v1 import health_pb2 as grpc_health_pb2
from grpc_health.v1 import health_pb2_grpc as grpc_health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from novacron.agent.config import MAX_UNIX_SOCKET_PATH_BYTES, HealthSettings
from novacron.agent.health_report import (
    HealthState,
    PageTokenError,
    build_get_node_health_response,
    build_list_anomalies_response,
    build_list_predictions_response,
)
from novacron.protos import health_pb2, health_pb2_grpc
from novacron.protos.runtime.jsonlog import LogOnce

log = logging.getLogger(__name__)
# Per process, not per server: a reload (SIGHUP) that restarts the server does not
# repeat the same warning.
_log_once = LogOnce(log)

HEALTH_SERVICE_NAME: str = health_pb2.DESCRIPTOR.services_by_name["HealthService"].full_name
GRPC_HEALTH_SERVICE_NAME: str = grpc_health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
SOCKET_MODE = 0o660
SOCKET_DIR_MODE = 0o750
DEFAULT_GRACE_SECONDS = 1.0
# How long to wait for an old socket's owner to accept before calling the socket stale.
_PROBE_TIMEOUT_SECONDS = 0.5
_MAX_WORKERS = 4


class HealthServerError(Exception):
    """The health socket cannot be served (path taken, not creatable, bind failed)."""


class NodeHealthServicer(health_pb2_grpc.HealthServiceServicer):
    """``HealthService`` for the agent's own node (thin: the builders do the work)."""

    def __init__(self, state: HealthState) -> None:
        self._state = state

    def GetNodeHealth(
        self, request: health_pb2.GetNodeHealthRequest, context: grpc.ServicerContext
    ) -> health_pb2.GetNodeHealthResponse:
        snapshot = self._state.snapshot()
        if request.node.host and request.node.host != snapshot.node_id:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"this agent reports on node {snapshot.node_id!r}, not {request.node.host!r}",
            )
        return build_get_node_health_response(snapshot, request.header.request_id)

    def ListPredictions(
        self, request: health_pb2.ListPredictionsRequest, context: grpc.ServicerContext
    ) -> health_pb2.ListPredictionsResponse:
        try:
            return build_list_predictions_response(self._state.snapshot(), request)
        except PageTokenError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise  # abort raises; this line only tells the type checker

    def ListAnomalies(
        self, request: health_pb2.ListAnomaliesRequest, context: grpc.ServicerContext
    ) -> health_pb2.ListAnomaliesResponse:
        try:
            return build_list_anomalies_response(self._state.snapshot(), request)
        except PageTokenError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise


class HealthServer:
    """The gRPC server on the health socket; ``start`` it, ``stop`` it (or use ``with``)."""

    def __init__(self, state: HealthState, socket_path: Path, *, socket_group: str = "") -> None:
        if len(str(socket_path).encode()) > MAX_UNIX_SOCKET_PATH_BYTES:
            raise HealthServerError(
                f"health socket path {socket_path} is longer than "
                f"{MAX_UNIX_SOCKET_PATH_BYTES} bytes, the Unix socket limit"
            )
        self.state = state
        self.socket_path = socket_path
        self.socket_group = socket_group
        self._server: Any = None
        self._health = grpc_health.HealthServicer()
        self._socket_identity: tuple[int, int, int] | None = None

    @classmethod
    def from_settings(cls, state: HealthState, settings: HealthSettings) -> HealthServer:
        return cls(state, settings.socket_path, socket_group=settings.socket_group)

    def start(self) -> None:
        """Bind the socket, set its mode and group, and start answering.

        Raises :class:`HealthServerError` with a one-line reason when the socket cannot
        be served; the daemon decides whether it runs on without it.
        """
        if self._server is not None:
            raise HealthServerError("health server already started")
        gid = _group_id(self.socket_group)
        _prepare_directory(self.socket_path.parent, gid, self.socket_group)
        _remove_stale_socket(self.socket_path)
        server = grpc.server(
            ThreadPoolExecutor(max_workers=_MAX_WORKERS, thread_name_prefix="health-rpc")
        )
        health_pb2_grpc.add_HealthServiceServicer_to_server(NodeHealthServicer(self.state), server)
        grpc_health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (HEALTH_SERVICE_NAME, GRPC_HEALTH_SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        try:
            server.add_insecure_port(f"unix:{self.socket_path}")
        except RuntimeError as exc:
            raise HealthServerError(f"cannot listen on {self.socket_path}: {exc}") from None
        server.start()
        self._server = server
        try:
            os.chmod(self.socket_path, SOCKET_MODE)
        except OSError as exc:
            self.stop(0)
            raise HealthServerError(
                f"cannot set the mode of {self.socket_path}: {exc.strerror}"
            ) from None
        if gid is not None:
            _chown_group(self.socket_path, gid, self.socket_group)
        self._socket_identity = _identity(self.socket_path)  # after chmod/chown: ctime
        self.set_serving(True)
        log.info(
            "health socket listening",
            extra={"socket": str(self.socket_path), "group": self.socket_group or None},
        )

    def set_serving(self, serving: bool) -> None:
        """What the standard health check answers, for the server ("") and our service."""
        status = (
            grpc_health_pb2.HealthCheckResponse.SERVING
            if serving
            else grpc_health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", HEALTH_SERVICE_NAME):
            self._health.set(name, status)

    def stop(self, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
        """Answer NOT_SERVING, finish calls in flight (up to ``grace_seconds``), remove
        the socket. Safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        self._health.enter_graceful_shutdown()
        server.stop(grace_seconds).wait(grace_seconds + 5.0)
        self._remove_own_socket()
        log.info("health socket closed", extra={"socket": str(self.socket_path)})

    def _remove_own_socket(self) -> None:
        """Unlink the socket, unless a newer agent has already replaced it with its own."""
        try:
            if _identity(self.socket_path) == self._socket_identity:
                self.socket_path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning(
                "cannot remove the health socket",
                extra={"socket": str(self.socket_path), "error": exc.strerror},
            )

    def __enter__(self) -> HealthServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _identity(path: Path) -> tuple[int, int, int]:
    """Device, inode and change time: a replaced file differs even if its inode number
    was reused."""
    info = os.lstat(path)
    return info.st_dev, info.st_ino, info.st_ctime_ns


def _group_id(group: str) -> int | None:
    """The group's gid; None (logged once) when there is no group of that name."""
    if not group:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        _log_once.problem(
            f"group:{group}",
            logging.WARNING,
            "health socket group does not exist; the socket keeps the agent's group",
            group=group,
        )
        return None


def _chown_group(path: Path, gid: int, group: str) -> bool:
    """Hand ``path`` to group ``gid``; a refusal is logged once, never fatal."""
    try:
        os.chown(path, -1, gid)
        return True
    except OSError as exc:
        _log_once.problem(
            f"chown:{group}",
            logging.WARNING,
            "cannot give the health socket (or its directory) to its group; it keeps the "
            "agent's group, so only the agent's own user and group can query it",
            path=str(path),
            group=group,
            error=exc.strerror,
        )
        return False


def _prepare_directory(directory: Path, gid: int | None, group: str) -> None:
    """Create the socket's directory (0750, the socket's group) if it is missing.

    An existing directory keeps its mode and owner: it may be systemd's
    ``RuntimeDirectory`` or a shared one such as /tmp.
    """
    if directory.is_dir():
        return
    try:
        directory.mkdir(parents=True, mode=SOCKET_DIR_MODE)
        os.chmod(directory, SOCKET_DIR_MODE)  # mkdir's mode is filtered by the umask
    except FileExistsError:
        if not directory.is_dir():
            raise HealthServerError(f"{directory} exists and is not a directory") from None
        return
    except OSError as exc:
        raise HealthServerError(f"cannot create {directory}: {exc.strerror}") from None
    if gid is not None:
        _chown_group(directory, gid, group)


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket file whose agent is gone; refuse anything else at ``path``."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise HealthServerError(f"{path} exists and is not a socket; refusing to replace it")
    if _socket_answers(path):
        raise HealthServerError(f"another process is listening on {path}")
    path.unlink(missing_ok=True)
    log.info("removed a stale health socket", extra={"socket": str(path)})


def _socket_answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(_PROBE_TIMEOUT_SECONDS)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return False
        raise HealthServerError(f"cannot check whether {path} is in use: {exc}") from None
    finally:
        probe.close()
    return True
