"""The address plan and IP applications, on both databases: NetBox's rules, allocation once and never twice."""

from __future__ import annotations

import ipaddress
import threading

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cloudctl.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from cloudctl.extranet.models import ApplicationStatus, IPAddress, IPApplication, Prefix, PrefixStatus, Zone
from cloudctl.extranet.schemas import AddressCreate, AggregateCreate, ApplicationCreate, PrefixCreate
from cloudctl.extranet.service import ipam
from cloudctl.org.models import User
from cloudctl.org.service import principal_for_user
from tests.factories import ADMIN, MiniCity, build_mini_city

COMMITMENT = {"signer": "张伟", "accepted": True}


def _plan(session: Session) -> None:
    ipam.create_aggregate(session, ADMIN, AggregateCreate(prefix="10.64.0.0/12"))
    ipam.create_aggregate(session, ADMIN, AggregateCreate(prefix="172.20.0.0/16"))
    for prefix, zone in (("10.64.0.0/14", Zone.PUBLIC), ("172.20.0.0/16", Zone.ENTERPRISE)):
        ipam.create_prefix(session, ADMIN, PrefixCreate(prefix=prefix, zone=zone, status=PrefixStatus.CONTAINER))


@pytest.fixture
def city(session: Session) -> MiniCity:
    city = build_mini_city(session)
    _plan(session)
    return city


def _apply(**changes: object) -> ApplicationCreate:
    data: dict[str, object] = {"zone": "public", "prefix_length": 28, "purpose": "视频监控专网终端接入",
                               "commitment": COMMITMENT}
    data.update(changes)
    return ApplicationCreate.model_validate(data)


# ---------------------------------------------------------------- the plan


