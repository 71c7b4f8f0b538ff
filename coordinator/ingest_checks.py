"""What the coordinator accepts from an agent, and the clear refusal when it does not.

Pure functions over wire messages, no gRPC and no I/O, so every rule is tested directly
and the servicer stays thin. A refusal is a :class:`StreamRejected`: it carries the
``StreamError`` the agent receives (code, message, ``retryable``) and the gRPC status the
stream then ends with, so an agent gets a precise reason, never a crashed server or a
generic ``UNKNOWN``.

Retry policy, for the agent's sake (``StreamError.retryable``):

* Problems with the **Hello** (unsupported contract, unknown feature schema, malformed
  node id) are not retryable: the same Hello would fail again; an operator must act.
* Problems with a **frame** are retryable: the agent keeps the frame (it was never
  acknowledged) and reconnects; if the frame itself is at fault, the agent's logs and
  this coordinator's ``rejected_messages_total{reason}`` show it on every attempt.
  Nothing is dropped by the coordinator to get past it.
* Identity problems (no node in the client certificate, Hello naming another node) end
  the stream with ``UNAUTHENTICATED`` / ``PERMISSION_DENIED`` and no ``StreamError``
  (``docs/security.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError

from novacron.coordinator.store import StoredFrame
from novacron.coordinator.store_frames import stored_frame
from novacron.models.schema import NODE, VM, Schema
from novacron.protos import common_pb2, telemetry_pb2
from novacron.protos.runtime.tls import validate_node_id

# Channels carrying TelemetryService accept messages of 32 MiB (wire contract).
MAX_MESSAGE_BYTES = 32 * 1024 * 1024


class StreamRejected(Exception):
    """Why a stream ends with an error.

    ``reason``: short metric label (``rejected_messages_total{reason}``). ``status``: the
    gRPC status code name the stream ends with. ``code``: the ``ErrorCode`` of the
    ``StreamError`` sent first (``ERROR_CODE_UNSPECIFIED``: none is sent).
    ``agent_fault``: caused by what the agent sent (counted as a rejected message), as
    opposed to the coordinator closing the stream (shutdown, store down, superseded).
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        status: str,
        code: telemetry_pb2.ErrorCode = telemetry_pb2.ERROR_CODE_UNSPECIFIED,
        retryable: bool = False,
        retry_after_seconds: float | None = None,
        agent_fault: bool = True,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status
        self.code = code
        self.retryable = retryable
        self.retry_after_seconds = retry_after_seconds
        self.agent_fault = agent_fault

    def stream_error(self) -> telemetry_pb2.StreamError | None:
        """The ``StreamError`` to send before closing, or None (identity failures)."""
        if self.code == telemetry_pb2.ERROR_CODE_UNSPECIFIED:
            return None
        error = telemetry_pb2.StreamError(
            code=self.code, message=self.message, retryable=self.retryable
        )
        if self.retry_after_seconds is not None:
            error.retry_after.CopyFrom(_duration(self.retry_after_seconds))
        return error

    def __repr__(self) -> str:
        return f"StreamRejected({self.reason!r}, {self.message!r}, status={self.status})"


def protocol_violation(reason: str, message: str, *, retryable: bool = True) -> StreamRejected:
    return StreamRejected(
        reason,
        message,
        status="INVALID_ARGUMENT",
        code=telemetry_pb2.ERROR_CODE_PROTOCOL_VIOLATION,
        retryable=retryable,
    )


def unknown_schema(message: str) -> StreamRejected:
    return StreamRejected(
        "unknown_schema",
        message,
        status="FAILED_PRECONDITION",
        code=telemetry_pb2.ERROR_CODE_UNKNOWN_FEATURE_SCHEMA,
    )


def store_unavailable(problem: str, retry_after_seconds: float) -> StreamRejected:
    """The store could not commit: nothing of it was acknowledged; reconnect and replay."""
    return StreamRejected(
        "store_unavailable",
        f"the coordinator cannot store frames right now ({problem}); "
        "unacknowledged frames must be replayed",
        status="UNAVAILABLE",
        code=telemetry_pb2.ERROR_CODE_INTERNAL,
        retryable=True,
        retry_after_seconds=retry_after_seconds,
        agent_fault=False,
    )


