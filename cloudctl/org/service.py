"""The rules of the organisation domain: units, business systems, users and tokens.

Every function takes the caller's session and principal; none commits. A ``dept``
principal sees only its own unit's subtree: records outside it are "not found".
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, Select, SQLColumnExpression, event, func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, aliased

from cloudctl.core import audit, read
from cloudctl.core.auth import Principal, Role, authorize, can, register_user_directory
from cloudctl.core.config import get_settings
from cloudctl.core.db import SQLITE_BUSY_TIMEOUT_MS
from cloudctl.core.errors import Conflict, InvalidInput, NotAuthenticated, NotFound, PermissionDenied
from cloudctl.core.models import utcnow
from cloudctl.org.models import ALLOWED_PARENTS, ApiToken, BusinessSystem, Unit, UnitKind, User
from cloudctl.org.schemas import (
    BusinessSystemCreate,
    BusinessSystemUpdate,
    UnitCreate,
    UnitUpdate,
    UserCreate,
)

log = logging.getLogger(__name__)

__all__ = [
    "ImportResult",
    "TokenCheck",
    "authenticate_token",
    "cached_token",
    "create_system",
    "create_token",
    "create_unit",
    "create_user",
    "find_unit",
    "get_system",
    "get_unit",
    "get_user",
    "get_user_for_principal",
    "import_units",
    "list_systems",
    "list_tokens",
    "list_units",
    "list_users",
    "principal_for_user",
    "revoke_token",
    "stamp_token_used",
    "token_cache",
    "under",
    "update_system",
    "update_unit",
    "verify_token",
    "whoami",
]

UNIT_AUDIT_FIELDS = ("code", "name", "kind", "parent_code", "contact_name", "contact_phone", "contact_email")
# Setting a system's MLPS level down (等保定级): the security team's (secops) and the administrator's.
GRADING = "security.grading:write"
SYSTEM_AUDIT_FIELDS = ("unit_code", "name", "mlps_level", "user_facing",
                       "contact_name", "contact_phone", "contact_email",
                       "description")
CONTACT_FIELDS = frozenset({"contact_name", "contact_phone", "contact_email"})
TOKEN_PREFIX = "cct_"


# ---------------------------------------------------------------- scope


def under(session: Session, principal: Principal, code: str, unit: SQLColumnExpression[Any], *,
          field_name: str = "unit") -> ColumnElement[bool]:
    """The ``unit`` filter of every list: ``unit`` names the unit ``code`` or one below it. A unit the principal
    may not see is not found, on the filter's field."""
    return read.subtree(get_unit(session, principal, code, field_name=field_name).path, unit)


# ---------------------------------------------------------------- units


def _unit_query(principal: Principal, code: str) -> Select[Unit]:
    return read.within(select(Unit).where(Unit.code == code), principal, unit=Unit.id)


def find_unit(session: Session, principal: Principal, code: str) -> Unit | None:
    authorize(principal, "org.unit:read")
    return session.scalar(_unit_query(principal, code))


def get_unit(session: Session, principal: Principal, code: str, *, field_name: str = "code") -> Unit:
    authorize(principal, "org.unit:read")
    return read.one(session, _unit_query(principal, code), missing=f"no unit with code {code!r}", field=field_name)


def list_units(
    session: Session,
    principal: Principal,
    *,
    kind: UnitKind | None = None,
    parent: str | None = None,
    q: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Any], int]:
    authorize(principal, "org.unit:read")
    # The columns a unit is shown with, its parent's code joined: rows, not objects (a page of ORM objects with
    # their joined parents costs more to build than the query takes). Counted without the join.
    wanted = read.within(select(Unit.id), principal, unit=Unit.id)
    if kind is not None:
        wanted = wanted.where(Unit.kind == kind)
    if parent is not None:
        parent_unit = get_unit(session, principal, parent, field_name="parent")
        wanted = wanted.where(Unit.parent_id == parent_unit.id)
    if q:
        wanted = wanted.where(Unit.name.contains(q, autoescape=True) | Unit.code.contains(q, autoescape=True))
    query: Any = wanted.with_only_columns(*_UNIT_ROW).outerjoin(_ABOVE, _ABOVE.id == Unit.parent_id)
    return read.page(session, query, limit=limit, offset=offset, order_by=(Unit.code,), rows=True, count=wanted)