@pytest.mark.parametrize(("prefix", "zone", "status", "field", "error"), [
    ("192.168.0.0/24", Zone.PUBLIC, PrefixStatus.ACTIVE, "prefix", InvalidInput),  # outside every aggregate
    ("10.64.0.0/14", Zone.PUBLIC, PrefixStatus.CONTAINER, "prefix", Conflict),  # a duplicate
])
def test_plan_errors_are_refused(session: Session, city: MiniCity, prefix: str, zone: Zone, status: PrefixStatus,
                                 field: str, error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        ipam.create_prefix(session, ADMIN, PrefixCreate(prefix=prefix, zone=zone, status=status,
                                                        unit_code="990100-D01"))
    assert caught.value.field == field  # type: ignore[attr-defined]


def test_blocks_nest_in_pools_but_never_overlap_each_other(session: Session, city: MiniCity) -> None:
    block = ipam.create_prefix(session, ADMIN, PrefixCreate(prefix="10.64.1.0/24", zone=Zone.PUBLIC,
                                                            unit_code="990100-D01", vlan=10))
    assert (block.start, block.end, block.length) == (int(ipaddress.IPv4Address("10.64.1.0")),
                                                      int(ipaddress.IPv4Address("10.64.1.255")), 24)
    with pytest.raises(Conflict) as caught:
        ipam.create_prefix(session, ADMIN, PrefixCreate(prefix="10.64.1.128/25", zone=Zone.PUBLIC,
                                                        unit_code="990100-D02"))
    assert "overlaps 10.64.1.0/24" in str(caught.value)
    # The same addresses in another zone or VRF are another routing domain.
    ipam.create_prefix(session, ADMIN, PrefixCreate(prefix="10.64.1.0/24", zone=Zone.PUBLIC, vrf="dept-vpn",
                                                    unit_code="990100-D02"))
    with pytest.raises(InvalidInput) as missing_unit:
        ipam.create_prefix(session, ADMIN, PrefixCreate(prefix="10.64.2.0/24", zone=Zone.PUBLIC))
    assert missing_unit.value.field == "unit_code"


def test_host_bits_set_are_refused_with_the_field() -> None:
    with pytest.raises(ValueError, match="host bits"):
        PrefixCreate(prefix="10.64.1.7/24", zone=Zone.PUBLIC)


@pytest.mark.parametrize(("length", "usable"), [(24, 254), (29, 6), (30, 2), (31, 2), (32, 1)])
def test_usable_hosts_exclude_network_and_broadcast(length: int, usable: int) -> None:
    assert ipam.usable_hosts(length) == usable


def test_utilisation_counts_registered_addresses(session: Session, city: MiniCity) -> None:
    block = ipam.create_prefix(session, ADMIN, PrefixCreate(prefix="10.64.1.0/29", zone=Zone.PUBLIC,
                                                            unit_code="990100-D01"))
    for address in ("10.64.1.1", "10.64.1.2"):
        ipam.create_address(session, ADMIN, AddressCreate(address=address))
    with pytest.raises(InvalidInput) as caught:
        ipam.create_address(session, ADMIN, AddressCreate(address="10.64.1.7"))  # the broadcast
    assert caught.value.field == "address"
    with pytest.raises(Conflict):
        ipam.create_address(session, ADMIN, AddressCreate(address="10.64.1.2"))
    pool = session.scalar(select(Prefix).where(Prefix.prefix == "10.64.0.0/14"))
    assert pool is not None
    usage = ipam.usage(session, [block, pool])
    assert (usage[block.id].used, usage[block.id].usable, usage[block.id].ratio) == (2, 6, 0.3333)
    assert (usage[pool.id].used, usage[pool.id].usable) == (8, 2**18)


def test_import_is_all_or_nothing_and_export_round_trips(session: Session, city: MiniCity) -> None:
    rows = [
        {"kind": "address", "address": "10.64.9.10", "role": "gateway"},
        {"kind": "prefix", "prefix": "10.64.9.0/24", "zone": "public", "unit_code": "990100-D02", "vlan": "10"},
        {"kind": "prefix", "prefix": "10.68.0.0/15", "zone": "dedicated", "status": "container"},
        {"kind": "aggregate", "prefix": "10.68.0.0/15"},
    ]
    # The aggregate overlaps 10.64.0.0/12: the whole file is refused, nothing of it stays.
    with pytest.raises(Conflict), session.begin_nested():
        ipam.import_plan(session, ADMIN, rows)
    assert session.scalar(select(Prefix).where(Prefix.prefix == "10.64.9.0/24")) is None
    rows[3] = {"kind": "aggregate", "prefix": "10.96.0.0/12"}
    rows[2] = {"kind": "prefix", "prefix": "10.96.0.0/15", "zone": "dedicated", "status": "container"}
    result = ipam.import_plan(session, ADMIN, rows)
    assert (result.aggregates, result.prefixes, result.addresses) == (1, 2, 1)
    bad = [{"kind": "prefix", "prefix": "10.64.10.0/33", "zone": "public"}, {"kind": "nonsense"}]
    with pytest.raises(InvalidInput) as caught:
        ipam.import_plan(session, ADMIN, bad)
    assert {e.field for e in caught.value.errors} == {"rows.1.prefix", "rows.2.kind"}
    exported = ipam.export_plan(session, ADMIN)
    assert {"kind": "address", "address": "10.64.9.10", "role": "gateway", "mac": None, "vrf": "global",
            "zone": "public", "description": None} in exported
    assert sum(1 for r in exported if r["kind"] == "aggregate") == 3


# ---------------------------------------------------------------- applications


def test_no_commitment_no_addresses(session: Session, city: MiniCity) -> None:
    with pytest.raises(InvalidInput) as caught:
        ipam.submit_application(session, city.principals["dept"], _apply(commitment={"signer": "张伟",
                                                                                      "accepted": False}))
    assert caught.value.field == "commitment.accepted"
    with pytest.raises(ValueError, match="exactly one of prefix_length and count"):
        _apply(count=4)


def test_a_department_applies_for_itself_and_ops_allocate_the_next_free_block(session: Session,
                                                                              city: MiniCity) -> None:
    dept, ops = city.principals["dept"], city.principals["ops"]
    first = ipam.submit_application(session, dept, _apply())
    assert (first.unit_code, first.status) == ("990100-D01", ApplicationStatus.SUBMITTED)
    with pytest.raises(NotFound):
        ipam.submit_application(session, dept, _apply(unit_code="990100-D02"))
    with pytest.raises(PermissionDenied):
        ipam.approve_application(session, dept, first.id)
    # Something already sits at the start of the pool: allocation goes around it, aligned.
    ipam.create_prefix(session, ADMIN, PrefixCreate(prefix="10.64.0.0/27", zone=Zone.PUBLIC, unit_code="990100-D02"))
    approved = ipam.approve_application(session, ops, first.id)
    assert approved.allocated == ["10.64.0.32/28"]
    with pytest.raises(Conflict):
        ipam.approve_application(session, ops, first.id)  # twice: refused, nothing allocated again
    second = ipam.approve_application(session, ops, ipam.submit_application(session, dept, _apply()).id)
    assert second.allocated == ["10.64.0.48/28"]
    hosts = ipam.approve_application(session, ops, ipam.submit_application(session, dept, _apply(
        prefix_length=None, count=3)).id)
    assert hosts.allocated == ["10.64.0.33", "10.64.0.34", "10.64.0.35"]
    mine, total = ipam.list_applications(session, dept)
    assert total == 3
    assert {a.unit_code for a in mine} == {"990100-D01"}


def test_release_gives_the_block_back(session: Session, city: MiniCity) -> None:
    dept, ops = city.principals["dept"], city.principals["ops"]
    app = ipam.approve_application(session, ops, ipam.submit_application(session, dept, _apply()).id)
    ipam.release_application(session, ops, app.id)
    assert app.status is ApplicationStatus.RELEASED
    assert session.scalar(select(Prefix).where(Prefix.prefix == app.allocated[0])) is None
    again = ipam.approve_application(session, ops, ipam.submit_application(session, dept, _apply()).id)
    assert again.allocated == app.allocated
    with pytest.raises(Conflict):
        ipam.release_application(session, ops, app.id)


def test_reject_needs_a_reason_and_cancel_is_the_applicants(session: Session, city: MiniCity) -> None:
    dept, ops = city.principals["dept"], city.principals["ops"]
    app = ipam.submit_application(session, dept, _apply())
    with pytest.raises(InvalidInput) as caught:
        ipam.reject_application(session, ops, app.id, None)
    assert caught.value.field == "reason"
    ipam.cancel_application(session, dept, app.id)
    with pytest.raises(Conflict):
        ipam.reject_application(session, ops, app.id, "用途不明确")


def test_an_exhausted_pool_is_a_clear_conflict(session: Session, city: MiniCity) -> None:
    dept, ops = city.principals["dept"], city.principals["ops"]
    app = ipam.submit_application(session, dept, _apply(zone="internet"))
    with pytest.raises(Conflict) as caught:
        ipam.approve_application(session, ops, app.id)
    assert caught.value.field == "zone"
    for _ in range(2):
        big = ipam.submit_application(session, dept, _apply(zone="enterprise", prefix_length=17))
        ipam.approve_application(session, ops, big.id)
    more = ipam.submit_application(session, dept, _apply(zone="enterprise", prefix_length=30))
    with pytest.raises(Conflict) as full:
        ipam.approve_application(session, ops, more.id)
    assert full.value.field == "prefix_length"


# ---------------------------------------------------------------- concurrency, on committed data


@pytest.fixture
def committed(fresh_engine: Engine) -> tuple[Engine, MiniCity]:
    with Session(fresh_engine) as session:
        city = build_mini_city(session)
        _plan(session)
        session.commit()
    return fresh_engine, city


def _principal(engine: Engine, username: str) -> object:
    with Session(engine) as session:
        user = session.scalar(select(User).where(User.username == username))
        assert user is not None
        return principal_for_user(user)


def _race(engine: Engine, work: list[int], act: object) -> tuple[list[int], list[str]]:
    done: list[int] = []
    refused: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(work))

    def run(app_id: int) -> None:
        barrier.wait()
        try:
            with Session(engine) as session:
                act(session, app_id)  # type: ignore[operator]
                session.commit()
            with lock:
                done.append(app_id)
        except Conflict as exc:
            with lock:
                refused.append(str(exc))

    threads = [threading.Thread(target=run, args=(app_id,)) for app_id in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return done, refused


def test_two_concurrent_approvals_of_one_application_allocate_once(committed: tuple[Engine, MiniCity]) -> None:
    engine, city = committed
    ops = _principal(engine, "ops-user")
    with Session(engine) as session:
        app_id = ipam.submit_application(session, city.principals["dept"], _apply()).id
        session.commit()
    done, refused = _race(engine, [app_id] * 4,
                          lambda s, i: ipam.approve_application(s, ops, i))  # type: ignore[arg-type]
    assert len(done) == 1
    assert len(refused) == 3
    with Session(engine) as session:
        assert session.scalars(select(Prefix).where(Prefix.application_id == app_id)).all() != []
        assert len(session.scalars(select(Prefix).where(Prefix.application_id == app_id)).all()) == 1


def test_concurrent_approvals_never_hand_out_overlapping_blocks(committed: tuple[Engine, MiniCity]) -> None:
    engine, city = committed
    ops = _principal(engine, "ops-user")
    with Session(engine) as session:
        ids = [ipam.submit_application(session, city.principals["dept"], _apply(prefix_length=length)).id
               for length in (24, 28, 26, 28, 25, 27, 28, 24)]
        session.commit()
    done, refused = _race(engine, ids, lambda s, i: ipam.approve_application(s, ops, i))  # type: ignore[arg-type]
    # A refusal is allowed only as "approve again" (a lost race on a block): never an overlap.
    assert len(done) + len(refused) == len(ids)
    with Session(engine) as session:
        blocks = [ipaddress.IPv4Network(p) for p in session.scalars(
            select(Prefix.prefix).where(Prefix.application_id.is_not(None)))]
        statuses = dict(session.execute(select(IPApplication.id, IPApplication.status)).all())
        assert sum(1 for s in statuses.values() if s is ApplicationStatus.APPROVED) == len(blocks) == len(done)
        assert not any(a.overlaps(b) for i, a in enumerate(blocks) for b in blocks[i + 1:])
        assert session.scalars(select(IPAddress)).all() == []
