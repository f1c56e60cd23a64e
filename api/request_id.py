"""The request id: taken from ``X-Request-ID`` when sane (nginx sets one), else made; answered in the same header,
stamped on the request's log lines and on the jobs it submits (see cloudctl.core.logs)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloudctl.core import logs

__all__ = ["RequestId"]

_HEADER = logs.REQUEST_ID_HEADER.lower().encode()


class RequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value.decode("latin-1") for name, value in scope.get("headers", []) if name == _HEADER), None)
        request_id = logs.sane_request_id(given) or logs.new_request_id()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (_HEADER, request_id.encode())]}
            await send(message)

        with logs.bound(request_id=request_id):
            await self.app(scope, receive, send_with_id)