# A unit's parent, in the units list's join; made once (an alias made per call costs a fifth of the list).
_ABOVE = aliased(Unit, name="above")
_UNIT_ROW = (Unit.id, Unit.code, Unit.name, Unit.kind, _ABOVE.code.label("parent_code"), Unit.contact_name,
             Unit.contact_phone, Unit.contact_email, Unit.created_at, Unit.updated_at)


def _check_parent(kind: UnitKind, parent: Unit | None) -> None:
    allowed = ALLOWED_PARENTS[kind]
    parent_kind = parent.kind if parent is not None else None
    if parent_kind not in allowed:
        if parent is None:
            raise InvalidInput(f"a {kind.value} ({kind.label}) needs a parent unit", field="parent")
        wanted = ", ".join(sorted(k.value for k in allowed if k is not None)) or "none"
        raise InvalidInput(
            f"a {kind.value} ({kind.label}) cannot stand under {parent.code} "
            f"({parent_kind.value if parent_kind else 'none'}); its parent must be: {wanted}",
            field="parent",
        )


def _unit_by_code(session: Session, code: str) -> Unit | None:
    return session.scalar(select(Unit).where(Unit.code == code))


def create_unit(session: Session, principal: Principal, data: UnitCreate) -> Unit:
    authorize(principal, "org.unit:write")
    if _unit_by_code(session, data.code) is not None:
        raise Conflict(f"a unit with code {data.code!r} already exists", field="code")
    parent = None
    if data.parent is not None:
        parent = _unit_by_code(session, data.parent)
        if parent is None:
            raise InvalidInput(f"no unit with code {data.parent!r}", field="parent")
    _check_parent(data.kind, parent)
    if data.kind is UnitKind.CITY and session.scalar(select(Unit.id).where(Unit.kind == UnitKind.CITY)):
        raise Conflict("this deployment already has its city; one deployment serves one city", field="kind")
    unit = Unit(
        code=data.code,
        name=data.name,
        kind=data.kind,
        parent=parent,
        parent_id=parent.id if parent else None,
        contact_name=data.contact_name,
        contact_phone=data.contact_phone,
        contact_email=data.contact_email,
    )
    session.add(unit)
    _flush(session, "code", f"a unit with code {data.code!r} already exists")
    unit.path = f"{parent.path if parent else '/'}{unit.id}/"
    audit.record(session, principal, action="create", entity="unit", entity_id=unit.code,
                 after=audit.snapshot(unit, UNIT_AUDIT_FIELDS), unit_id=unit.id)
    return unit


