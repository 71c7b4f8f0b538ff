"""PlacementService over a real gRPC server on a loopback port, with a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2 as grpc_health_pb2
from grpc_health.v1 import health_pb2_grpc as grpc_health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from novacron.coordinator import pki
from novacron.coordinator.api_server import ApiServer
from novacron.coordinator.config import ApiSettings, TlsSettings
from novacron.coordinator.fleet import FleetState
from novacron.coordinator.placement.claims import Claim, ClaimBook
from novacron.coordinator.placement.hosts import HostTable
from novacron.coordinator.placement.hosts_build import build_host_table
from novacron.coordinator.placement.service import (
    PLACEMENT_SERVICE,
    LiveHostTables,
    PlacementServicer,
)
from novacron.coordinator.placement.settings import PlacementSettings
from novacron.coordinator.store import NodeHello
from novacron.coordinator.store_frames import node_hello
from novacron.coordinator.store_sqlite import SqliteStore
from novacron.protos import common_pb2, placement_pb2, placement_pb2_grpc, telemetry_pb2
from novacron.protos.runtime.tls import channel_credentials
from tests.coordinator.placement.engine_support import make_policy
from tests.coordinator.placement.service_support import (
    ApiThread,
    folding,
    insecure_api_config,
    servicer,
)
from tests.coordinator.placement.tables import host_table

TIMEOUT = 10.0
FLEET: list[dict[str, Any]] = [
    {"host_id": "cmp-1", "zone": "az1", "vcpus_total": 8},
    {"host_id": "cmp-2", "zone": "az1", "vcpus_total": 8, "failure_probability": 0.4},
    {"host_id": "cmp-3", "zone": "az2", "vcpus_total": 8},
    {"host_id": "cmp-4", "zone": "az2", "maintenance": 1},
]


def spec(*, vcpus: int = 2, zone: str = "") -> placement_pb2.VmSpec:
    return placement_pb2.VmSpec(vcpus=vcpus, memory_mib=4096, zone=zone)


def header(request_id: str = "") -> common_pb2.RequestHeader:
    return common_pb2.RequestHeader(request_id=request_id, client="tests/0")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiThread]:
    db = tmp_path / "coordinator.db"
    SqliteStore.open(db).close()
    placement = servicer(make_policy(), host_table(FLEET), db_path=db)
    with ApiThread(insecure_api_config(db), placement) as running:
        yield running


@pytest.fixture
def stub(api: ApiThread) -> Iterator[placement_pb2_grpc.PlacementServiceStub]:
    with grpc.insecure_channel(api.address) as channel:
        yield placement_pb2_grpc.PlacementServiceStub(channel)


def test_select_hosts_ranks_explains_and_records(
    api: ApiThread, stub: placement_pb2_grpc.PlacementServiceStub, tmp_path: Path
) -> None:
    response = stub.SelectHosts(
        placement_pb2.SelectHostsRequest(header=header("r-1"), spec=spec(), max_results=2),
        timeout=TIMEOUT,
    )
    assert response.header.request_id == "r-1"
    assert [h.host.host for h in response.hosts] == ["cmp-1", "cmp-3"]
    assert [h.rank for h in response.hosts] == [1, 2]
    assert response.hosts[0].factor_scores and response.hosts[0].confidence == 1.0
    assert [(c.filter, c.reason, c.hosts) for c in response.filtered_out] == [
        ("TestStateFilter", "in maintenance", 1)
    ]
    assert (response.hosts_considered, response.hosts_passed) == (4, 3)
    deadline = time.monotonic() + 5
    rows: list[tuple[str, str]] = []
    while time.monotonic() < deadline and not rows:  # written after the response
        with sqlite3.connect(tmp_path / "coordinator.db") as conn:
            rows = conn.execute(
                "SELECT request_id, chosen_host FROM placement_decisions"
            ).fetchall()
        time.sleep(0.02)
    assert rows == [("r-1", "cmp-1")]


def test_no_valid_host_is_an_answer(stub: placement_pb2_grpc.PlacementServiceStub) -> None:
    response = stub.SelectHosts(
        placement_pb2.SelectHostsRequest(header=header(), spec=spec(zone="az9")),
        timeout=TIMEOUT,
    )
    assert response.no_valid_host and not response.hosts
    assert list(response.no_valid_host_reasons) == [
        "TestStateFilter: 1 of 4 hosts in maintenance",
        "TestZoneFilter: all 3 remaining hosts not in zone az9",
    ]
    assert response.header.request_id  # a generated id when the caller sent none


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (placement_pb2.SelectHostsRequest(spec=spec(vcpus=0)), "spec.vcpus"),
        (placement_pb2.SelectHostsRequest(spec=spec(), objectives={"fast": 1}), "objective"),
        (
            placement_pb2.SelectHostsRequest(spec=spec(), weight_overrides={"nope": 1}),
            "unknown factor id 'nope'",
        ),
    ],
)
def test_malformed_requests_are_invalid_argument(
    stub: placement_pb2_grpc.PlacementServiceStub,
    request_: placement_pb2.SelectHostsRequest,
    message: str,
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.SelectHosts(request_, timeout=TIMEOUT)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert message in (raised.value.details() or "")


def test_explain_host(stub: placement_pb2_grpc.PlacementServiceStub) -> None:
    select = placement_pb2.SelectHostsRequest(spec=spec())
    filtered = stub.ExplainHost(
        placement_pb2.ExplainHostRequest(
            header=header(), request=select, host=common_pb2.NodeId(host="cmp-4")
        ),
        timeout=TIMEOUT,
    )
    assert [(r.filter, r.reason) for r in filtered.filter_rejections] == [
        ("TestStateFilter", "in maintenance")
    ]
    assert not filtered.HasField("evaluation") and filtered.winner.host.host == "cmp-1"
    loser = stub.ExplainHost(
        placement_pb2.ExplainHostRequest(request=select, host=common_pb2.NodeId(host="cmp-2")),
        timeout=TIMEOUT,
    )
    assert not loser.chosen and loser.evaluation.rank == 3
    assert loser.comparisons[0].factor_id == "failure_probability_24h"
    assert loser.comparisons[0].delta < 0 and "cmp-1" in loser.summary
    with pytest.raises(grpc.RpcError) as raised:
        stub.ExplainHost(
            placement_pb2.ExplainHostRequest(request=select, host=common_pb2.NodeId(host="x")),
            timeout=TIMEOUT,
        )
    assert raised.value.code() is grpc.StatusCode.NOT_FOUND


def test_list_factors(stub: placement_pb2_grpc.PlacementServiceStub) -> None:
    everything = stub.ListFactors(placement_pb2.ListFactorsRequest(), timeout=TIMEOUT)
    assert [f.factor_id for f in everything.factors] == [
        "free_memory_mib",
        "failure_probability_24h",
        "power_idle_watts",
    ]
    none = stub.ListFactors(
        placement_pb2.ListFactorsRequest(categories=[placement_pb2.FACTOR_CATEGORY_NETWORK]),
        timeout=TIMEOUT,
    )
    assert list(none.factors) == []


def test_claims_over_the_wire(stub: placement_pb2_grpc.PlacementServiceStub) -> None:
    # 3 passing hosts x 8 vCPUs x ratio 4 = 96 vCPUs = 12 claims of 8; then no more.
    def claim(i: int) -> placement_pb2.SelectHostsResponse:
        return stub.SelectHosts(
            placement_pb2.SelectHostsRequest(
                header=header(f"c-{i}"),
                spec=spec(vcpus=8),
                claim=placement_pb2.ClaimRequest(ttl_seconds=60),
            ),
            timeout=TIMEOUT,
        )

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(claim, range(16)))
    claimed = [r.claim for r in responses if r.HasField("claim")]
    assert len(claimed) == 12
    per_host: dict[str, int] = {}
    for c in claimed:
        per_host[c.host.host] = per_host.get(c.host.host, 0) + c.vcpus
    assert per_host == {"cmp-1": 32, "cmp-2": 32, "cmp-3": 32}
    assert sum(r.no_valid_host for r in responses) == 4
    again = claim(0)  # retry with the same request id: the same claim
    assert again.claim.claim_id == responses[0].claim.claim_id
    released = stub.Release(
        placement_pb2.ReleaseRequest(claim_id=claimed[0].claim_id), timeout=TIMEOUT
    )
    assert released.released
    assert not stub.Release(
        placement_pb2.ReleaseRequest(claim_id=claimed[0].claim_id), timeout=TIMEOUT
    ).released


def test_reserve(stub: placement_pb2_grpc.PlacementServiceStub) -> None:
    def reserve(host: str, request_id: str, vcpus: int) -> placement_pb2.ReserveResponse:
        return stub.Reserve(
            placement_pb2.ReserveRequest(
                host=common_pb2.NodeId(host=host),
                spec=spec(vcpus=vcpus),
                ttl_seconds=30,
                request_id=request_id,
            ),
            timeout=TIMEOUT,
        )

    first = reserve("cmp-1", "x-1", 30)
    assert first.claim.host.host == "cmp-1" and first.refusal == ""
    assert reserve("cmp-1", "x-1", 30).claim.claim_id == first.claim.claim_id
    refused = reserve("cmp-1", "x-2", 4)
    assert not refused.HasField("claim")
    assert "lack 4 free vCPUs" in refused.refusal
    assert "in maintenance" in reserve("cmp-4", "x-3", 1).refusal
    with pytest.raises(grpc.RpcError) as raised:
        stub.Reserve(
            placement_pb2.ReserveRequest(host=common_pb2.NodeId(host="cmp-1"), spec=spec()),
            timeout=TIMEOUT,
        )
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT  # ttl 0


def test_report_outcome_is_idempotent(stub: placement_pb2_grpc.PlacementServiceStub) -> None:
    report = placement_pb2.ReportOutcomeRequest(
        request_id="r-9",
        host=common_pb2.NodeId(host="cmp-1"),
        outcome=placement_pb2.PLACEMENT_OUTCOME_PLACED,
        vm_uuid="vm-1",
    )
    assert stub.ReportOutcome(report, timeout=TIMEOUT).recorded
    assert not stub.ReportOutcome(report, timeout=TIMEOUT).recorded
    with pytest.raises(grpc.RpcError) as raised:
        stub.ReportOutcome(
            placement_pb2.ReportOutcomeRequest(request_id="r", host=report.host), timeout=TIMEOUT
        )
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_deadline_is_respected(tmp_path: Path) -> None:
    release = threading.Event()
    base = host_table(FLEET)

    def slow(claims: Sequence[Claim]) -> HostTable:
        release.wait(5)
        return folding(base)(claims)

    placement = PlacementServicer(policy=make_policy(), tables=slow)
    with (
        ApiThread(insecure_api_config(tmp_path / "db"), placement) as running,
        grpc.insecure_channel(running.address) as channel,
    ):
        stub = placement_pb2_grpc.PlacementServiceStub(channel)
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as raised:
            stub.SelectHosts(placement_pb2.SelectHostsRequest(spec=spec()), timeout=0.3)
        assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 2
        release.set()


def test_health_and_reflection(api: ApiThread) -> None:
    with grpc.insecure_channel(api.address) as channel:
        health = grpc_health_pb2_grpc.HealthStub(channel)
        status = health.Check(
            grpc_health_pb2.HealthCheckRequest(service=PLACEMENT_SERVICE), timeout=TIMEOUT
        )
        assert status.status == grpc_health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = reflect.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=TIMEOUT
        )
        services = {s.name for a in answers for s in a.list_services_response.service}
        assert PLACEMENT_SERVICE in services


def test_mtls_accepts_api_clients_and_refuses_agents(tmp_path: Path) -> None:
    directory = tmp_path / "pki"
    layout = pki.init_pki(directory, ["127.0.0.1"])
    client = pki.issue_client(layout.ca, directory / pki.CLIENTS_DIR, "scheduler")
    agent = pki.issue_agent(layout.ca, directory / pki.AGENTS_DIR, "cmp-1")
    config = replace(
        insecure_api_config(tmp_path / "coordinator.db"),
        tls=TlsSettings(layout.ca.cert, layout.server.cert, layout.server.key),
        api=ApiSettings(listen="127.0.0.1:0", insecure=False),
    )
    placement = servicer(make_policy(), host_table(FLEET))
    with ApiThread(config, placement) as running:
        for files, allowed in ((client, True), (agent, False)):
            credentials = channel_credentials(layout.ca.cert, files.cert, files.key)
            with grpc.secure_channel(running.address, credentials) as channel:
                stub = placement_pb2_grpc.PlacementServiceStub(channel)
                request = placement_pb2.ListFactorsRequest()
                if allowed:
                    assert stub.ListFactors(request, timeout=TIMEOUT).factors
                else:
                    with pytest.raises(grpc.RpcError) as raised:
                        stub.ListFactors(request, timeout=TIMEOUT)
                    assert raised.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def select_hosts_aio(port: int) -> placement_pb2.SelectHostsResponse:
    """One SelectHosts call (the default spec) from an asyncio client, plaintext."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(
            f"/{PLACEMENT_SERVICE}/SelectHosts",
            request_serializer=placement_pb2.SelectHostsRequest.SerializeToString,
            response_deserializer=placement_pb2.SelectHostsResponse.FromString,
        )
        response: placement_pb2.SelectHostsResponse = await call(
            placement_pb2.SelectHostsRequest(spec=spec()), timeout=TIMEOUT
        )
        return response


