"""Tariffs, monthly statements and budgets (thin: parse, call the service, return a schema or a file)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import Query, Response, status
from pydantic import StringConstraints

from api.deps import PrincipalDep, SessionDep, UnitFilter, bounded_read
from api.routing import DomainRouter
from cloudctl.billing import budgets, service
from cloudctl.billing.schemas import BudgetPublic, BudgetSet, StatementPublic, TariffPublic, TariffSet
from cloudctl.core.bounds import Offset
from cloudctl.core.export import XLSX_MEDIA_TYPE, csv_text, xlsx_bytes
from cloudctl.core.schemas import Page, Schema

router = DomainRouter(prefix="/api/v1", tags=["money"])

Month = Annotated[str, Query(description="YYYY-MM", min_length=7, max_length=7)]


class MonthClose(Schema):
    month: Annotated[str, StringConstraints(min_length=7, max_length=7)]


@router.get("/tariffs")
@bounded_read
def list_tariffs(
    session: SessionDep,
    principal: PrincipalDep,
    cloud: Annotated[str | None, Query(description="cloud name", max_length=64)] = None,
    resource: Annotated[str | None, Query(description="vcpu, ram_gib, disk_gib or volume_gib:<type>",
                                          max_length=80)] = None,
    at: Annotated[date | None, Query(description="only the prices in force on this day")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Offset = 0,
) -> Page[TariffPublic]:
    rows, total = service.list_tariffs(session, principal, cloud=cloud, resource=resource, at=at, limit=limit,
                                       offset=offset)
    return Page[TariffPublic](items=rows, total=total, limit=limit, offset=offset)


@router.post("/tariffs", status_code=status.HTTP_201_CREATED)
def set_tariff(data: TariffSet, session: SessionDep, principal: PrincipalDep) -> TariffPublic:
    return service.set_tariff(session, principal, data)


@router.get("/showback", response_model=StatementPublic, responses={200: {
    "description": "the statement as JSON, or its lines as CSV or an .xlsx workbook (format=csv|xlsx)",
    "content": {"text/csv": {"schema": {"type": "string"}},
                XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}}})
def read_showback(
    month: Month,
    session: SessionDep,
    principal: PrincipalDep,
    unit: UnitFilter = None,
    fmt: Annotated[str, Query(alias="format", pattern="^(json|csv|xlsx)$")] = "json",
) -> StatementPublic | Response:
    """A month's statement (账单) of the units the caller sees: a department reads its own subtree's."""
    statement = service.statement(session, principal, month, unit=unit)
    if fmt == "json":
        return statement.public()
    header, rows = service.statement_rows(statement.lines)
    name = f"showback-{month}"
    if fmt == "csv":
        return Response(csv_text(header, rows), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    return Response(xlsx_bytes(header, rows, title=f"账单 {month}"), media_type=XLSX_MEDIA_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'})


@router.post("/showback/closed-months", status_code=status.HTTP_201_CREATED)
def close_month(data: MonthClose, session: SessionDep, principal: PrincipalDep) -> StatementPublic:
    """Close a month that is over (结账): its statement is stored and read as stored from then on."""
    return service.close_month(session, principal, data.month).public()


@router.get("/budgets")
@bounded_read
def list_budgets(
    session: SessionDep,
    principal: PrincipalDep,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    unit: UnitFilter = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Offset = 0,
) -> Page[BudgetPublic]:
    """Budgets (预算) with what is committed against each: a department reads its own subtree's."""
    rows, total = budgets.list_budgets(session, principal, year=year, unit=unit, limit=limit, offset=offset)
    return Page[BudgetPublic](items=rows, total=total, limit=limit, offset=offset)


@router.put("/budgets")
def set_budget(data: BudgetSet, session: SessionDep, principal: PrincipalDep) -> BudgetPublic:
    """Set a unit's (or one business system's) budget for a year; set again, the amount is replaced."""
    return budgets.set_budget(session, principal, data)