def update_unit(session: Session, principal: Principal, code: str, data: UnitUpdate) -> Unit:
    changes = data.model_dump(exclude_unset=True)
    if set(changes) <= CONTACT_FIELDS and can(principal, "org.unit:write-contacts"):
        # Departments keep their own contacts current; structure is the bureau's to change.
        authorize(principal, "org.unit:write-contacts")
    else:
        authorize(principal, "org.unit:write")
    unit = get_unit(session, principal, code)
    before = audit.snapshot(unit, UNIT_AUDIT_FIELDS)
    for name in ("name", "kind", "parent"):
        if name in changes and changes[name] is None:
            if name == "parent" and unit.kind is UnitKind.CITY:
                continue
            raise InvalidInput("must not be null", field=name)

    new_kind = changes.get("kind", unit.kind)
    new_parent = unit.parent
    if "parent" in changes and changes["parent"] is not None:
        new_parent = _unit_by_code(session, changes["parent"])
        if new_parent is None:
            raise InvalidInput(f"no unit with code {changes['parent']!r}", field="parent")
        if new_parent.path.startswith(unit.path):
            raise InvalidInput(
                f"{new_parent.code} is {unit.code} itself or below it; the unit tree cannot have a cycle",
                field="parent",
            )
    if new_kind != unit.kind or new_parent is not unit.parent:
        _check_parent(new_kind, new_parent)
        child_kinds = set(session.scalars(select(Unit.kind).where(Unit.parent_id == unit.id).distinct()))
        misfits = sorted(k.value for k in child_kinds if new_kind not in ALLOWED_PARENTS[k])
        if misfits:
            raise InvalidInput(
                f"units of kind {', '.join(misfits)} stand under {unit.code}; they cannot stand under a "
                f"{new_kind.value}",
                field="kind",
            )

    for name in ("name", *sorted(CONTACT_FIELDS)):
        if name in changes:
            setattr(unit, name, changes[name])
    unit.kind = new_kind
    if new_parent is not unit.parent and new_parent is not None:
        _move_subtree(session, unit, new_parent)
    audit.record(session, principal, action="update", entity="unit", entity_id=unit.code,
                 before=before, after=audit.snapshot(unit, UNIT_AUDIT_FIELDS), unit_id=unit.id)
    session.flush()
    return unit


def _move_subtree(session: Session, unit: Unit, new_parent: Unit) -> None:
    old_path = unit.path
    new_path = f"{new_parent.path}{unit.id}/"
    unit.parent = new_parent
    unit.parent_id = new_parent.id
    session.flush()
    # One statement re-roots the whole subtree (the unit included).
    session.execute(
        update(Unit)
        .where(Unit.path.startswith(old_path))
        .values(path=new_path + func.substr(Unit.path, len(old_path) + 1))
        .execution_options(synchronize_session=False)
    )
    session.expire_all()


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def import_units(
    session: Session, principal: Principal, rows: Sequence[UnitCreate], *, update_existing: bool = False,
    numbers: Sequence[int] | None = None,
) -> ImportResult:
    """Create (and optionally update) many units in one transaction: all rows land or none.

    Rows may come in any order; a parent that is itself in the file is created first. ``numbers`` are the rows
    as the file numbers them (a spreadsheet's header is row 1), for the errors; by default 1, 2, 3…
    """
    number = list(numbers) if numbers is not None else list(range(1, len(rows) + 1))
    authorize(principal, "org.unit:write")
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        if row.code in seen:
            raise InvalidInput(
                f"row {number[index]}: code {row.code!r} also on row {number[seen[row.code]]}", field="code"
            )
        seen[row.code] = index
    result = ImportResult()
    for index in _parents_first(rows):
        row = rows[index]
        try:
            existing = _unit_by_code(session, row.code)
            if existing is None:
                create_unit(session, principal, row)
                result.created.append(row.code)
            elif update_existing:
                before = audit.snapshot(existing, UNIT_AUDIT_FIELDS)
                update_unit(session, principal, row.code, UnitUpdate.model_validate(
                    row.model_dump(exclude={"code"}, exclude_unset=True)))
                changed = audit.snapshot(existing, UNIT_AUDIT_FIELDS) != before
                (result.updated if changed else result.unchanged).append(row.code)
            else:
                raise Conflict(f"a unit with code {row.code!r} already exists", field="code")
        except (InvalidInput, Conflict, NotFound) as exc:
            raise type(exc)(f"row {number[index]} ({row.code}): {exc.detail}", errors=exc.errors) from None
    return result


