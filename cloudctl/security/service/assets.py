"""The rules of security assets: whose an address is, which cloud server and business system it is, and its
MLPS level (等保级别).

An asset is an address the scanners report on. Two records can say whose it is:

- the **cloud's**: a server of one of the clouds holds the address (``server_addresses``, written by every
  server sync). The cloud knows which unit's project the VM is in and which business system it was asked
  for, so for a cloud address it is authoritative: its unit wins over the extranet plan's, and the asset
  takes the server's business system and that system's MLPS level;
- the **extranet plan's**: the unit whose allocated block holds the address (:func:`owner_in_plan`), the
  guess for every address no cloud claims, and for one held by an orphan VM (a project mapped to no unit).

The MLPS level follows the business system unless the security team has set it by hand (a host graded
higher than its system, a system not yet graded): a hand-set level is kept by every later link, until
the team hands it back to the system (:func:`set_mlps_level` with ``None``).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, or_, select, update
from sqlalchemy.orm import Session, joinedload, selectinload

from cloudctl.compute.models import Server, ServerAddress
from cloudctl.compute.provisioning import register_address_listener
from cloudctl.core import audit, read
from cloudctl.core.auth import Principal, authorize, system_principal
from cloudctl.core.errors import InvalidInput
from cloudctl.org.models import BusinessSystem
from cloudctl.org.service import under
from cloudctl.security.models import Asset, LevelSource
from cloudctl.security.scanners.base import canonical_ip

__all__ = ["MLPS_LEVELS", "get_asset", "link_assets", "list_assets", "owner", "owner_in_plan", "set_mlps_level"]

log = logging.getLogger(__name__)

MLPS_LEVELS = (1, 2, 3, 4)
LINKER = system_principal("asset-link")
# How many changed assets one audit row of a link names (the count is always complete).
AUDIT_IDS_MAX = 200


def owner_in_plan(session: Session, ip: str) -> int | None:
    """The unit whose allocated block holds the address, where the extranet plan knows it."""
    from cloudctl.extranet.models import Prefix, PrefixStatus

    try:
        value = int(ipaddress.IPv4Address(ip))
    except ValueError:
        return None  # IPv6: the plan is IPv4
    return session.scalar(select(Prefix.unit_id).where(Prefix.start <= value, Prefix.end >= value,
                                                       Prefix.status != PrefixStatus.CONTAINER,
                                                       Prefix.unit_id.is_not(None))
                          .order_by(Prefix.length.desc()).limit(1))


def owner(session: Session, ip: str) -> int | None:
    """Whose the address is: the unit of the live cloud server holding it, else the extranet plan's guess.

    The same precedence as :func:`link_assets`, for records that are not assets (an alert's target):
    the cloud's record of a VM's unit wins; an address on servers of two units (private ranges repeated
    across clouds) is not guessed from the cloud.
    """
    try:
        address = str(ipaddress.ip_address(ip.strip()))
    except ValueError:
        return None
    holders = set(session.scalars(
        select(Server.unit_id).join(ServerAddress, ServerAddress.server_id == Server.id)
        .where(ServerAddress.ip == address, Server.status != "DELETED", Server.unit_id.is_not(None))))
    return holders.pop() if len(holders) == 1 else owner_in_plan(session, address)


# ---------------------------------------------------------------- linking to the cloud


@dataclass(frozen=True, slots=True)
class _Claim:
    """A live server holding an address, with what the asset takes from it."""

    server_id: int
    unit_id: int | None
    business_system_id: int | None
    mlps_level: int | None


_LINK_FIELDS = ("server_id", "business_system_id", "unit_id", "mlps_level", "mlps_level_source")


def _target(asset: dict[str, Any], claims: set[_Claim]) -> dict[str, Any]:
    """What the asset's link fields should be, given the live servers holding its address."""
    claim: _Claim | None = None
    if len(claims) == 1:
        claim = next(iter(claims))
    elif claims:
        # The same private address on two clouds: keep a link that is still one of them, guess no other
        # (a wrong guess sends the unit someone else's findings).
        claim = next((c for c in claims if c.server_id == asset["server_id"]), None)
        if claim is None:
            log.warning("%s is held by servers %s on several clouds: not linked", asset["ip"],
                        sorted(c.server_id for c in claims))
    target = dict(asset)
    if claim is not None:
        target["server_id"], target["business_system_id"] = claim.server_id, claim.business_system_id
        # The cloud's record of who owns a VM is authoritative for cloud addresses; an orphan VM (its project
        # maps to no unit) leaves the extranet plan's guess standing.
        if claim.unit_id is not None:
            target["unit_id"] = claim.unit_id
    else:
        # No live server holds it now: the link goes, the unit stays the last one known.
        target["server_id"] = target["business_system_id"] = None
    if asset["mlps_level_source"] != LevelSource.MANUAL:
        level = claim.mlps_level if claim is not None else None
        target["mlps_level"] = level
        target["mlps_level_source"] = LevelSource.SYSTEM if level is not None else None
    return target


def link_assets(session: Session, principal: Principal | None = None, *, ips: Collection[str] | None = None) -> int:
    """Link assets to the live servers holding their addresses, and unlink those no server holds any more.

    Every asset on a server address, or linked before, is read in one query and the changed ones written
    in one bulk UPDATE; ``ips`` narrows it to those addresses (a report's hosts). Returns how many changed.
    """
    held = (ServerAddress.__table__.join(Server.__table__, and_(Server.id == ServerAddress.server_id,
                                                                Server.status != "DELETED"))
            .outerjoin(BusinessSystem.__table__, BusinessSystem.id == Server.business_system_id))
    query = (select(Asset.id, Asset.ip, Asset.server_id, Asset.business_system_id, Asset.unit_id, Asset.mlps_level,
                    Asset.mlps_level_source, Server.id.label("holder"), Server.unit_id.label("holder_unit"),
                    Server.business_system_id.label("holder_system"), BusinessSystem.mlps_level.label("level"))
             .select_from(Asset.__table__).outerjoin(held, ServerAddress.ip == Asset.ip)
             .where(or_(Server.id.is_not(None), Asset.server_id.is_not(None))))
    if ips is not None:
        if not ips:
            return 0
        query = query.where(Asset.ip.in_(sorted(set(ips))))
    assets: dict[int, dict[str, Any]] = {}
    claims: dict[int, set[_Claim]] = {}
    for row in session.execute(query):
        assets.setdefault(row.id, {"id": row.id, "ip": row.ip, **{f: getattr(row, f) for f in _LINK_FIELDS}})
        found = claims.setdefault(row.id, set())
        if row.holder is not None:
            found.add(_Claim(row.holder, row.holder_unit, row.holder_system, row.level))
    changes = []
    for asset_id, asset in assets.items():
        target = _target(asset, claims[asset_id])
        if target != asset:
            changes.append({"id": asset_id, **{f: target[f] for f in _LINK_FIELDS}})
    if not changes:
        return 0
    session.execute(update(Asset), changes)
    changed = {c["id"] for c in changes}
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Asset) and obj.id in changed:
            session.expire(obj)
    audit.record(session, principal or LINKER, action="link", entity="security_asset", entity_id="*",
                 after={"changed": len(changes), "linked": sum(c["server_id"] is not None for c in changes),
                        "assets": sorted(changed)[:AUDIT_IDS_MAX]})
    return len(changes)


