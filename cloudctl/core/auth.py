"""Who is acting, and what each role may do.

Authorisation is decided here and in the services, once, for both the CLI and the
API. A permission is ``domain.entity:verb``; each role holds a few patterns.
A ``dept`` principal is also bound to one unit: the services narrow every query to
that unit's subtree and answer "not found" for records outside it, so a department
cannot even learn that another unit's record exists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Literal

from cloudctl.core.errors import PermissionDenied
from cloudctl.core.models import LabelledEnum

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["ROLE_GRANTS", "Principal", "Role", "authorize", "can", "principal_of_user", "register_user_directory",
           "system_principal"]


class Role(LabelledEnum):
    ADMIN = "admin", "管理员", "red"
    OPS = "ops", "运维工程师", "cyan"
    SECOPS = "secops", "安全运营", "magenta"
    DUTY = "duty", "值班员", "yellow"
    AUDITOR = "auditor", "审计员(只读)", "blue"
    DEPT = "dept", "部门用户", "green"
    # 部门负责人: a department's own leader, bound to its unit like a dept user, who approves its requests first.
    DEPT_LEADER = "dept_leader", "部门负责人", "bright_green"


# Patterns are matched with fnmatch; the first domain word names the package.
ROLE_GRANTS: dict[Role, tuple[str, ...]] = {
    Role.ADMIN: ("*",),
    Role.OPS: ("org.*:read", "org.unit:write", "org.system:write", "job:*", "compute.*", "reclaim.*", "extranet.*",
                "security.*:read", "notify.*", "attachment:read", "billing.*"),
    # Security teams drive compliance violations to rectification, and read the rest of the extranet.
    Role.SECOPS: ("org.*:read", "job:*", "compute.*:read", "reclaim.*:read", "extranet.*:read", "security.*",
                  "billing.tariff:read",
                  "extranet.violation:write", "extranet.violation:check", "extranet.device:collect",
                  "notify.*:read", "notify.subscription:write", "attachment:read", "attachment:write"),
    # Duty officers take and triage alerts, check in to their shifts and report; the rest of security they read.
    # The duty periods and the roster are the security team's (security.duty:write).
    Role.DUTY: ("org.*:read", "job:read", "compute.*:read", "reclaim.*:read", "extranet.*:read", "security.*:read",
                "billing.tariff:read",
                "security.alert:*", "security.incident:*", "security.duty:read", "security.duty:report",
                "security.duty:check-in",
                # Evidence of an incident's response (the record's own permission still decides where).
                "notify.*:read", "attachment:read", "attachment:write"),
    Role.AUDITOR: ("*:read",),
    # dept rights are further narrowed to the principal's own unit by the services.
    Role.DEPT: ("org.unit:read", "org.unit:write-contacts", "org.system:read", "org.system:write", "job:read",
                "compute.cloud:read", "compute.quota:read", "compute.request:read", "compute.request:submit",
                "compute.server:read", "compute.server:decommission", "compute.server:operate",
                # The prices are the same for everyone; the statement a department reads is its own subtree's.
                "billing.tariff:read", "billing.statement:read", "billing.budget:read",
                "reclaim.recommendation:read", "reclaim.recommendation:appeal",
                "extranet.link:read", "extranet.plan:read", "extranet.application:read", "extranet.application:submit",
                "extranet.device:read", "extranet.violation:read", "security.asset:read", "security.finding:read",
                "security.ticket:read",
                "security.duty:read", "security.duty:report", "security.drill:read", "security.drill:item",
                # The department's side of each loop: what concerns its own assets (read-only), progress reports
                # with evidence on its tickets and violations, extension requests, who hears what in its unit.
                "security.alert:read", "security.incident:read", "security.ticket:progress",
                "extranet.violation:progress",
                "notify.notification:read", "notify.subscription:read", "notify.subscription:write",
                "notify.channel:read", "attachment:read", "attachment:write"),
}
# A leader holds a department's rights and approves its requests before the bureau's ops do.
ROLE_GRANTS[Role.DEPT_LEADER] = (*ROLE_GRANTS[Role.DEPT], "leader.request:approve")


@dataclass(frozen=True, slots=True)
class Principal:
    username: str
    role: Role
    user_id: int | None = None
    unit_id: int | None = None
    unit_code: str | None = None
    # The bound unit's materialised path ("/1/5/"), so scoping needs no extra query.
    unit_path: str | None = None
    via: Literal["api", "cli", "system"] = "api"

    @property
    def is_scoped(self) -> bool:
        """True when every record this principal touches must belong to its unit."""
        return self.role in (Role.DEPT, Role.DEPT_LEADER)

    @property
    def actor(self) -> str:
        return f"{self.via}:{self.username}"


def system_principal(name: str = "system", *, via: Literal["api", "cli", "system"] = "system") -> Principal:
    """The identity of cloudctl itself (migrations, the demo seeder, the job runner's own work)."""
    return Principal(username=name, role=Role.ADMIN, via=via)


def can(principal: Principal, permission: str) -> bool:
    return any(fnmatchcase(permission, pattern) for pattern in ROLE_GRANTS[principal.role])


def authorize(principal: Principal, permission: str) -> None:
    if not can(principal, permission):
        raise PermissionDenied(
            f"role {principal.role.value} ({principal.role.label}) may not {permission}",
            permission=permission,
        )


# The principal of an active user named by login (the CLI's --as), or None. Users belong to the organisation
# domain, which registers this when it is imported: core never imports a domain.
UserDirectory = Callable[["Session", str, Literal["api", "cli"]], Principal | None]
_user_directory: UserDirectory | None = None


def register_user_directory(lookup: UserDirectory) -> None:
    global _user_directory
    _user_directory = lookup


def principal_of_user(session: Session, username: str, *, via: Literal["api", "cli"]) -> Principal | None:
    if _user_directory is None:
        raise RuntimeError("no user directory is registered: import cloudctl.org.service first")
    return _user_directory(session, username, via)
