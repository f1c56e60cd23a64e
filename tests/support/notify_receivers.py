"""Real receivers of notifications on loopback: an SMTP server (aiosmtpd) and an HTTP server that answers as the
DingTalk, WeCom and Feishu robot endpoints, a webhook and an SMS gateway do, checking each request's format and
signature the way the platforms document them (and answering a bad one as they do: HTTP 200 with an error code).

Both can be stopped and started again on the same port, to play a receiver that is away for a while.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

__all__ = ["MailSink", "RobotReceiver", "free_port"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Handler:
    def __init__(self, sink: MailSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        mail = message_from_bytes(content, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        with self.sink.lock:
            self.sink.mails.append((list(envelope.rcpt_tos), mail))
        return "250 OK"


class MailSink:
    """An SMTP server on loopback that keeps every message it accepts."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.mails: list[tuple[list[str], EmailMessage]] = []
        self.lock = threading.Lock()
        self._controller: Controller | None = None

    def start(self) -> MailSink:
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [mail for rcpts, mail in self.mails if address in rcpts]

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


@dataclass
class Received:
    platform: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    verified: bool
    error: str = ""


@dataclass
class RobotReceiver:
    """Robot endpoints on loopback: ``/dingtalk/robot/send?access_token=T``, ``/wecom/webhook/send?key=K``,
    ``/feishu/bot/v2/hook/T``, ``/webhook`` and ``/sms``; secrets are checked against those given here."""

    dingtalk_secret: str = "SECdingtalktest"
    feishu_secret: str = "feishutestsecret"
    webhook_secret: str = "webhooktestsecret"
    wecom_key: str = "wecom-test-key"
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def accepted(self, platform: str) -> list[Received]:
        return [r for r in self.received if r.platform == platform and r.verified]

    def start(self) -> RobotReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                answer = receiver._handle(self.path, raw, {k.lower(): v for k, v in self.headers.items()})
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> RobotReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ------------------------------------------------------------ the platforms' checks

    def _handle(self, path: str, raw: bytes, headers: dict[str, str]) -> dict[str, Any]:
        url = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        try:
            body = json.loads(raw.decode("utf-8"))
        except ValueError:
            return self._refuse("?", path, {}, headers, "not JSON", {"errcode": 40035, "errmsg": "invalid json"})
        if url.path.startswith("/dingtalk/"):
            return self._dingtalk(path, query, body, headers)
        if url.path.startswith("/wecom/"):
            if query.get("key") != self.wecom_key:
                return self._refuse("wecom", path, body, headers, "bad key", {"errcode": 93000, "errmsg": "invalid"})
            ok = body.get("msgtype") == "markdown" and isinstance(body.get("markdown", {}).get("content"), str)
            return self._accept("wecom", path, body, headers, ok, {"errcode": 0, "errmsg": "ok"})
        if url.path.startswith("/feishu/"):
            return self._feishu(path, body, headers)
        if url.path == "/webhook":
            expected = "sha256=" + hmac.new(self.webhook_secret.encode(), raw, hashlib.sha256).hexdigest()
            ok = hmac.compare_digest(headers.get("x-cloudctl-signature", ""), expected) and \
                bool(headers.get("idempotency-key"))
            return self._accept("webhook", path, body, headers, ok, {"ok": ok})
        if url.path == "/sms":
            ok = bool(body.get("mobile")) and bool(body.get("content"))
            return self._accept("sms", path, body, headers, ok, {"code": 0})
        return self._refuse("?", path, body, headers, "unknown path", {"errcode": 404})

    def _dingtalk(self, path: str, query: dict[str, str], body: dict[str, Any],
                  headers: dict[str, str]) -> dict[str, Any]:
        stamp, sign = query.get("timestamp", ""), query.get("sign", "")
        if not stamp.isdigit() or abs(time.time() * 1000 - int(stamp)) > 3600_000:
            return self._refuse("dingtalk", path, body, headers, "timestamp", {"errcode": 310000,
                                                                               "errmsg": "invalid timestamp"})
        digest = hmac.new(self.dingtalk_secret.encode(), f"{stamp}\n{self.dingtalk_secret}".encode(),
                          hashlib.sha256).digest()
        # parse_qs has undone the URL encoding the sender applied: what is left is the base64 text.
        if not hmac.compare_digest(base64.b64encode(digest).decode(), sign):
            return self._refuse("dingtalk", path, body, headers, "sign", {"errcode": 310000,
                                                                          "errmsg": "sign not match"})
        ok = body.get("msgtype") == "markdown" and {"title", "text"} <= set(body.get("markdown", {}))
        return self._accept("dingtalk", path, body, headers, ok, {"errcode": 0, "errmsg": "ok"})

    def _feishu(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        stamp, sign = str(body.get("timestamp", "")), str(body.get("sign", ""))
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > 3600:
            return self._refuse("feishu", path, body, headers, "timestamp", {"code": 19021, "msg": "timestamp"})
        digest = hmac.new(f"{stamp}\n{self.feishu_secret}".encode(), b"", hashlib.sha256).digest()
        if not hmac.compare_digest(base64.b64encode(digest).decode(), sign):
            return self._refuse("feishu", path, body, headers, "sign", {"code": 19021, "msg": "sign match fail"})
        ok = body.get("msg_type") == "text" and isinstance(body.get("content", {}).get("text"), str)
        return self._accept("feishu", path, body, headers, ok, {"code": 0, "msg": "success"})

    def _accept(self, platform: str, path: str, body: dict[str, Any], headers: dict[str, str], ok: bool,
                answer: dict[str, Any]) -> dict[str, Any]:
        self.received.append(Received(platform, path, body, headers, ok, "" if ok else "format"))
        return answer if ok else {"errcode": 40035, "errmsg": "invalid format", "code": 9499}

    def _refuse(self, platform: str, path: str, body: dict[str, Any], headers: dict[str, str], error: str,
                answer: dict[str, Any]) -> dict[str, Any]:
        self.received.append(Received(platform, path, body, headers, False, error))
        return answer