def _parents_first(rows: Sequence[UnitCreate]) -> list[int]:
    index_of = {row.code: i for i, row in enumerate(rows)}
    order: list[int] = []
    state: dict[int, int] = {}  # 1 visiting, 2 done
    for start in range(len(rows)):
        stack = [start]
        while stack:
            i = stack[-1]
            if state.get(i) == 2:
                stack.pop()
                continue
            parent = rows[i].parent
            j = index_of.get(parent) if parent is not None else None
            if j is not None and state.get(j) != 2:
                if state.get(j) == 1:
                    raise InvalidInput(f"the parents in the file form a cycle (through {rows[i].code})",
                                       field="parent")
                state[i] = 1
                stack.append(j)
                continue
            state[i] = 2
            order.append(i)
            stack.pop()
    return order


# ---------------------------------------------------------------- business systems


def get_system(session: Session, principal: Principal, system_id: int) -> BusinessSystem:
    authorize(principal, "org.system:read")
    query = read.within(select(BusinessSystem).where(BusinessSystem.id == system_id), principal,
                        unit=BusinessSystem.unit_id)
    return read.one(session, query, missing=f"no business system with id {system_id}")


def list_systems(
    session: Session,
    principal: Principal,
    *,
    unit: str | None = None,
    mlps_level: int | None = None,
    q: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[BusinessSystem], int]:
    authorize(principal, "org.system:read")
    query = read.within(select(BusinessSystem), principal, unit=BusinessSystem.unit_id)
    if unit is not None:
        query = query.where(under(session, principal, unit, BusinessSystem.unit_id))
    if mlps_level is not None:
        query = query.where(BusinessSystem.mlps_level == mlps_level)
    if q:
        query = query.where(BusinessSystem.name.contains(q, autoescape=True))
    return read.page(session, query, limit=limit, offset=offset, order_by=(BusinessSystem.id,))


def create_system(session: Session, principal: Principal, data: BusinessSystemCreate) -> BusinessSystem:
    authorize(principal, "org.system:write")
    owner = find_unit(session, principal, data.unit_code)
    if owner is None:
        raise InvalidInput(f"no unit with code {data.unit_code!r}", field="unit_code")
    _ensure_system_name_free(session, owner, data.name)
    system = BusinessSystem(unit=owner, unit_id=owner.id, **data.model_dump(exclude={"unit_code"}))
    session.add(system)
    _flush(session, "name", f"{owner.code} already has a business system named {data.name!r}")
    audit.record(session, principal, action="create", entity="business_system", entity_id=system.id,
                 after=audit.snapshot(system, SYSTEM_AUDIT_FIELDS), unit_id=owner.id)
    return system


def update_system(
    session: Session, principal: Principal, system_id: int, data: BusinessSystemUpdate
) -> BusinessSystem:
    changes = data.model_dump(exclude_unset=True)
    # Grading (等保定级) is the security team's: lowering a system's level is theirs to decide, and they may do
    # that alone. A department or ops may raise it, and may ask the security team to lower it.
    grading_only = set(changes) == {"mlps_level"}
    if not (grading_only and can(principal, GRADING)):
        authorize(principal, "org.system:write")
    system = get_system(session, principal, system_id)
    for name in ("name", "mlps_level", "user_facing"):
        if name in changes and changes[name] is None:
            raise InvalidInput("must not be null", field=name)
    lowered = changes.get("mlps_level") is not None and changes["mlps_level"] < system.mlps_level
    if lowered and not can(principal, GRADING):
        raise PermissionDenied(f"lowering {system.name}'s MLPS level (等保级别) from {system.mlps_level} is the "
                               "security team's decision: ask them to regrade it", field="mlps_level",
                               permission=GRADING)
    before = audit.snapshot(system, SYSTEM_AUDIT_FIELDS)
    if "name" in changes and changes["name"] != system.name:
        _ensure_system_name_free(session, system.unit, changes["name"])
    for name, value in changes.items():
        setattr(system, name, value)
    _flush(session, "name", f"{system.unit.code} already has a business system named {system.name!r}")
    audit.record(session, principal, action="update", entity="business_system", entity_id=system.id,
                 before=before, after=audit.snapshot(system, SYSTEM_AUDIT_FIELDS), unit_id=system.unit_id)
    return system