def shutting_down(retry_after_seconds: float) -> StreamRejected:
    return StreamRejected(
        "shutdown",
        "the coordinator is shutting down; every acknowledged frame is stored, reconnect later",
        status="UNAVAILABLE",
        code=telemetry_pb2.ERROR_CODE_OVERLOADED,
        retryable=True,
        retry_after_seconds=retry_after_seconds,
        agent_fault=False,
    )


def superseded(node_id: str, peer: str) -> StreamRejected:
    return StreamRejected(
        "superseded",
        f"a newer stream for node {node_id} (from {peer}) replaced this one",
        status="ABORTED",
        code=telemetry_pb2.ERROR_CODE_NODE_ID_CONFLICT,
        retryable=True,
        agent_fault=False,
    )


def internal_error(message: str) -> StreamRejected:
    return StreamRejected(
        "internal",
        message,
        status="INTERNAL",
        code=telemetry_pb2.ERROR_CODE_INTERNAL,
        retryable=True,
        agent_fault=False,
    )


def unauthenticated() -> StreamRejected:
    return StreamRejected(
        "unauthenticated",
        "the client certificate names no node (expected one URI SAN spiffe://novacron/node/<id>)",
        status="UNAUTHENTICATED",
    )


@dataclass(frozen=True)
class SchemaId:
    """One feature schema as frames name it: version, hash and vector width."""

    tag: str
    version: int
    hash: str
    width: int

    @classmethod
    def of(cls, schema: Schema) -> SchemaId:
        # Schema.hash is computed on every access; frames are checked against a copy.
        return cls(schema.version_tag, schema.version, schema.hash, len(schema.features))


@dataclass(frozen=True)
class KnownSchemas:
    """The feature schemas this coordinator interprets (node vectors and VM vectors).

    ``Hello.feature_schema_version``/``feature_schema_hash`` name the node schema.
    """

    node: SchemaId
    vm: SchemaId

    @classmethod
    def current(cls) -> KnownSchemas:
        return cls(node=SchemaId.of(NODE), vm=SchemaId.of(VM))


