"""Reclaim recommendations, appeals and roll-ups (thin: parse, call the service, return a schema)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query

from api.deps import PrincipalDep, SessionDep, UnitFilter, bounded_read
from api.routing import DomainRouter
from cloudctl.core.bounds import Id, Offset
from cloudctl.core.schemas import Page
from cloudctl.reclaim import planning, service
from cloudctl.reclaim.models import RecommendationKind, RecommendationStatus
from cloudctl.reclaim.schemas import (
    AppealCreate,
    AppealDecision,
    CampaignPublic,
    PlanResourcePublic,
    RecommendationPublic,
    RollupRow,
)

router = DomainRouter(prefix="/api/v1/reclaim", tags=["reclaim"])


@router.get("/recommendations")
@bounded_read
def list_recommendations(
    session: SessionDep,
    principal: PrincipalDep,
    unit: UnitFilter = None,
    kind: RecommendationKind | None = None,
    status: RecommendationStatus | None = None,
    cloud: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Offset = 0,
) -> Page[RecommendationPublic]:
    rows, total = service.list_recommendations(session, principal, unit=unit, kind=kind, status=status, cloud=cloud,
                                               limit=limit, offset=offset)
    return Page[RecommendationPublic].of(rows, total=total, limit=limit, offset=offset)


@router.get("/recommendations/{rec_id}")
@bounded_read
def read_recommendation(rec_id: Id, session: SessionDep, principal: PrincipalDep) -> RecommendationPublic:
    return RecommendationPublic.model_validate(service.get_recommendation(session, principal, rec_id))


@router.post("/recommendations/{rec_id}/appeal")
def appeal(rec_id: Id, body: AppealCreate, session: SessionDep, principal: PrincipalDep) -> RecommendationPublic:
    return RecommendationPublic.model_validate(service.appeal(session, principal, rec_id, body.reason))


@router.post("/recommendations/{rec_id}/appeal/decision")
def decide_appeal(rec_id: Id, body: AppealDecision, session: SessionDep,
                  principal: PrincipalDep) -> RecommendationPublic:
    return RecommendationPublic.model_validate(service.decide_appeal(
        session, principal, rec_id, accept=body.accept, exempt_until=body.exempt_until, note=body.note))


@router.post("/recommendations/{rec_id}/notify")
def notify(rec_id: Id, session: SessionDep, principal: PrincipalDep,
           grace_days: Annotated[int | None, Query(ge=0, le=90)] = None) -> RecommendationPublic:
    return RecommendationPublic.model_validate(service.notify(session, principal, [rec_id], grace_days=grace_days)[0])


@router.get("/campaigns/latest")
def latest_campaign(session: SessionDep, principal: PrincipalDep) -> CampaignPublic | None:
    campaign = service.latest_campaign(session, principal)
    return CampaignPublic.model_validate(campaign) if campaign is not None else None


@router.get("/summary")
def summary(session: SessionDep, principal: PrincipalDep,
            by: Literal["unit", "system", "cloud"] = "unit") -> list[RollupRow]:
    return service.rollup(session, principal, by=by)


@router.get("/purchase-plan")
def purchase_plan(
    session: SessionDep,
    principal: PrincipalDep,
    threshold: Annotated[float | None, Query(gt=0, le=2, description="share of capacity, 0.8 = 80 %")] = None,
    cloud: Annotated[str | None, Query(max_length=64)] = None,
) -> list[PlanResourcePublic]:
    """Purchase planning (采购规划): per cloud and resource, capacity against allocations, use, headroom with and
    without reclaim, the monthly history, and when the threshold is reached (linear trend and Holt's smoothing)."""
    return planning.purchase_plan(session, principal, threshold=threshold, cloud=cloud)