def _ensure_system_name_free(session: Session, owner: Unit, name: str) -> None:
    clash = session.scalar(
        select(BusinessSystem.id).where(BusinessSystem.unit_id == owner.id, BusinessSystem.name == name)
    )
    if clash is not None:
        raise Conflict(f"{owner.code} already has a business system named {name!r}", field="name")


# ---------------------------------------------------------------- users and tokens


def create_user(session: Session, principal: Principal, data: UserCreate) -> User:
    authorize(principal, "org.user:write")
    if session.scalar(select(User.id).where(User.username == data.username)) is not None:
        raise Conflict(f"a user named {data.username!r} already exists", field="username")
    unit = None
    if data.role in (Role.DEPT, Role.DEPT_LEADER):
        if data.unit is None:
            raise InvalidInput(f"a {data.role.value} user must be bound to a unit (--unit CODE)", field="unit")
        unit = _unit_by_code(session, data.unit)
        if unit is None:
            raise InvalidInput(f"no unit with code {data.unit!r}", field="unit")
    elif data.unit is not None:
        raise InvalidInput(f"only dept and dept_leader users are bound to a unit, not {data.role.value}",
                           field="unit")
    user = User(username=data.username, role=data.role, unit=unit, unit_id=unit.id if unit else None,
                display_name=data.display_name)
    session.add(user)
    _flush(session, "username", f"a user named {data.username!r} already exists")
    audit.record(session, principal, action="create", entity="user", entity_id=user.username,
                 after=audit.snapshot(user, ("username", "role", "unit_code", "display_name")),
                 unit_id=user.unit_id)
    return user


def get_user(session: Session, principal: Principal, username: str) -> User:
    authorize(principal, "org.user:read")
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user named {username!r}", field="username")
    return user


def list_users(
    session: Session, principal: Principal, *, role: Role | None = None, unit: str | None = None
) -> list[User]:
    authorize(principal, "org.user:read")
    query = select(User).order_by(User.username)
    if role is not None:
        query = query.where(User.role == role)
    if unit is not None:
        query = query.where(under(session, principal, unit, User.unit_id))
    return list(session.scalars(query).all())


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session,
    principal: Principal,
    username: str,
    *,
    ttl_days: int | None = None,
    description: str | None = None,
) -> tuple[ApiToken, str]:
    """Issue a token; the secret is returned once and only its hash is stored."""
    authorize(principal, "org.token:write")
    user = get_user(session, principal, username)
    if not user.active:
        raise InvalidInput(f"user {username!r} is disabled", field="user")
    ttl = ttl_days if ttl_days is not None else get_settings().token_ttl_days
    if not 1 <= ttl <= 3650:
        raise InvalidInput("must be between 1 and 3650 days", field="ttl_days")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user=user,
        user_id=user.id,
        token_hash=_hash_token(secret),
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        description=description,
        expires_at=utcnow() + timedelta(days=ttl),
    )
    session.add(token)
    session.flush()
    audit.record(session, principal, action="create", entity="api_token", entity_id=token.id,
                 after={"user": user.username, "prefix": token.prefix, "expires_at": token.expires_at},
                 unit_id=user.unit_id)
    return token, secret


def list_tokens(session: Session, principal: Principal, *, username: str | None = None) -> list[ApiToken]:
    authorize(principal, "org.token:read")
    query = select(ApiToken).join(ApiToken.user).order_by(ApiToken.id)
    if username is not None:
        query = query.where(User.username == username)
    return list(session.scalars(query).all())