def decode_message(raw: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> telemetry_pb2.AgentMessage:
    """Parse one agent message; refuse oversized, undecodable or empty ones."""
    if len(raw) > max_bytes:
        raise StreamRejected(
            "oversized",
            f"message of {len(raw)} bytes exceeds the limit of {max_bytes} bytes",
            status="RESOURCE_EXHAUSTED",
            code=telemetry_pb2.ERROR_CODE_PROTOCOL_VIOLATION,
            retryable=True,
        )
    try:
        message = telemetry_pb2.AgentMessage.FromString(raw)
    except DecodeError as exc:
        raise protocol_violation(
            "undecodable", f"message of {len(raw)} bytes is not a valid AgentMessage: {exc}"
        ) from None
    if message.WhichOneof("body") is None:
        raise protocol_violation(
            "empty_message",
            f"AgentMessage of {len(raw)} bytes has no known body (empty, or a newer kind)",
        )
    return message


def check_hello(
    hello: telemetry_pb2.Hello, *, cert_node_id: str | None, schemas: KnownSchemas
) -> str:
    """The node id the stream is bound to; StreamRejected if the Hello is unacceptable.

    ``cert_node_id``: the node in the verified client certificate, or None on an
    insecure (plaintext) server, where the Hello's node id is trusted as sent.
    """
    if hello.contract_minor_version < 1:
        raise StreamRejected(
            "unsupported_contract",
            "Hello.contract_minor_version is 0 (unset); agents send the contract v1 minor "
            "version they were built against",
            status="FAILED_PRECONDITION",
            code=telemetry_pb2.ERROR_CODE_UNSUPPORTED_CONTRACT,
        )
    claimed = hello.node.host
    try:
        validate_node_id(claimed)
    except ValueError as exc:
        raise protocol_violation(
            "bad_node_id", f"Hello.node.host: {exc}", retryable=False
        ) from None
    if cert_node_id is not None and claimed != cert_node_id:
        raise StreamRejected(
            "permission_denied",
            f"certificate is for node {cert_node_id}, Hello claims {claimed}",
            status="PERMISSION_DENIED",
        )
    expected = schemas.node
    if (
        hello.feature_schema_version != expected.version
        or hello.feature_schema_hash != expected.hash
    ):
        raise unknown_schema(
            f"Hello names feature schema v{hello.feature_schema_version} "
            f"({hello.feature_schema_hash[:12] or 'no hash'}); this coordinator knows "
            f"{expected.tag} ({expected.hash[:12]})"
        )
    return claimed


class FrameChecker:
    """The ingest's frame rules, run by ``stored_frame`` while it converts a frame.

    Feature vectors must follow the known schemas exactly (version, hash, width); NaN
    feature values are fine ("no data"). Numbers that go into indexed store columns
    (probabilities, scores, horizons) must be finite and in range: one such value must
    not fail a transaction shared with other agents' frames. Hot path (every frame,
    ~10 VMs): plain comparisons inline; the helpers that build the refusal messages
    run only for a frame that fails.
    """

    def __init__(self, schemas: KnownSchemas) -> None:
        self.schemas = schemas
        vm = schemas.vm
        self._vm = (vm.hash, vm.version, vm.width)

    def node(self, frame: telemetry_pb2.Frame, seq: int) -> None:
        if seq < 1:
            raise protocol_violation("bad_frame", "frame seq 0: seqs start at 1")
        _check_vector(frame.node_features, self.schemas.node, f"frame {seq} node_features")

    def vm(self, vm: telemetry_pb2.VmFeatures, seq: int) -> None:
        vector = vm.features
        digest, version, width = self._vm
        if (
            vector.schema_hash != digest
            or vector.schema_version != version
            or len(vector.values) != width
        ):
            _check_vector(vector, self.schemas.vm, f"frame {seq} VM {vm.vm_uuid!r} features")

    def prediction(self, prediction: common_pb2.FailurePrediction, seq: int) -> None:
        horizon = prediction.horizon_seconds
        if not (
            0.0 <= prediction.probability <= 1.0
            and 0.0 <= prediction.ci_low <= 1.0
            and 0.0 <= prediction.ci_high <= 1.0
            and 0.0 <= horizon < math.inf
        ):
            what = f"frame {seq} failure prediction for {prediction.target.id!r}"
            _check_unit_interval(prediction.probability, f"{what}: probability")
            _check_unit_interval(prediction.ci_low, f"{what}: ci_low")
            _check_unit_interval(prediction.ci_high, f"{what}: ci_high")
            raise protocol_violation("bad_frame", f"{what}: horizon_seconds {horizon} invalid")

    def anomaly(self, anomaly: common_pb2.Anomaly, seq: int) -> None:
        score = anomaly.score
        if not 0.0 <= score <= 1.0:  # also false for NaN
            _check_unit_interval(score, f"frame {seq} anomaly of {anomaly.subject.id!r}: score")


def check_frame(frame: telemetry_pb2.Frame, schemas: KnownSchemas) -> StoredFrame:
    """Refuse a frame the store could not keep faithfully (rules: :class:`FrameChecker`).

    Returns the frame's store record (node id left empty); the ingest converts and
    checks in the same pass through ``stored_frame(..., checks=...)`` instead.
    """
    return stored_frame("", frame, b"", checks=FrameChecker(schemas))


def _check_vector(vector: common_pb2.FeatureVector, expected: SchemaId, what: str) -> None:
    if vector.schema_version != expected.version or vector.schema_hash != expected.hash:
        raise unknown_schema(
            f"{what}: schema v{vector.schema_version} "
            f"({vector.schema_hash[:12] or 'no hash'}) is not {expected.tag} "
            f"({expected.hash[:12]})"
        )
    if len(vector.values) != expected.width:
        raise protocol_violation(
            "bad_frame",
            f"{what}: {len(vector.values)} values, schema {expected.tag} has {expected.width}",
        )


def _check_unit_interval(value: float, what: str) -> None:
    if not 0.0 <= value <= 1.0:  # also false for NaN
        raise protocol_violation("bad_frame", f"{what} {value} is not in 0..1")


def _duration(seconds: float) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration
