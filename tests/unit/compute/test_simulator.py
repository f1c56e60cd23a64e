"""The simulator behaves as Nova and Placement do: placement, over-commit, quota, states, faults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloudctl.compute.providers.base import QuotaLimits, ServerSpec
from cloudctl.compute.providers.simulator import SimulatorProvider, SimulatorStore, WorkloadPlan
from cloudctl.core.db import make_engine
from cloudctl.core.errors import Conflict, InvalidInput, NotFound


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(fresh_url: str, clock: Clock) -> SimulatorProvider:
    """Two hosts of 8 cores / 36 GiB (4 GiB reserved), 2× CPU over-commit, on SQLite or PostgreSQL."""
    provider = SimulatorProvider(SimulatorStore(make_engine(fresh_url)), "city-cloud", cpu_allocation_ratio=2.0,
                                 ram_allocation_ratio=1.0, build_seconds=5, clock=clock)
    for name in ("cn01", "cn02"):
        provider.add_host(name, vcpus=8, ram_mb=36864, disk_gb=500)
    provider.add_flavor("c4m8", vcpus=4, ram_mb=8192, disk_gb=40)
    provider.add_flavor("c8m16", vcpus=8, ram_mb=16384, disk_gb=80)
    provider.add_flavor("c16m32", vcpus=16, ram_mb=32768, disk_gb=100)
    return provider


def test_flavors_are_listed_smallest_first(sim: SimulatorProvider) -> None:
    assert [f.name for f in sim.list_flavors()] == ["c4m8", "c8m16", "c16m32"]


def test_build_then_active_and_idempotent_by_tag(sim: SimulatorProvider, clock: Clock) -> None:
    project = sim.ensure_project("990100-D01", "市公安局")
    assert sim.ensure_project("990100-D01", "市公安局") == project
    server = sim.create_server(project, ServerSpec("web-1", "c4m8", tag="req-1/item-1/0"))
    assert server.status == "BUILD"
    again = sim.create_server(project, ServerSpec("web-1", "c4m8", tag="req-1/item-1/0"))
    assert again.provider_id == server.provider_id
    assert len(sim.list_servers(project)) == 1
    clock.now += timedelta(seconds=5)
    assert sim.get_server(server.provider_id).status == "ACTIVE"
    found = sim.find_server_by_tag(project, "req-1/item-1/0")
    assert found is not None
    assert found.provider_id == server.provider_id


def test_placement_spreads_and_refuses_what_fits_nowhere(sim: SimulatorProvider) -> None:
    project = sim.ensure_project("990100-D01", "市公安局")
    hosts = [sim.create_server(project, ServerSpec(f"vm{i}", "c8m16", tag=f"t{i}")).host for i in range(4)]
    assert sorted(hosts) == ["cn01", "cn01", "cn02", "cn02"]  # spread by free RAM
    # 16 of 16 over-committed cores and 32 of 32 GiB are taken on both hosts: no valid host.
    refused = sim.create_server(project, ServerSpec("vm5", "c4m8", tag="t5"))
    assert refused.status == "ERROR"
    assert refused.fault is not None
    assert "No valid host" in refused.fault
    assert refused.host is None


def test_capacity_applies_over_commit_and_counts_stopped_servers(sim: SimulatorProvider, clock: Clock) -> None:
    project = sim.ensure_project("990100-D01", "市公安局")
    server = sim.create_server(project, ServerSpec("db-1", "c8m16", tag="db"))
    clock.now += timedelta(seconds=5)
    sim.server_action(server.provider_id, "stop")
    cap = {c.resource: c for c in sim.capacity()}
    assert cap["vcpus"].usable == 32
    assert cap["vcpus"].used == 8  # a stopped server still holds its cores
    assert cap["ram_mb"].usable == 2 * (36864 - 4096)
    sim.server_action(server.provider_id, "shelve")
    sim.server_action(server.provider_id, "shelve_offload")
    assert {c.resource: c for c in sim.capacity()}["vcpus"].used == 0  # only offload frees the host
    assert sim.get_server(server.provider_id).status == "SHELVED_OFFLOADED"
    assert sim.server_action(server.provider_id, "unshelve").host is not None


def test_state_machine_refuses_wrong_transitions(sim: SimulatorProvider, clock: Clock) -> None:
    project = sim.ensure_project("990100-D01", "市公安局")
    server = sim.create_server(project, ServerSpec("app", "c4m8", tag="app"))
    with pytest.raises(Conflict) as caught:
        sim.server_action(server.provider_id, "start")  # still building
    assert caught.value.field == "status"
    clock.now += timedelta(seconds=5)
    resized = sim.resize_server(server.provider_id, "c8m16")
    assert (resized.status, resized.vcpus) == ("VERIFY_RESIZE", 8)
    assert sim.server_action(server.provider_id, "confirm_resize").status == "ACTIVE"
    sim.delete_server(server.provider_id)
    with pytest.raises(NotFound):
        sim.get_server(server.provider_id)
    with pytest.raises(InvalidInput) as bad:
        sim.create_server(project, ServerSpec("x", "no-such-flavor", tag="x"))
    assert bad.value.field == "flavor"


def test_project_quota_is_enforced_and_never_forced_below_usage(sim: SimulatorProvider) -> None:
    project = sim.ensure_project("990100-D02", "市人力资源和社会保障局")
    sim.set_quota(project, QuotaLimits(vcpus=8, ram_mb=16384, disk_gb=200, instances=2))
    sim.create_server(project, ServerSpec("a", "c4m8", tag="a"))
    sim.create_server(project, ServerSpec("b", "c4m8", tag="b"))
    with pytest.raises(Conflict) as caught:
        sim.create_server(project, ServerSpec("c", "c4m8", tag="c"))
    assert "Quota exceeded" in caught.value.detail
    limits, usage = sim.get_quota(project)
    assert (limits.vcpus, usage.vcpus, usage.instances) == (8, 8, 2)
    with pytest.raises(Conflict) as below:
        sim.set_quota(project, QuotaLimits(vcpus=4))
    assert below.value.field == "vcpus"


def test_injected_faults(sim: SimulatorProvider) -> None:
    project = sim.ensure_project("990100-D01", "市公安局")
    sim.inject_fault("create_fails", message="compute service unavailable")
    failed = sim.create_server(project, ServerSpec("f", "c4m8", tag="f"))
    assert (failed.status, failed.fault) == ("ERROR", "compute service unavailable")
    ok = sim.create_server(project, ServerSpec("g", "c4m8", tag="g"))
    assert ok.status == "BUILD"
    assert ok.host is not None
    sim.lose_host(ok.host)
    assert sim.get_server(ok.provider_id).status == "ERROR"
    assert all(s.host != ok.host for s in [sim.create_server(project, ServerSpec("h", "c4m8", tag="h"))])


def test_servers_get_fixed_addresses_in_their_clouds_network_in_order(sim: SimulatorProvider) -> None:
    project = sim.ensure_project("990100-D01", "市公安局")
    first = sim.create_server(project, ServerSpec("a", "c4m8", tag="t:a"))
    second = sim.create_server(project, ServerSpec("b", "c4m8", tag="t:b"))
    # The first cloud of a fresh store takes the first /16 of the pool; addresses start at .10.
    assert (first.addresses, second.addresses) == (("10.192.0.10",), ("10.192.0.11",))
    assert first.floating == ()
    # A retried create returns the same server with the same address; a deleted server's is not handed out again.
    assert sim.create_server(project, ServerSpec("a", "c4m8", tag="t:a")).addresses == ("10.192.0.10",)
    sim.delete_server(first.provider_id)
    third = sim.create_server(project, ServerSpec("c", "c4m8", tag="t:c"))
    assert third.addresses == ("10.192.0.12",)

    sim.add_floating_ip(second.provider_id, "59.110.8.21")
    assert sim.get_server(second.provider_id).addresses == ("10.192.0.11", "59.110.8.21")
    assert sim.get_server(second.provider_id).floating == ("59.110.8.21",)
    with pytest.raises(Conflict):
        sim.add_floating_ip(third.provider_id, "59.110.8.21")
    listed = {s.name: (s.addresses, s.floating) for s in sim.list_servers()}
    assert listed == {"b": (("10.192.0.11", "59.110.8.21"), ("59.110.8.21",)), "c": (("10.192.0.12",), ())}

    # Another cloud in the same store has its own network.
    other = SimulatorProvider(sim.store, "unicom-cloud", build_seconds=0)
    other.add_host("cn01", vcpus=8, ram_mb=36864, disk_gb=500)
    other.add_flavor("c4m8", vcpus=4, ram_mb=8192, disk_gb=40)
    elsewhere = other.create_server(other.ensure_project("990100-D01", "市公安局"), ServerSpec("x", "c4m8", tag="t:x"))
    assert elsewhere.addresses == ("10.193.0.10",)


def test_a_server_in_error_at_create_gets_no_address(sim: SimulatorProvider) -> None:
    project = sim.ensure_project("990100-D01", "市公安局")
    sim.inject_fault("create_fails", message="port binding failed")
    failed = sim.create_server(project, ServerSpec("a", "c4m8", tag="t:a"))
    assert (failed.status, failed.addresses) == ("ERROR", ())
    sim.lose_host("cn01")
    sim.lose_host("cn02")
    nowhere = sim.create_server(project, ServerSpec("b", "c4m8", tag="t:b"))
    assert (nowhere.status, nowhere.addresses) == ("ERROR", ())


def _cloud(url: str, clock: Clock) -> SimulatorProvider:
    """The `sim` cloud, in a store of its own, with a quota of 8 instances on 990100-D01's project."""
    provider = SimulatorProvider(SimulatorStore(make_engine(url)), "city-cloud", cpu_allocation_ratio=2.0,
                                 build_seconds=5, clock=clock)
    for name in ("cn01", "cn02"):
        provider.add_host(name, vcpus=8, ram_mb=36864, disk_gb=500)
    provider.add_flavor("c4m8", vcpus=4, ram_mb=8192, disk_gb=40)
    provider.add_flavor("c8m16", vcpus=8, ram_mb=16384, disk_gb=80)
    provider.add_flavor("c16m32", vcpus=16, ram_mb=32768, disk_gb=100)
    provider.set_quota(provider.ensure_project("990100-D01", "市公安局"), QuotaLimits(instances=8))
    return provider


def test_a_batch_of_creates_ends_as_the_same_creates_one_by_one(fresh_url: str, tmp_path: Path,
                                                                 clock: Clock) -> None:
    one_by_one, batched = _cloud(fresh_url, clock), _cloud(f"sqlite:///{tmp_path / 'batch.db'}", clock)
    specs = [ServerSpec("big", "c16m32", tag="t:big"), ServerSpec("a", "c8m16", tag="t:a"),
             ServerSpec("a-again", "c8m16", tag="t:a"),  # a retry: the server made just before
             ServerSpec("b", "c4m8", tag="t:b"), ServerSpec("c", "c8m16", tag="t:c"),
             ServerSpec("d", "c8m16", tag="t:d"), ServerSpec("e", "c4m8", tag="t:e")]
    results = []
    for provider in (one_by_one, batched):
        project = provider.ensure_project("990100-D01", "市公安局")
        provider.create_server(project, ServerSpec("old", "c4m8", tag="t:old"))  # an earlier one, holding .10
        provider.inject_fault("create_fails", message="port binding failed")  # the next create fails
        if provider is one_by_one:
            infos = [provider.create_server(project, spec) for spec in specs]
        else:
            infos = provider.create_servers([(project, spec) for spec in specs])
        assert infos[2].provider_id == infos[1].provider_id
        results.append(([(i.name, i.status, i.host, i.addresses, i.fault) for i in infos],
                        provider.get_quota(project)[1], provider.capacity()))
    assert results[0] == results[1]
    shown, usage, _ = results[1]
    # The fault took the first; the rest spread over the hosts until both are full and the last fits nowhere.
    assert [s[1] for s in shown] == ["ERROR", "BUILD", "BUILD", "BUILD", "BUILD", "BUILD", "ERROR"]
    assert [s[2] for s in shown] == [None, "cn01", "cn01", "cn02", "cn02", "cn01", None]
    assert [s[3] for s in shown] == [(), ("10.192.0.11",), ("10.192.0.11",), ("10.192.0.12",), ("10.192.0.13",),
                                     ("10.192.0.14",), ()]
    assert shown[-1][4] is not None
    assert "No valid host" in shown[-1][4]
    assert usage.instances == 7  # every server but the retry, those in ERROR too