def test_for_coordinator_serves_the_live_fleet(tmp_path: Path) -> None:
    config = insecure_api_config(tmp_path / "coordinator.db")
    store = SqliteStore.open(config.coordinator.db_path)
    fleet = FleetState()
    server = ApiServer.for_coordinator(config, store=store, fleet=fleet)

    async def run() -> placement_pb2.SelectHostsResponse:
        await server.start()
        try:
            return await select_hosts_aio(server.port)
        finally:
            await server.stop()

    try:
        response = asyncio.run(run())
    finally:
        store.close()
    assert response.no_valid_host
    assert list(response.no_valid_host_reasons) == ["the fleet snapshot holds no hosts"]
    assert isinstance(server.servicer.claims, ClaimBook)


# ---------------------------------------------------------------- live host tables


class GatedStore(SqliteStore):
    """A real SQLite store whose ``inventories`` read waits for ``gate`` (a slow store)."""

    gate: threading.Event
    entered: threading.Event  # set once a read waits at the closed gate
    reads: int

    def inventories(self) -> dict[str, dict[str, Any]]:
        self.reads += 1
        if not self.gate.is_set():
            self.entered.set()
        assert self.gate.wait(TIMEOUT), "test never opened the gate"
        return super().inventories()


def hello(host: str, cpu_threads: int = 32) -> NodeHello:
    message = telemetry_pb2.Hello(agent_version="0.1.0", feature_schema_version=1)
    message.node.host = host
    message.inventory.cpu_threads = cpu_threads
    message.inventory.memory_total_bytes = 64 << 30
    for index in (0, 1):
        message.inventory.numa_nodes.add(
            node_index=index, cpu_threads=cpu_threads // 2, memory_total_bytes=32 << 30
        )
    return node_hello(message)


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[GatedStore]:
    store = GatedStore.open(tmp_path / "coordinator.db")
    assert isinstance(store, GatedStore)
    store.gate, store.entered, store.reads = threading.Event(), threading.Event(), 0
    store.gate.set()
    store.record_hello(hello("n1"), now=1.0)
    store.record_hello(hello("n2"), now=1.0)
    yield store
    store.gate.set()
    store.close()