def revoke_token(session: Session, principal: Principal, token_ref: str) -> ApiToken:
    """Revoke by id or by the prefix shown in listings."""
    authorize(principal, "org.token:write")
    query = select(ApiToken)
    query = query.where(ApiToken.id == int(token_ref)) if token_ref.isdigit() else query.where(
        ApiToken.prefix == token_ref)
    matches = list(session.scalars(query).all())
    if not matches:
        raise NotFound(f"no token {token_ref!r}", field="token")
    if len(matches) > 1:
        raise Conflict(f"{token_ref!r} names {len(matches)} tokens; revoke by id", field="token")
    token = matches[0]
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(session, principal, action="revoke", entity="api_token", entity_id=token.id,
                     before={"revoked_at": None}, after={"revoked_at": token.revoked_at},
                     unit_id=token.user.unit_id)
    return token


def get_user_for_principal(session: Session, principal: Principal) -> User | None:
    """The user record behind a principal (none for cloudctl's own system principal)."""
    return session.get(User, principal.user_id) if principal.user_id is not None else None


def whoami(check: TokenCheck) -> tuple[str | None, str | None]:
    """The display name of the user behind a verified token and the name of the unit it is bound to. Both were read
    with the token (one query; /me is asked on every page load) and are as fresh as the principal itself: any
    change to a user or unit in this process forgets every cached check."""
    if check.principal.unit_code is not None:
        authorize(check.principal, "org.unit:read")
    return check.display_name, check.unit_name


def principal_for_user(user: User, *, via: str = "api") -> Principal:
    return Principal(
        username=user.username,
        role=user.role,
        user_id=user.id,
        unit_id=user.unit_id,
        unit_code=user.unit.code if user.unit else None,
        unit_path=user.unit.path if user.unit else None,
        via="cli" if via == "cli" else "api",
    )


def _active_user_principal(session: Session, username: str, via: str) -> Principal | None:
    user = session.scalar(select(User).where(User.username == username))
    return principal_for_user(user, via=via) if user is not None and user.active else None


register_user_directory(_active_user_principal)


# last_used_at is a hint for finding stale tokens, not an access log: write it at most this often,
# so reads do not turn into writes on every request.
LAST_USED_RESOLUTION = timedelta(minutes=5)


def authenticate_token(session: Session, secret: str, *, now: datetime | None = None) -> tuple[Principal, ApiToken]:
    """The principal behind a bearer token; every failure is the same 401 so tokens cannot be probed."""
    if not secret.startswith(TOKEN_PREFIX):
        raise NotAuthenticated("invalid or expired token")
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash_token(secret)))
    now = now or utcnow()
    if token is None or token.revoked_at is not None or token.expires_at <= now or not token.user.active:
        raise NotAuthenticated("invalid or expired token")
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        token.last_used_at = now
    return principal_for_user(token.user), token


@dataclass(frozen=True)
class TokenCheck:
    """A verified token: who it stands for, until when, and whether its "last used" stamp is due."""

    principal: Principal
    token_id: int
    expires_at: datetime
    stale: bool
    display_name: str | None = None
    unit_name: str | None = None


class _TokenCache:
    """Verified tokens for a few seconds (``api_token_cache_seconds``), by hash. Any change to a token, a user or a
    unit in this process empties it at once (see :func:`_forget_on_change`); another process's revocation takes
    effect within the cache's lifetime."""

    def __init__(self) -> None:
        self._checks: dict[str, tuple[float, TokenCheck]] = {}
        self._lock = threading.Lock()
        self.generation = 0  # counts clears: a check read before one is not kept

    def get(self, token_hash: str, now: datetime) -> TokenCheck | None:
        hit = self._checks.get(token_hash)
        if hit is None:
            return None
        cached_at, check = hit
        if time.monotonic() - cached_at >= get_settings().api_token_cache_seconds or check.expires_at <= now:
            with self._lock:
                self._checks.pop(token_hash, None)
            return None
        return check

    def put(self, token_hash: str, check: TokenCheck, generation: int) -> None:
        with self._lock:
            if generation != self.generation:
                return  # a change came in while this token was being read: what was read may be stale
            if len(self._checks) >= 10_000:
                self._checks.clear()
            self._checks[token_hash] = (time.monotonic(), check)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._checks.clear()


token_cache = _TokenCache()


