"""Typed shapes of the gRPC client callables, used by the generated ``*_pb2_grpc.pyi``.

grpcio ships no type information, so without these every stub method would be ``Any``
and a caller could send the wrong message type unnoticed. The generated stubs declare
each method as one of the protocols below, parameterised with its request and response
messages.

The contract says every call carries a deadline, so ``timeout`` (seconds) is a
required keyword here: forgetting it is a type error, not a hung call in production.
At runtime these are plain :mod:`grpc` multi-callables of a synchronous channel.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, TypeVar

RequestT_contra = TypeVar("RequestT_contra", contravariant=True)
ResponseT_co = TypeVar("ResponseT_co", covariant=True)

#: Call metadata: (key, value) pairs; binary values under keys ending in ``-bin``.
Metadata = Sequence[tuple[str, str | bytes]]


class ResponseStream(Protocol[ResponseT_co]):
    """What a server-streaming call returns: an iterator that is also the live call."""

    def __iter__(self) -> ResponseStream[ResponseT_co]: ...

    def __next__(self) -> ResponseT_co: ...

    def cancel(self) -> bool:
        """End the call early; the iterator then raises ``grpc.RpcError`` (CANCELLED)."""
        ...

    def is_active(self) -> bool: ...

    def time_remaining(self) -> float | None: ...

    def code(self) -> Any: ...

    def details(self) -> str | None: ...


class UnaryUnaryCall(Protocol[RequestT_contra, ResponseT_co]):
    """A request/response RPC."""

    def __call__(
        self,
        request: RequestT_contra,
        *,
        timeout: float,
        metadata: Metadata | None = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> ResponseT_co: ...

    def with_call(
        self,
        request: RequestT_contra,
        *,
        timeout: float,
        metadata: Metadata | None = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> tuple[ResponseT_co, Any]:
        """The response and the finished ``grpc.Call`` (trailing metadata, code)."""
        ...

    def future(
        self,
        request: RequestT_contra,
        *,
        timeout: float,
        metadata: Metadata | None = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> Any:
        """A ``grpc.Future`` of the response."""
        ...


class UnaryStreamCall(Protocol[RequestT_contra, ResponseT_co]):
    """One request, a stream of responses."""

    def __call__(
        self,
        request: RequestT_contra,
        *,
        timeout: float,
        metadata: Metadata | None = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> ResponseStream[ResponseT_co]: ...


class StreamUnaryCall(Protocol[RequestT_contra, ResponseT_co]):
    """A stream of requests, one response."""

    def __call__(
        self,
        request_iterator: Iterator[RequestT_contra],
        *,
        timeout: float,
        metadata: Metadata | None = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> ResponseT_co: ...


class StreamStreamCall(Protocol[RequestT_contra, ResponseT_co]):
    """Streams both ways (the telemetry stream)."""

    def __call__(
        self,
        request_iterator: Iterator[RequestT_contra],
        *,
        timeout: float,
        metadata: Metadata | None = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> ResponseStream[ResponseT_co]: ...