def claim(host: str, vcpus: int, group: str = "") -> Claim:
    return Claim(
        claim_id=f"c-{host}-{vcpus}",
        request_id="",
        host_id=host,
        vcpus=vcpus,
        memory_mib=1024,
        disk_gib=10,
        gpus=0,
        created_at_seconds=0.0,
        expires_at_seconds=60.0,
        group_id=group,
    )


def test_live_tables_never_wait_for_a_rebuild_in_the_steady_state(gated: GatedStore) -> None:
    now = [0.0]
    tables = LiveHostTables(
        gated,
        FleetState(),
        PlacementSettings(),
        refresh_seconds=5.0,
        max_age_seconds=60.0,
        clock=lambda: now[0],
    )
    first = tables(())  # the first call builds in line
    assert list(first.host_ids) == ["n1", "n2"] and gated.reads == 1
    assert tables(()) is first  # fresh: no store read, same table

    gated.gate.clear()  # from now on the store hangs until the gate opens
    gated.record_hello(hello("n3"), now=2.0)
    now[0] = 6.0  # older than refresh_seconds: a rebuild starts in the background
    started = time.monotonic()
    assert list(tables(()).host_ids) == ["n1", "n2"]  # the previous snapshot at once
    assert time.monotonic() - started < 1.0
    assert gated.entered.wait(TIMEOUT)  # the rebuild now hangs in the store
    refresher = tables.refreshing()
    assert refresher is not None and refresher.is_alive()
    started = time.monotonic()
    claimed = tables([claim("n1", 4)])
    assert time.monotonic() - started < 1.0  # answered while the rebuild hangs
    assert list(claimed.host_ids) == ["n1", "n2"]  # the previous snapshot ...
    assert claimed.numbers["vcpus_used"].tolist() == [4.0, 0.0]  # ... with the claim on top
    assert tables([claim("n1", 4)]) is claimed  # same claims: same table
    assert tables(()).numbers["vcpus_used"].tolist() == [0.0, 0.0]  # claim gone: gone
    assert gated.reads == 2  # one rebuild for all of these calls

    gated.gate.set()
    refresher.join(TIMEOUT)
    assert not refresher.is_alive() and tables.refreshing() is None
    assert tables.base_read_at_seconds == 6.0
    assert list(tables([claim("n3", 2)]).host_ids) == ["n1", "n2", "n3"]