def verify_token(session: Session, secret: str, *, now: datetime | None = None) -> TokenCheck:
    """:func:`authenticate_token` for the API: one indexed lookup (token, user and unit joined) that writes nothing,
    or none within ``api_token_cache_seconds`` of the last. The "last used" stamp is left to
    :func:`stamp_token_used`, in a transaction of its own."""
    if not secret.startswith(TOKEN_PREFIX):
        raise NotAuthenticated("invalid or expired token")
    now = now or utcnow()
    token_hash = _hash_token(secret)
    check = token_cache.get(token_hash, now)
    if check is not None:
        return check
    generation = token_cache.generation
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash))
    if token is None or token.revoked_at is not None or token.expires_at <= now or not token.user.active:
        raise NotAuthenticated("invalid or expired token")
    check = TokenCheck(principal_for_user(token.user), token.id, token.expires_at,
                       stale=token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION,
                       display_name=token.user.display_name,
                       unit_name=token.user.unit.name if token.user.unit is not None else None)
    token_cache.put(token_hash, replace(check, stale=False), generation)
    return check


def cached_token(secret: str, *, now: datetime | None = None) -> TokenCheck | None:
    """The cached check of ``secret``, if a fresh one is held; never touches the database."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    return token_cache.get(_hash_token(secret), now or utcnow())


def stamp_token_used(engine: Engine, token_id: int, *, now: datetime | None = None) -> bool:
    """Write a token's "last used" stamp in a transaction of its own; skipped (False), never failed, when the
    database is busy: the stamp is a hint, and a request must not wait for it."""
    now = now or utcnow()
    statement = update(ApiToken).where(ApiToken.id == token_id).where(
        ApiToken.last_used_at.is_(None) | (ApiToken.last_used_at < now - LAST_USED_RESOLUTION)
    ).values(last_used_at=now)
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.connect() as connection:
            # On the driver's connection: through SQLAlchemy, the PRAGMA would begin a transaction first.
            raw = connection.connection.dbapi_connection
            if sqlite:
                raw.execute("PRAGMA busy_timeout=50")  # type: ignore[union-attr]
            try:
                with connection.begin():
                    if not sqlite:
                        connection.exec_driver_sql("SET LOCAL lock_timeout = '50ms'")
                    connection.execute(statement)
            finally:
                if sqlite:
                    raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")  # type: ignore[union-attr]
    except OperationalError as exc:
        log.info("token %s: last-used stamp skipped, the database is busy (%s)", token_id, type(exc.orig).__name__)
        return False
    return True


def _forget_on_change(session: Session, _context: Any) -> None:
    # A token revoked, a user disabled or moved, a unit moved: cached principals may no longer hold. Empty the
    # cache now, and again at commit, so a check read between this flush and the commit is not kept either.
    if any(isinstance(o, ApiToken | User | Unit) for o in (*session.new, *session.dirty, *session.deleted)):
        session.info["cloudctl_forget_tokens"] = True
        token_cache.clear()


def _forget_at_commit(session: Session) -> None:
    if session.info.pop("cloudctl_forget_tokens", False):
        token_cache.clear()


def _keep_at_rollback(session: Session, _previous: Any) -> None:
    session.info.pop("cloudctl_forget_tokens", None)


event.listen(Session, "before_flush", lambda session, context, _instances: _forget_on_change(session, context))
event.listen(Session, "after_commit", _forget_at_commit)
event.listen(Session, "after_soft_rollback", _keep_at_rollback)


def _flush(session: Session, field_name: str, message: str) -> None:
    """Flush, turning a uniqueness race lost to another writer into a clean 409."""
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(message, field=field_name) from None


def units_by_codes(session: Session, codes: Iterable[str]) -> dict[str, Unit]:
    wanted = list(set(codes))
    if not wanted:
        return {}
    return {u.code: u for u in session.scalars(select(Unit).where(Unit.code.in_(wanted)))}
