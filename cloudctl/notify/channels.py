"""The ways out, each behind one small Protocol: e-mail over SMTP, DingTalk, WeCom and Feishu group robots, a
generic JSON webhook, and an SMS gateway.

E-mail goes through the standard library's ``smtplib`` (STARTTLS or SSL, login), which raises with the server's
own reply code, so a refusal (5xx) is told apart from a server that is away (connection refused, 4xx). The robots
and webhooks are a few lines of ``httpx`` each. A general notification library was weighed and not used: its
DingTalk, WeCom and Feishu senders post to the platforms' public hosts only (a government edition runs on its
own), it reports DingTalk's refusals as success (DingTalk answers HTTP 200 with ``errcode`` set, a bad signature
included), it does not sign Feishu messages, and it tells only "sent" or "not sent", not why.

Signing, as the platforms document it:

- DingTalk: ``timestamp`` (ms) and ``sign`` = base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")),
  URL-encoded, as query parameters;
- Feishu: ``timestamp`` (s) and ``sign`` = base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b"")), in the
  JSON body;
- the generic webhook: ``X-Cloudctl-Signature: sha256=<hex HMAC-SHA256(secret, body)>`` and an
  ``Idempotency-Key`` header, so a receiver can verify and deduplicate;
- WeCom robots are not signed (the key in the URL is the credential).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import smtplib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from string import Template
from typing import Any, Protocol
from urllib.parse import quote_plus

import httpx

from cloudctl.core.errors import InvalidInput

__all__ = ["SECRET_FIELDS", "DeliveryError", "Message", "Transport", "check_config", "dingtalk_sign",
           "feishu_sign", "transport_for", "webhook_signature"]

# Config fields never shown back (API, CLI, audit).
SECRET_FIELDS = frozenset({"password", "secret", "token"})
# What each kind's config must and may hold.
_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "smtp": (frozenset({"host", "sender"}), frozenset({"port", "security", "username", "password", "sender_name"})),
    "dingtalk": (frozenset({"url"}), frozenset({"secret"})),
    "wecom": (frozenset({"url"}), frozenset()),
    "feishu": (frozenset({"url"}), frozenset({"secret"})),
    "webhook": (frozenset({"url"}), frozenset({"secret"})),
    "sms": (frozenset({"url"}), frozenset({"body", "headers", "token"})),
}


def check_config(kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The config of a channel of ``kind``, refused field by field when it lacks or has what it should not."""
    needed, optional = _FIELDS[kind]
    missing = sorted(needed - set(config))
    if missing:
        raise InvalidInput(f"a {kind} channel needs {', '.join(missing)}", field=f"config.{missing[0]}")
    unknown = sorted(set(config) - needed - optional)
    if unknown:
        raise InvalidInput(f"a {kind} channel takes {', '.join(sorted(needed | optional))}",
                           field=f"config.{unknown[0]}")
    url = config.get("url")
    if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        raise InvalidInput("an http:// or https:// URL", field="config.url")
    if kind == "smtp" and config.get("security", "starttls") not in ("starttls", "ssl", "none"):
        raise InvalidInput("one of starttls, ssl, none", field="config.security")
    return dict(config)


class DeliveryError(Exception):
    """A message that did not go: ``permanent`` when sending it again cannot help (refused, badly configured)."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Message:
    key: str  # the idempotency key: an e-mail's Message-ID and a webhook's Idempotency-Key derive from it
    address: str
    subject: str
    body: str
    kind: str
    unit_code: str | None = None
    link: str | None = None
    # UTC ISO 8601 with its offset, for programs (a webhook's JSON); the body says it for people.
    deadline: str | None = None


class Transport(Protocol):
    """Sends messages over one channel; ``close`` ends what ``send`` kept open (an SMTP session)."""

    def send(self, message: Message) -> None: ...

    def close(self) -> None: ...


class SmtpTransport:
    """One SMTP session for as many messages as a sender's round has, opened on the first."""

    def __init__(self, config: Mapping[str, Any], timeout: float) -> None:
        self.config = config
        self.timeout = timeout
        self._smtp: smtplib.SMTP | None = None

    def _open(self) -> smtplib.SMTP:
        host, security = str(self.config["host"]), str(self.config.get("security", "starttls"))
        port = int(self.config.get("port") or (465 if security == "ssl" else 25 if security == "none" else 587))
        context = ssl.create_default_context()
        try:
            smtp = (smtplib.SMTP_SSL(host, port, timeout=self.timeout, context=context) if security == "ssl"
                    else smtplib.SMTP(host, port, timeout=self.timeout))
            if security == "starttls":
                smtp.starttls(context=context)
            if self.config.get("username"):
                smtp.login(str(self.config["username"]), str(self.config.get("password", "")))
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"SMTP login refused: {exc.smtp_code}", permanent=True) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"SMTP server {host}:{port} unavailable: {exc}") from None
        return smtp

    def send(self, message: Message) -> None:
        if self._smtp is None:
            self._smtp = self._open()
        mail = EmailMessage()
        mail["From"] = formataddr((str(self.config.get("sender_name", "cloudctl")), str(self.config["sender"])))
        mail["To"] = message.address
        mail["Subject"] = message.subject
        # The same message keeps the same Message-ID, so a mail system can tell a copy from a new message.
        mail["Message-ID"] = make_msgid(idstring=hashlib.sha256(message.key.encode()).hexdigest()[:32],
                                        domain="cloudctl")
        mail["X-Cloudctl-Event"] = message.kind
        if message.unit_code:
            mail["X-Cloudctl-Unit"] = message.unit_code
        mail.set_content(message.body)
        try:
            self._smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryError(f"recipient refused: {codes}", permanent=all(c >= 500 for c in codes)) from None
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise DeliveryError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", permanent=exc.smtp_code >= 500) from None
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise DeliveryError(f"SMTP session lost: {exc}") from None

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                self._smtp.close()
            self._smtp = None


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest))


