"""The duty room's big screen (值班大屏): the page, and the one JSON answer it reads."""

from __future__ import annotations

from importlib import resources
from typing import Annotated

from fastapi import BackgroundTasks, Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.security import HTTPAuthorizationCredentials

from api.deps import SessionDep, bearer, get_principal
from api.routing import DomainRouter
from cloudctl.core.auth import Principal, Role
from cloudctl.core.config import get_settings
from monitors.screen import ScreenSummary, summary

router = DomainRouter(tags=["big screen"])


async def screen_viewer(request: Request, background: BackgroundTasks, session: SessionDep,
                        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
    """The token's principal; without a token, a read-only viewer where the deployment allows a public screen
    (a closed duty-room network), so the wall display needs no token in its address."""
    if credentials is None and get_settings().screen_public:
        return Principal(username="screen", role=Role.AUDITOR, via="system")
    return await get_principal(request, background, session, credentials)


@router.get("/screen", response_class=HTMLResponse, include_in_schema=False)
def screen_page() -> HTMLResponse:
    """The page holds no data: open it as /screen#token=VIEW_TOKEN (an auditor's or duty officer's token); the
    part after # never leaves the browser, and the page's script sends the token as a header."""
    return HTMLResponse(resources.files("monitors").joinpath("static/screen.html").read_text(encoding="utf-8"))


@router.get("/static/screen.js", include_in_schema=False)
def screen_script() -> Response:
    """The page's script, a file of its own: the pages' content security policy runs no inline script."""
    return Response(resources.files("monitors").joinpath("static/screen.js").read_text(encoding="utf-8"),
                    media_type="text/javascript")


@router.get("/api/v1/screen/summary")
def screen_summary(session: SessionDep, principal: Annotated[Principal, Depends(screen_viewer)]) -> ScreenSummary:
    return summary(session, principal)