def test_live_tables_warm_builds_the_first_table_in_the_background(gated: GatedStore) -> None:
    tables = LiveHostTables(gated, FleetState(), PlacementSettings())
    gated.gate.clear()  # the store hangs until the gate opens
    started = time.monotonic()
    warming = tables.warm()
    assert time.monotonic() - started < 1.0  # the caller does not wait for the store
    assert warming is not None and gated.entered.wait(TIMEOUT)
    assert tables.warm() is warming  # one build at a time
    gated.gate.set()
    warming.join(TIMEOUT)
    assert not warming.is_alive() and gated.reads == 1
    assert list(tables(()).host_ids) == ["n1", "n2"]
    assert gated.reads == 1  # the first call used the warmed table
    assert tables.warm() is None and gated.reads == 1  # nothing to warm any more


def test_api_server_warms_the_live_tables_as_it_starts(gated: GatedStore, tmp_path: Path) -> None:
    config = insecure_api_config(tmp_path / "coordinator.db")
    server = ApiServer.for_coordinator(config, store=gated, fleet=FleetState())
    gated.gate.clear()

    async def run() -> placement_pb2.SelectHostsResponse:
        await asyncio.wait_for(server.start(), TIMEOUT)  # not blocked by the hanging store
        try:
            assert await asyncio.to_thread(gated.entered.wait, TIMEOUT)  # the build started
            gated.gate.set()
            return await select_hosts_aio(server.port)
        finally:
            gated.gate.set()
            await server.stop()

    response = asyncio.run(run())
    assert response.hosts_considered == 2
    assert gated.reads == 1  # SelectHosts used the table built at start-up


