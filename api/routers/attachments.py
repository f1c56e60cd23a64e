"""Evidence files (佐证材料) over HTTP: uploaded as the request body, listed and downloaded by those who may see
the record they belong to."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, Response, status
from fastapi.responses import Response as RawResponse

from api.deps import PrincipalDep, SessionDep, bounded_read, in_unit_of_work
from api.routing import DomainRouter
from cloudctl.core import attachments
from cloudctl.core.bounds import Id, Offset
from cloudctl.core.schemas import AttachmentPublic, Page

router = DomainRouter(prefix="/api/v1/attachments", tags=["attachments"])
Entity = Annotated[str, Query(max_length=64, pattern=r"^[a-z_]+$",
                              description="the kind of record: security_ticket, extranet_violation, …")]


@router.post("", status_code=status.HTTP_201_CREATED, openapi_extra={"requestBody": {
    "required": True, "description": "the file itself (PNG, JPEG, PDF, ZIP, Word/Excel, UTF-8 text)",
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
async def upload(request: Request, session: SessionDep, principal: PrincipalDep, entity: Entity,
                 entity_id: Annotated[Id, Query(description="the record's id")],
                 filename: Annotated[str, Query(min_length=1, max_length=255)]) -> AttachmentPublic:
    """Attach a file to a record; its type is read from its content, its size bounded by the settings."""
    data = await request.body()

    def add() -> AttachmentPublic:
        row = attachments.add_attachment(session, principal, entity, entity_id, data, filename=filename)
        return AttachmentPublic.model_validate(row)

    return await in_unit_of_work(add)


@router.get("")
@bounded_read
def list_attachments(session: SessionDep, principal: PrincipalDep, entity: Entity,
                     entity_id: Annotated[Id, Query(description="the record's id")],
                     limit: Annotated[int, Query(ge=1, le=1000)] = 50, offset: Offset = 0) -> Page[AttachmentPublic]:
    rows, total = attachments.list_attachments(session, principal, entity, entity_id, limit=limit, offset=offset)
    return Page[AttachmentPublic].of(rows, total=total, limit=limit, offset=offset)


@router.get("/{attachment_id}")
@bounded_read
def read_attachment(attachment_id: Id, session: SessionDep, principal: PrincipalDep) -> AttachmentPublic:
    return AttachmentPublic.model_validate(attachments.get_attachment(session, principal, attachment_id))


@router.get("/{attachment_id}/content", response_class=RawResponse, responses={200: {
    "description": "the file, as uploaded", "content": {"application/octet-stream": {
        "schema": {"type": "string", "format": "binary"}}}}})
def download(attachment_id: Id, session: SessionDep, principal: PrincipalDep) -> Response:
    row = attachments.get_attachment(session, principal, attachment_id)
    # Always a download, never shown inline: an uploaded file is not a page of this site.
    return Response(attachments.read_content(row), media_type=row.media_type, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{_quote(row.filename)}"})


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")
