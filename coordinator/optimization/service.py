"""``OptimizationService``: the recommendation book over gRPC (thin; logic in recommendations).

``GetRecommendations`` answers from the latest refresh (never recomputes inside a call,
so a call costs microseconds whatever the fleet size); ``WatchRecommendations`` sends
the current set first when asked, then every change, until the caller's deadline.
The book is refreshed by the API server on a timer (``[optimization]
refresh_interval_seconds``), in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from novacron.coordinator.optimization.recommendations import (
    RecommendationBook,
    in_scope,
    paginate,
    select,
)
from novacron.coordinator.placement.convert import response_header
from novacron.protos import optimization_pb2

log = logging.getLogger(__name__)

OPTIMIZATION_SERVICE = optimization_pb2.DESCRIPTOR.services_by_name["OptimizationService"].full_name
Authorize = Callable[[grpc.aio.ServicerContext], str | None]
_ADDED = optimization_pb2.RecommendationEventType.RECOMMENDATION_EVENT_TYPE_ADDED


class OptimizationServicer:
    """GetRecommendations and WatchRecommendations; register with :meth:`handler`."""

    def __init__(self, book: RecommendationBook, *, authorize: Authorize | None = None) -> None:
        self.book = book
        self.authorize = authorize  # None: every peer may call (the API server sets it)

    def handler(self) -> grpc.GenericRpcHandler:
        pb = optimization_pb2
        return grpc.method_handlers_generic_handler(
            OPTIMIZATION_SERVICE,
            {
                "GetRecommendations": grpc.unary_unary_rpc_method_handler(
                    self.GetRecommendations,
                    request_deserializer=pb.GetRecommendationsRequest.FromString,
                    response_serializer=pb.GetRecommendationsResponse.SerializeToString,
                ),
                "WatchRecommendations": grpc.unary_stream_rpc_method_handler(
                    self.WatchRecommendations,
                    request_deserializer=pb.WatchRecommendationsRequest.FromString,
                    response_serializer=pb.RecommendationEvent.SerializeToString,
                ),
            },
        )

    async def _authorized(self, context: grpc.aio.ServicerContext) -> None:
        if self.authorize is not None:
            refusal = self.authorize(context)
            if refusal is not None:
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, refusal)

    async def GetRecommendations(
        self,
        request: optimization_pb2.GetRecommendationsRequest,
        context: grpc.aio.ServicerContext,
    ) -> optimization_pb2.GetRecommendationsResponse:
        await self._authorized(context)
        snapshot = self.book.snapshot
        try:
            page, token = paginate(select(snapshot, request.scope, request.kinds), request.page)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise AssertionError("context.abort returns only by raising") from None
        taken = Timestamp()
        taken.FromNanoseconds(int(snapshot.taken_at_seconds * 1e9))
        return optimization_pb2.GetRecommendationsResponse(
            header=response_header(request.header.request_id),
            recommendations=page,
            next_page_token=token,
            snapshot_at=taken,
        )

    async def WatchRecommendations(
        self,
        request: optimization_pb2.WatchRecommendationsRequest,
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[optimization_pb2.RecommendationEvent]:
        await self._authorized(context)
        watcher = self.book.subscribe()
        try:
            if request.include_current:
                for rec in select(watcher.start, request.scope, request.kinds):
                    yield optimization_pb2.RecommendationEvent(
                        event_type=_ADDED, recommendation=rec
                    )
            while True:
                events = await watcher.next()
                if watcher.overflowed:
                    await context.abort(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        "too many unread events; resubscribe with include_current",
                    )
                nodes = self.book.snapshot.nodes
                for event in events:
                    if in_scope(event.recommendation, request.scope, nodes, request.kinds):
                        yield event
        except asyncio.CancelledError:  # the caller went away or its deadline passed
            raise
        finally:
            self.book.unsubscribe(watcher)