def test_live_tables_refresh_on_the_timer_without_any_call(gated: GatedStore) -> None:
    now = [0.0]
    tables = LiveHostTables(
        gated, FleetState(), PlacementSettings(), refresh_seconds=5.0, clock=lambda: now[0]
    )
    tables(())
    assert tables.refresh_if_due() is None and gated.reads == 1  # fresh: nothing to do
    gated.record_hello(hello("n3"), now=2.0)
    now[0] = 6.0  # a quiet spell: no call since the table was read
    refreshing = tables.refresh_if_due()
    assert refreshing is not None
    refreshing.join(TIMEOUT)
    assert gated.reads == 2 and tables.base_read_at_seconds == 6.0
    assert list(tables(()).host_ids) == ["n1", "n2", "n3"]  # served without a store read
    assert gated.reads == 2


def test_live_tables_build_in_line_when_too_old(gated: GatedStore) -> None:
    now = [0.0]
    tables = LiveHostTables(
        gated, FleetState(), PlacementSettings(), max_age_seconds=30.0, clock=lambda: now[0]
    )
    tables(())
    gated.record_hello(hello("n3"), now=2.0)
    now[0] = 31.0  # nobody asked for longer than max_age_seconds: never decide on that
    assert list(tables(()).host_ids) == ["n1", "n2", "n3"]
    assert tables.refreshing() is None and gated.reads == 2
    with pytest.raises(ValueError, match="refresh_seconds"):
        LiveHostTables(gated, FleetState(), PlacementSettings(), refresh_seconds=0.0)


def test_live_tables_fold_claims_like_the_builder(gated: GatedStore) -> None:
    settings = PlacementSettings()
    tables = LiveHostTables(gated, FleetState(), settings)
    claims = [claim("n1", 4, "web"), claim("n2", 2), claim("gone", 8), claim("n1", 1)]
    expected = build_host_table(
        FleetState().snapshot(),
        gated.inventories(),
        gated.current_vms(),
        settings=settings,
        claims=claims,
    )
    step = tables(claims[:2])  # then two more: folded onto the previous table
    folded = tables(claims)
    assert folded is not step
    for name in ("vcpus_used", "memory_mib_used", "disk_gib_used", "vm_count"):
        assert folded.numbers[name].tolist() == expected.numbers[name].tolist(), name
    np.testing.assert_array_equal(folded.numa_free_vcpus, expected.numa_free_vcpus)
    np.testing.assert_array_equal(folded.numa_free_memory_mib, expected.numa_free_memory_mib)
    # Unlike the builder's, a claim counts as a member of its server group.
    assert folded.group_members["web"].tolist() == [1.0, 0.0]
    assert tables(claims[1:]).numbers["vcpus_used"].tolist() == [1.0, 2.0]  # one expired
