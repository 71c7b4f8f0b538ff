"""OptimizationService on the real API server: listing, paging, scopes, watching, mTLS."""

from __future__ import annotations

import argparse
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from novacron.coordinator import pki
from novacron.coordinator.config import ApiSettings, CoordinatorConfig, TlsSettings
from novacron.coordinator.optimization.recommend_cli import add_recommend_command, run_recommend
from novacron.coordinator.optimization.recommendations import NodePlacement, RecommendationBook
from novacron.coordinator.optimization.service import OPTIMIZATION_SERVICE, OptimizationServicer
from novacron.coordinator.placement.engine import Policy
from novacron.coordinator.placement.settings import PlacementSettings
from novacron.protos import common_pb2, optimization_pb2, optimization_pb2_grpc
from novacron.protos.runtime.tls import channel_credentials
from tests.coordinator.optimization.test_recommendations import rec
from tests.coordinator.placement.service_support import ApiThread, insecure_api_config, servicer
from tests.coordinator.placement.tables import host_table

TIMEOUT = 10.0
KIND = optimization_pb2.RecommendationKind
EVENT = optimization_pb2.RecommendationEventType


class Advice:
    """A source whose answer the test changes between refreshes."""

    def __init__(self) -> None:
        self.recs = [
            rec("consolidate-az1", host="cmp-1", saving=3.0),
            rec("forecast-cmp-3", host="cmp-3", kind=KIND.RECOMMENDATION_KIND_FORECAST),
        ]

    def __call__(self, now: float) -> list[optimization_pb2.Recommendation]:
        return list(self.recs)


def running_api(
    tmp_path: Path, book: RecommendationBook, config: CoordinatorConfig | None = None
) -> ApiThread:
    config = config or insecure_api_config(tmp_path / "coordinator.db")
    placement = servicer(Policy.from_settings(PlacementSettings()), host_table([{"host_id": "x"}]))
    return ApiThread(config, placement, services={OPTIMIZATION_SERVICE: OptimizationServicer(book)})


@pytest.fixture
def book() -> RecommendationBook:
    nodes = {"cmp-1": NodePlacement("az1"), "cmp-3": NodePlacement("az2")}
    made = RecommendationBook({"advice": Advice()}, nodes=lambda: nodes)
    made.refresh(1_700_000_000.0)
    return made


@pytest.fixture
def api(tmp_path: Path, book: RecommendationBook) -> Iterator[ApiThread]:
    with running_api(tmp_path, book) as running:
        yield running


def test_get_recommendations_lists_scopes_and_pages(api: ApiThread) -> None:
    with grpc.insecure_channel(api.address) as channel:
        stub = optimization_pb2_grpc.OptimizationServiceStub(channel)
        request = optimization_pb2.GetRecommendationsRequest
        everything = stub.GetRecommendations(request(), timeout=TIMEOUT)
        assert [r.recommendation_id for r in everything.recommendations] == [
            "consolidate-az1",
            "forecast-cmp-3",
        ]
        assert everything.snapshot_at.seconds == 1_700_000_000
        zone = stub.GetRecommendations(
            request(scope=optimization_pb2.Scope(zone="az2")), timeout=TIMEOUT
        )
        assert [r.recommendation_id for r in zone.recommendations] == ["forecast-cmp-3"]
        first = stub.GetRecommendations(
            request(page=common_pb2.PageRequest(page_size=1)), timeout=TIMEOUT
        )
        assert len(first.recommendations) == 1 and first.next_page_token
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetRecommendations(
                request(page=common_pb2.PageRequest(page_token="bogus")), timeout=TIMEOUT
            )
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_watch_sends_the_current_set_then_changes(api: ApiThread, book: RecommendationBook) -> None:
    advice = book._sources["advice"]
    assert isinstance(advice, Advice)
    with grpc.insecure_channel(api.address) as channel:
        stub = optimization_pb2_grpc.OptimizationServiceStub(channel)
        stream = stub.WatchRecommendations(
            optimization_pb2.WatchRecommendationsRequest(
                include_current=True, kinds=[KIND.RECOMMENDATION_KIND_CONSOLIDATION]
            ),
            timeout=TIMEOUT,
        )
        first = next(stream)
        assert first.event_type == EVENT.RECOMMENDATION_EVENT_TYPE_ADDED
        assert first.recommendation.recommendation_id == "consolidate-az1"
        advice.recs = [rec("consolidate-az1", host="cmp-1", saving=4.0)]
        # Refresh from another thread once the stream is subscribed (the first event proves it).
        threading.Thread(target=book.refresh, args=(1_700_000_060.0,)).start()
        second = next(stream)
        assert second.event_type == EVENT.RECOMMENDATION_EVENT_TYPE_UPDATED
        assert second.recommendation.expected_saving_per_hour == 4.0
        stream.cancel()


def test_recommend_cli_prints_the_list(api: ApiThread, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_recommend_command(parser.add_subparsers())
    args = parser.parse_args(["recommend", "--api", api.address, "--insecure"])
    assert run_recommend(args) == 0
    out = capsys.readouterr().out
    assert "2 recommendations" in out
    assert "consolidation" in out and "saves 3.00" in out
    args = parser.parse_args(
        ["recommend", "--api", api.address, "--insecure", "--kind", "forecast"]
    )
    assert run_recommend(args) == 0
    assert "1 recommendations" in capsys.readouterr().out


def test_recommend_cli_without_credentials_is_a_usage_error(api: ApiThread) -> None:
    parser = argparse.ArgumentParser()
    add_recommend_command(parser.add_subparsers())
    assert run_recommend(parser.parse_args(["recommend", "--api", api.address])) == 2


def test_mtls_refuses_agent_certificates(tmp_path: Path, book: RecommendationBook) -> None:
    directory = tmp_path / "pki"
    layout = pki.init_pki(directory, ["127.0.0.1"])
    client = pki.issue_client(layout.ca, directory / pki.CLIENTS_DIR, "operator")
    agent = pki.issue_agent(layout.ca, directory / pki.AGENTS_DIR, "cmp-1")
    secure = replace(
        insecure_api_config(tmp_path / "coordinator.db"),
        tls=TlsSettings(layout.ca.cert, layout.server.cert, layout.server.key),
        api=ApiSettings(listen="127.0.0.1:0", insecure=False),
    )
    with running_api(tmp_path, book, secure) as running:
        for files, allowed in ((client, True), (agent, False)):
            credentials = channel_credentials(layout.ca.cert, files.cert, files.key)
            with grpc.secure_channel(running.address, credentials) as channel:
                stub = optimization_pb2_grpc.OptimizationServiceStub(channel)
                request = optimization_pb2.GetRecommendationsRequest()
                if allowed:
                    assert stub.GetRecommendations(request, timeout=TIMEOUT).recommendations
                else:
                    with pytest.raises(grpc.RpcError) as raised:
                        stub.GetRecommendations(request, timeout=TIMEOUT)
                    assert raised.value.code() is grpc.StatusCode.PERMISSION_DENIED