def test_a_batch_a_quota_refuses_creates_nothing(sim: SimulatorProvider) -> None:
    project = sim.ensure_project("990100-D02", "市人力资源和社会保障局")
    sim.set_quota(project, QuotaLimits(instances=2))
    with pytest.raises(Conflict) as caught:
        sim.create_servers([(project, ServerSpec(name, "c4m8", tag=name)) for name in ("a", "b", "c")])
    assert caught.value.field == "quota"
    assert sim.list_servers(project) == []
    with pytest.raises(NotFound):
        sim.create_servers([(project, ServerSpec("a", "c4m8", tag="a")), ("no-such-project", ServerSpec(
            "b", "c4m8", tag="b"))])
    assert sim.list_servers(project) == []


def _grow_then_give_up(sim: SimulatorProvider, project: str) -> None:
    with sim.store.batch():
        sim.add_host("cn04", vcpus=8, ram_mb=36864, disk_gb=500)
        sim.set_quota(project, QuotaLimits(instances=5))
        raise RuntimeError("the caller gave up")


def test_a_store_batch_is_one_transaction_and_a_failed_call_in_it_takes_back_only_its_own(
        sim: SimulatorProvider) -> None:
    project = sim.ensure_project("990100-D01", "市公安局")
    with sim.store.batch():
        first = sim.create_server(project, ServerSpec("a", "c4m8", tag="a"))
        sim.set_quota(project, QuotaLimits(instances=1))
        with pytest.raises(Conflict):
            sim.create_server(project, ServerSpec("b", "c4m8", tag="b"))
        sim.add_host("cn03", vcpus=8, ram_mb=36864, disk_gb=500)
    assert [s.name for s in sim.list_servers(project)] == ["a"]
    assert sim.get_server(first.provider_id).host is not None
    assert {c.resource: c for c in sim.capacity()}["vcpus"].total == 24
    with pytest.raises(RuntimeError):
        _grow_then_give_up(sim, project)
    assert {c.resource: c for c in sim.capacity()}["vcpus"].total == 24
    assert sim.get_quota(project)[0].instances == 1


