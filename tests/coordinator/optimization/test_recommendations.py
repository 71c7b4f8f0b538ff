"""The recommendation book: ordering, diffs, scope filters, paging, failing sources."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from novacron.coordinator.optimization.recommendations import (
    NodePlacement,
    RecommendationBook,
    Snapshot,
    diff,
    ordered,
    paginate,
    select,
)
from novacron.protos import common_pb2, optimization_pb2

KIND = optimization_pb2.RecommendationKind
EVENT = optimization_pb2.RecommendationEventType


def rec(
    rec_id: str,
    *,
    host: str = "cmp-1",
    kind: int = KIND.RECOMMENDATION_KIND_CONSOLIDATION,
    saving: float = 0.0,
    summary: str = "",
    created: int = 0,
    time_to_threshold: float | None = None,
) -> optimization_pb2.Recommendation:
    message = optimization_pb2.Recommendation(
        recommendation_id=rec_id,
        kind=kind,  # type: ignore[arg-type]
        subject=common_pb2.Subject(
            kind=common_pb2.SUBJECT_KIND_NODE, id=host, node=common_pb2.NodeId(host=host)
        ),
        summary=summary or rec_id,
        expected_saving_per_hour=saving,
    )
    message.created_at.seconds = created
    if time_to_threshold is not None:
        message.forecast.time_to_threshold_seconds = time_to_threshold
    return message


def ids(recs: Sequence[optimization_pb2.Recommendation]) -> list[str]:
    return [r.recommendation_id for r in recs]


def test_ordered_puts_savings_first_then_the_soonest_threshold() -> None:
    recs = [
        rec("late", kind=KIND.RECOMMENDATION_KIND_FORECAST, time_to_threshold=9000),
        rec("small", saving=1.0),
        rec("soon", kind=KIND.RECOMMENDATION_KIND_FORECAST, time_to_threshold=60),
        rec("big", saving=5.0),
        rec("never", kind=KIND.RECOMMENDATION_KIND_FORECAST),
    ]
    assert ids(ordered(recs)) == ["big", "small", "soon", "late", "never"]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ([], [rec("a")], [("ADDED", "a")]),
        ([rec("a")], [], [("WITHDRAWN", "a")]),
        ([rec("a")], [rec("a", created=99)], []),  # restamped only: no change
        ([rec("a")], [rec("a", summary="other")], [("UPDATED", "a")]),
        ([rec("a"), rec("b")], [rec("b"), rec("c")], [("ADDED", "c"), ("WITHDRAWN", "a")]),
    ],
)
def test_diff_reports_added_updated_and_withdrawn(
    old: list[optimization_pb2.Recommendation],
    new: list[optimization_pb2.Recommendation],
    expected: list[tuple[str, str]],
) -> None:
    events = diff(old, new)
    got = [
        (
            EVENT.Name(e.event_type).removeprefix("RECOMMENDATION_EVENT_TYPE_"),
            e.recommendation.recommendation_id,
        )
        for e in events
    ]
    assert got == expected


def test_a_withdrawn_event_keeps_the_subject_for_scope_filters() -> None:
    (event,) = diff([rec("a", host="cmp-9")], [])
    assert event.recommendation.subject.node.host == "cmp-9"


def test_select_filters_by_node_zone_aggregate_and_kind() -> None:
    snapshot = Snapshot(
        recommendations=(
            rec("one", host="h1"),
            rec("two", host="h2", kind=KIND.RECOMMENDATION_KIND_FORECAST),
            rec("three", host="h3"),
        ),
        nodes={
            "h1": NodePlacement("z1", frozenset({"gpu"})),
            "h2": NodePlacement("z1"),
            "h3": NodePlacement("z2", frozenset({"gpu"})),
        },
    )
    scope = optimization_pb2.Scope
    assert ids(select(snapshot, scope())) == ["one", "two", "three"]
    assert ids(select(snapshot, scope(zone="z1"))) == ["one", "two"]
    assert ids(select(snapshot, scope(aggregate="gpu"))) == ["one", "three"]
    assert ids(select(snapshot, scope(zone="z1", aggregate="gpu"))) == ["one"]
    assert ids(select(snapshot, scope(nodes=[common_pb2.NodeId(host="h3")]))) == ["three"]
    forecasts = select(snapshot, scope(), [KIND.RECOMMENDATION_KIND_FORECAST])
    assert ids(forecasts) == ["two"]


def test_paginate_walks_every_item_once_and_refuses_foreign_tokens() -> None:
    items = [rec(f"r{i}") for i in range(7)]
    seen: list[str] = []
    token = ""
    while True:
        page, token = paginate(items, common_pb2.PageRequest(page_size=3, page_token=token))
        seen += ids(page)
        if not token:
            break
    assert seen == ids(items)
    for bad in ("x", "-1", "99"):
        with pytest.raises(ValueError, match="page_token"):
            paginate(items, common_pb2.PageRequest(page_token=bad))


def test_a_failing_source_keeps_its_previous_advice() -> None:
    calls = {"n": 0}

    def flaky(now: float) -> list[optimization_pb2.Recommendation]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("history unavailable")
        return [rec(f"flaky-{calls['n']}")]

    book = RecommendationBook({"flaky": flaky, "steady": lambda now: [rec("steady")]})
    book.refresh(1.0)
    assert ids(book.snapshot.recommendations) == ["flaky-1", "steady"]
    assert book.refresh(2.0) == []  # the failure changes nothing
    assert ids(book.snapshot.recommendations) == ["flaky-1", "steady"]
    events = book.refresh(3.0)
    assert {e.recommendation.recommendation_id for e in events} == {"flaky-3", "flaky-1"}
    assert book.snapshot.taken_at_seconds == 3.0


def test_subscribers_receive_each_refresh_from_another_thread() -> None:
    state = {"summary": "first"}
    book = RecommendationBook({"s": lambda now: [rec("a", summary=state["summary"])]})
    book.refresh(1.0)

    async def watch() -> list[list[optimization_pb2.RecommendationEvent]]:
        watcher = book.subscribe()
        assert ids(watcher.start.recommendations) == ["a"]
        state["summary"] = "second"
        await asyncio.to_thread(book.refresh, 2.0)
        first = await asyncio.wait_for(watcher.next(), 5)
        book.unsubscribe(watcher)
        book.refresh(3.0)  # no longer delivered
        return [first]

    (events,) = asyncio.run(watch())
    assert [(e.event_type, e.recommendation.summary) for e in events] == [
        (EVENT.RECOMMENDATION_EVENT_TYPE_UPDATED, "second")
    ]