def feishu_sign(secret: str, timestamp_s: int) -> str:
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def webhook_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# Platform codes that mean "too fast, try later"; any other non-zero code is a refusal.
_THROTTLED = {130101, 45009, 9499, 11232}


class _HttpTransport:
    kind = "webhook"

    def __init__(self, config: Mapping[str, Any], timeout: float) -> None:
        self.config = config
        self.client = httpx.Client(timeout=timeout, trust_env=False)

    def close(self) -> None:
        self.client.close()

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        try:
            response = self.client.post(url, content=body, headers={"Content-Type": "application/json; charset=utf-8",
                                                                    **headers})
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{self.kind} endpoint unavailable: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise DeliveryError(f"{self.kind} endpoint answered {response.status_code}")
        if response.status_code >= 400:
            raise DeliveryError(f"{self.kind} endpoint refused it: {response.status_code} {response.text[:200]}",
                                permanent=True)
        return response

    def _platform_code(self, response: httpx.Response, *fields: str) -> None:
        """Robots answer HTTP 200 with an error code in the body: that is a failure too."""
        try:
            answer = response.json()
        except ValueError:
            raise DeliveryError(f"{self.kind} answered something that is not JSON", permanent=True) from None
        code = next((answer[f] for f in fields if isinstance(answer, dict) and f in answer), 0)
        if code not in (0, "0", None):
            message = answer.get("errmsg") or answer.get("msg") or answer.get("StatusMessage") or ""
            raise DeliveryError(f"{self.kind} refused it: {code} {message}", permanent=int(code) not in _THROTTLED)


def _text(message: Message) -> str:
    return f"{message.subject}\n\n{message.body}"


class DingTalkTransport(_HttpTransport):
    kind = "dingtalk"

    def send(self, message: Message) -> None:
        url = str(self.config["url"])
        if self.config.get("secret"):
            stamp = int(time.time() * 1000)
            sign = dingtalk_sign(str(self.config["secret"]), stamp)
            url += ("&" if "?" in url else "?") + f"timestamp={stamp}&sign={sign}"
        body = {"msgtype": "markdown", "markdown": {"title": message.subject[:64], "text": f"### {message.subject}\n\n"
                                                    + message.body.replace("\n", "\n\n")}}
        self._platform_code(self._post(url, json.dumps(body, ensure_ascii=False).encode(), {}), "errcode")


class WeComTransport(_HttpTransport):
    kind = "wecom"

    def send(self, message: Message) -> None:
        body = {"msgtype": "markdown", "markdown": {"content": f"**{message.subject}**\n{message.body}"}}
        self._platform_code(self._post(str(self.config["url"]), json.dumps(body, ensure_ascii=False).encode(), {}),
                            "errcode")


class FeishuTransport(_HttpTransport):
    kind = "feishu"

    def send(self, message: Message) -> None:
        body: dict[str, Any] = {"msg_type": "text", "content": {"text": _text(message)}}
        if self.config.get("secret"):
            stamp = int(time.time())
            body = {"timestamp": str(stamp), "sign": feishu_sign(str(self.config["secret"]), stamp), **body}
        self._platform_code(self._post(str(self.config["url"]), json.dumps(body, ensure_ascii=False).encode(), {}),
                            "code", "StatusCode")


class WebhookTransport(_HttpTransport):
    kind = "webhook"

    def send(self, message: Message) -> None:
        body = json.dumps({"event": message.kind, "unit": message.unit_code, "subject": message.subject,
                           "body": message.body, "link": message.link, "deadline": message.deadline,
                           "key": message.key}, ensure_ascii=False).encode()
        headers = {"Idempotency-Key": hashlib.sha256(message.key.encode()).hexdigest()}
        if self.config.get("secret"):
            headers["X-Cloudctl-Signature"] = webhook_signature(str(self.config["secret"]), body)
        self._post(str(self.config["url"]), body, headers)


class SmsTransport(_HttpTransport):
    """A carrier's HTTP gateway: the JSON ``body`` template of the config with ``$to`` and ``$text`` filled in
    (``{"mobile": "$to", "content": "$text", "sign": "临江市大数据局"}`` by default); 2xx is taken."""

    kind = "sms"

    def send(self, message: Message) -> None:
        template = self.config.get("body") or {"mobile": "$to", "content": "$text"}
        text = f"{message.subject} {message.link or ''}".strip()[:300]

        def fill(value: Any) -> Any:
            if isinstance(value, str):
                return Template(value).safe_substitute(to=message.address, text=text)
            if isinstance(value, dict):
                return {k: fill(v) for k, v in value.items()}
            return value

        headers = {str(k): str(v) for k, v in (self.config.get("headers") or {}).items()}
        if self.config.get("token"):
            headers["Authorization"] = f"Bearer {self.config['token']}"
        self._post(str(self.config["url"]), json.dumps(fill(template), ensure_ascii=False).encode(), headers)


_TRANSPORTS: dict[str, type[Any]] = {"smtp": SmtpTransport, "dingtalk": DingTalkTransport, "wecom": WeComTransport,
                                     "feishu": FeishuTransport, "webhook": WebhookTransport, "sms": SmsTransport}


def transport_for(kind: str, config: Mapping[str, Any], *, timeout: float) -> Transport:
    transport: Transport = _TRANSPORTS[kind](config, timeout)
    return transport