# A VM built or a cloud synced: the assets on those addresses follow the servers holding them now.
register_address_listener("security.assets", lambda session, principal, ips: link_assets(session, principal, ips=ips))


# ---------------------------------------------------------------- reading


def _asset_query(principal: Principal) -> Select[Asset]:
    query = select(Asset).options(selectinload(Asset.server), joinedload(Asset.business_system))
    return read.within(query, principal, unit=Asset.unit_id)


def list_assets(session: Session, principal: Principal, *, unit: str | None = None,
                business_system: int | None = None, mlps_level: int | None = None, linked: bool | None = None,
                ip: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[Asset], int]:
    """Assets, by address; a department sees its own unit's (and its subtree's)."""
    authorize(principal, "security.asset:read")
    query = _asset_query(principal)
    if unit is not None:
        query = query.where(under(session, principal, unit, Asset.unit_id))
    if business_system is not None:
        query = query.where(Asset.business_system_id == business_system)
    if mlps_level is not None:
        query = query.where(Asset.mlps_level == _level(mlps_level))
    if linked is not None:
        query = query.where(Asset.server_id.is_not(None) if linked else Asset.server_id.is_(None))
    if ip is not None:
        # 2001:DB8::1 finds 2001:db8::1: assets are kept in one spelling; a name finds a host asset.
        query = query.where(or_(Asset.ip == (canonical_ip(ip) or ip.strip()), Asset.hostname == ip.strip().lower()))
    return read.page(session, query, limit=limit, offset=offset, order_by=(Asset.id,))


def get_asset(session: Session, principal: Principal, asset_id: int) -> Asset:
    authorize(principal, "security.asset:read")
    return read.one(session, _asset_query(principal).where(Asset.id == asset_id),
                    missing=f"no asset with id {asset_id}")


# ---------------------------------------------------------------- the security team's grading


def _level(level: int) -> int:
    if level not in MLPS_LEVELS:
        raise InvalidInput("an MLPS level is 1, 2, 3 or 4", field="mlps_level")
    return level


def set_mlps_level(session: Session, principal: Principal, asset_id: int, level: int | None, reason: str) -> Asset:
    """Set the asset's MLPS level by hand (kept by every later link), or with ``None`` hand it back to the
    business system's level."""
    authorize(principal, "security.asset:write")
    asset = get_asset(session, principal, asset_id)
    reason = (reason or "").strip()
    if not 4 <= len(reason) <= 1000:
        raise InvalidInput("say why, 4–1000 characters", field="reason")
    before = audit.snapshot(asset, ("mlps_level", "mlps_level_source"))
    if level is not None:
        asset.mlps_level, asset.mlps_level_source = _level(level), LevelSource.MANUAL
    else:
        system_level = asset.business_system.mlps_level if asset.business_system is not None else None
        asset.mlps_level = system_level
        asset.mlps_level_source = LevelSource.SYSTEM if system_level is not None else None
    session.flush()
    audit.record(session, principal, action="set-mlps-level", entity="security_asset", entity_id=asset.id,
                 before={**before, "reason": None},
                 after={**audit.snapshot(asset, ("mlps_level", "mlps_level_source")), "reason": reason},
                 unit_id=asset.unit_id)
    return asset
