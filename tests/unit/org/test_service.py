"""The rules of units, business systems, users and tokens, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloudctl.core.audit import AuditEntry
from cloudctl.core.auth import Role
from cloudctl.core.errors import Conflict, InvalidInput, NotAuthenticated, NotFound, PermissionDenied
from cloudctl.core.models import utcnow
from cloudctl.org import service
from cloudctl.org.models import Unit, UnitKind
from cloudctl.org.schemas import BusinessSystemUpdate, UnitCreate, UnitUpdate
from tests.factories import ADMIN, build_mini_city, make_unit


def _count_units(session: Session) -> int:
    return session.scalar(select(func.count(Unit.id))) or 0


def test_tree_paths_follow_parents(session: Session) -> None:
    build_mini_city(session)
    village = service.get_unit(session, ADMIN, "990102001001")
    town = service.get_unit(session, ADMIN, "990102001")
    county = service.get_unit(session, ADMIN, "990102")
    assert village.path == f"{town.path}{village.id}/"
    assert town.path == f"{county.path}{town.id}/"
    assert village.parent_code == "990102001"


@pytest.mark.parametrize(
    ("data", "field", "error"),
    [
        ({"code": "990100-D01", "name": "重复", "kind": "department", "parent": "990100"}, "code", Conflict),
        ({"code": "X1", "name": "无父单位", "kind": "department", "parent": "NOPE"}, "parent", InvalidInput),
        ({"code": "X2", "name": "挂错层级的村", "kind": "village", "parent": "990100"}, "parent", InvalidInput),
        ({"code": "X3", "name": "孤儿部门", "kind": "department"}, "parent", InvalidInput),
        ({"code": "X4", "name": "第二个市", "kind": "city"}, "kind", Conflict),
    ],
)
def test_create_unit_refusals_name_the_field_and_write_nothing(
    session: Session, data: dict[str, str], field: str, error: type[Exception]
) -> None:
    build_mini_city(session)
    before = _count_units(session)
    with pytest.raises(error) as caught:
        service.create_unit(session, ADMIN, UnitCreate.model_validate(data))
    assert caught.value.field == field  # type: ignore[attr-defined]
    assert _count_units(session) == before


def test_moving_a_unit_under_its_own_descendant_is_refused(session: Session) -> None:
    build_mini_city(session)
    with pytest.raises(InvalidInput) as caught:
        service.update_unit(session, ADMIN, "990100-D01", UnitUpdate(parent="990100-M001"))
    assert caught.value.field == "parent"
    assert "cycle" in caught.value.detail
    assert service.get_unit(session, ADMIN, "990100-D01").parent_code == "990100"


def test_moving_a_subtree_rewrites_every_path(session: Session) -> None:
    build_mini_city(session)
    make_unit(session, "990103", "西山县", UnitKind.COUNTY, "990100")
    service.update_unit(session, ADMIN, "990102001", UnitUpdate(parent="990103"))
    new_county = service.get_unit(session, ADMIN, "990103")
    town = service.get_unit(session, ADMIN, "990102001")
    village = service.get_unit(session, ADMIN, "990102001001")
    assert town.path == f"{new_county.path}{town.id}/"
    assert village.path == f"{town.path}{village.id}/"
    moved = session.scalars(select(AuditEntry).where(AuditEntry.entity_id == "990102001")).all()[-1]
    assert moved.before == {"parent_code": "990102"}
    assert moved.after == {"parent_code": "990103"}


def test_changing_kind_must_still_fit_children(session: Session) -> None:
    build_mini_city(session)
    with pytest.raises(InvalidInput) as caught:
        service.update_unit(session, ADMIN, "990102", UnitUpdate(kind=UnitKind.DEPARTMENT))
    assert caught.value.field == "kind"


def test_dept_principal_sees_only_its_subtree(session: Session) -> None:
    city = build_mini_city(session)
    dept = city.principals["dept"]
    units, total = service.list_units(session, dept)
    assert {u.code for u in units} == {"990100-D01", "990100-M001"}
    assert total == 2
    with pytest.raises(NotFound):
        service.get_unit(session, dept, "990100-D02")
    with pytest.raises(NotFound):
        service.get_system(session, dept, city.systems["other"])
    systems, _ = service.list_systems(session, dept)
    assert [s.id for s in systems] == [city.systems["own"]]


def test_dept_may_update_own_contacts_but_not_structure(session: Session) -> None:
    city = build_mini_city(session)
    dept = city.principals["dept"]
    unit = service.update_unit(session, dept, "990100-D01", UnitUpdate(contact_name="李娜"))
    assert unit.contact_name == "李娜"
    with pytest.raises(PermissionDenied):
        service.update_unit(session, dept, "990100-D01", UnitUpdate(name="市公安局(改)"))
    with pytest.raises(NotFound):
        service.update_unit(session, dept, "990100-D02", UnitUpdate(contact_name="王芳"))


def test_read_only_roles_cannot_write(session: Session) -> None:
    city = build_mini_city(session)
    for role in ("auditor", "duty"):
        with pytest.raises(PermissionDenied):
            service.update_system(session, city.principals[role], city.systems["own"],
                                  BusinessSystemUpdate(mlps_level=2))
    # The security team grades systems, and changes nothing else of them.
    with pytest.raises(PermissionDenied):
        service.update_system(session, city.principals["secops"], city.systems["own"],
                              BusinessSystemUpdate(name="视频监控平台"))


def test_lowering_the_mlps_level_is_the_security_teams(session: Session) -> None:
    city = build_mini_city(session)
    for role in ("dept", "ops"):
        with pytest.raises(PermissionDenied) as refused:
            service.update_system(session, city.principals[role], city.systems["own"],
                                  BusinessSystemUpdate(mlps_level=2))
        assert refused.value.field == "mlps_level"
    raised = service.update_system(session, city.principals["dept"], city.systems["own"],
                                   BusinessSystemUpdate(mlps_level=4))
    assert raised.mlps_level == 4
    lowered = service.update_system(session, city.principals["secops"], city.systems["own"],
                                    BusinessSystemUpdate(mlps_level=2))
    assert lowered.mlps_level == 2


def test_every_change_is_audited_with_only_what_changed(session: Session) -> None:
    city = build_mini_city(session)
    service.update_system(session, city.principals["ops"], city.systems["own"], BusinessSystemUpdate(mlps_level=4))
    entry = session.scalars(select(AuditEntry).where(AuditEntry.entity == "business_system")
                            .order_by(AuditEntry.id.desc())).first()
    assert entry is not None
    assert entry.actor == "api:ops-user"
    assert entry.before == {"mlps_level": 3}
    assert entry.after == {"mlps_level": 4}
    # An update that changes nothing leaves no trace.
    count = session.scalar(select(func.count(AuditEntry.id)))
    service.update_system(session, city.principals["ops"], city.systems["own"], BusinessSystemUpdate(mlps_level=4))
    assert session.scalar(select(func.count(AuditEntry.id))) == count


def test_import_creates_parents_first_and_is_all_or_nothing(session: Session) -> None:
    build_mini_city(session)
    rows = [
        UnitCreate(code="990104001", name="新桥镇", kind=UnitKind.TOWN, parent="990104"),
        UnitCreate(code="990104", name="南湖区", kind=UnitKind.COUNTY, parent="990100"),
    ]
    result = service.import_units(session, ADMIN, rows)
    assert result.created == ["990104", "990104001"]
    before = _count_units(session)
    bad = [
        UnitCreate(code="990105", name="北岭县", kind=UnitKind.COUNTY, parent="990100"),
        UnitCreate(code="990105001", name="错层村", kind=UnitKind.VILLAGE, parent="990105"),
    ]
    with pytest.raises(InvalidInput) as caught, session.begin_nested():
        service.import_units(session, ADMIN, bad)
    assert "row 2" in caught.value.detail
    assert caught.value.field == "parent"
    assert _count_units(session) == before


def test_chinese_names_round_trip(session: Session) -> None:
    build_mini_city(session)
    name = "市人力资源和社会保障局·信息中心（12333）"
    make_unit(session, "990100-M099", name, UnitKind.MUNICIPAL_UNIT, "990100", contact_name="欧阳娜娜")
    session.expire_all()
    unit = service.get_unit(session, ADMIN, "990100-M099")
    assert unit.name == name
    assert unit.contact_name == "欧阳娜娜"
    found, _ = service.list_units(session, ADMIN, q="社会保障")
    assert "990100-M099" in {u.code for u in found}


def test_dept_user_needs_a_unit_and_others_must_not_have_one(session: Session) -> None:
    from cloudctl.org.schemas import UserCreate

    build_mini_city(session)
    with pytest.raises(InvalidInput) as caught:
        service.create_user(session, ADMIN, UserCreate(username="d9", role=Role.DEPT))
    assert caught.value.field == "unit"
    with pytest.raises(InvalidInput):
        service.create_user(session, ADMIN, UserCreate(username="o9", role=Role.OPS, unit="990100-D01"))


def test_tokens_authenticate_until_revoked_or_expired(session: Session) -> None:
    city = build_mini_city(session)
    secret = city.tokens["dept"]
    principal, token = service.authenticate_token(session, secret)
    assert principal.role is Role.DEPT
    assert principal.unit_code == "990100-D01"
    assert token.token_hash != secret
    assert secret not in token.token_hash
    with pytest.raises(NotAuthenticated):
        service.authenticate_token(session, secret, now=token.expires_at + timedelta(seconds=1))
    with pytest.raises(NotAuthenticated):
        service.authenticate_token(session, secret[:-2] + "xx")
    service.revoke_token(session, ADMIN, str(token.id))
    with pytest.raises(NotAuthenticated):
        service.authenticate_token(session, secret)
    assert token.revoked_at is not None
    assert token.revoked_at <= utcnow()