def test_workloads_are_set_for_many_at_once_or_for_none(sim: SimulatorProvider, clock: Clock) -> None:
    project = sim.ensure_project("990100-D01", "市公安局")
    a, b = (sim.create_server(project, ServerSpec(n, "c4m8", tag=n)) for n in ("a", "b"))
    sim.set_workloads([WorkloadPlan(a.provider_id, "busy", cpu=0.7, mem=0.6, net=1e6),
                       WorkloadPlan(b.provider_id, "idle", cpu=0.02, mem=None, net=300, until=clock.now)])
    sim.set_workload(a.provider_id, "office", cpu=0.5, mem=0.4, net=2e5)  # replaces the busy one
    found = {pid: (w.profile, w.cpu, w.mem, w.since, w.until) for pid, (w, _) in
             sim.workloads([a.provider_id, b.provider_id]).items()}
    assert found == {a.provider_id: ("office", 0.5, 0.4, clock.now, None),
                     b.provider_id: ("idle", 0.02, None, clock.now, clock.now)}
    with pytest.raises(InvalidInput):
        sim.set_workloads([WorkloadPlan(a.provider_id, "idle", cpu=0.01, mem=0.1, net=1),
                           WorkloadPlan(b.provider_id, "sleepy", cpu=0.01, mem=0.1, net=1)])
    with pytest.raises(NotFound):
        sim.set_workloads([WorkloadPlan(a.provider_id, "idle", cpu=0.01, mem=0.1, net=1),
                           WorkloadPlan("no-such-server", "idle", cpu=0.01, mem=0.1, net=1)])
    assert sim.workloads([a.provider_id])[a.provider_id][0].profile == "office"
