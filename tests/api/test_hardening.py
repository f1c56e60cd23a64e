"""The edge of the API: bounded bodies, bounded integers, security headers, a log without credentials."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.hardening import RedactCredentials, json_depth, redact_query
from cloudctl.core.bounds import MAX_ID
from tests.api.conftest import auth
from tests.factories import MiniCity

GENERIC = {"source": "态势感知", "source_ref": "evt-1", "title": "webshell 上传", "severity": "high"}


def test_an_oversized_body_is_refused_with_a_problem(client: TestClient, city: MiniCity) -> None:
    headers = auth(city, "duty")
    big = {**GENERIC, "title": "x" * 400, "padding": "y" * (1024 * 1024)}
    answer = client.post("/api/v1/security/alerts", json=big, headers=headers)
    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"] == [{"field": "body", "reason": "at most 1048576 bytes"}]
    # Nothing was stored.
    assert client.get("/api/v1/security/alerts", headers=headers).json()["total"] == 0


def test_a_streamed_body_is_counted_as_it_arrives(client: TestClient, city: MiniCity) -> None:
    """No Content-Length: a chunked body is refused once it passes the limit, not trusted by its header."""

    def chunks() -> Iterator[bytes]:
        yield b'{"source": "s", "source_ref": "r", "title": "'
        for _ in range(80):
            yield b"z" * 16384
        yield b'"}'

    answer = client.post("/api/v1/security/alerts", content=chunks(),
                         headers={**auth(city, "duty"), "Content-Type": "application/json"})
    assert answer.status_code == 413
    assert answer.json()["status"] == 413


def test_the_limit_is_a_setting(client: TestClient, city: MiniCity) -> None:
    from api.app import create_app
    from cloudctl.core.config import get_settings

    small = create_app(get_settings().model_copy(update={"api_max_body_bytes": 2048}))
    small.dependency_overrides = client.app.dependency_overrides  # type: ignore[attr-defined]
    with TestClient(small) as other:
        answer = other.post("/api/v1/security/alerts", json={**GENERIC, "title": "t" * 3000},
                            headers=auth(city, "duty"))
    assert answer.status_code == 413
    assert "2048 bytes" in answer.json()["detail"]


def test_deeply_nested_json_is_refused_before_the_parser(client: TestClient, city: MiniCity) -> None:
    body = '{"source": "s", "source_ref": "r", "title": "t", "x": ' + "[" * 5000 + "]" * 5000 + "}"
    answer = client.post("/api/v1/security/alerts", content=body,
                         headers={**auth(city, "duty"), "Content-Type": "application/json"})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "body"
    assert "nested deeper than 32" in answer.json()["detail"]


@pytest.mark.parametrize(("text", "ok"), [
    (b'{"a": [1, {"b": [2]}]}', True),
    (b'[[[[[]]]]]', False),
    (b'{"s": "[[[[[[[[[[[[ not structure \\" [[[["}', True),
    (b'{"s": "\\\\"}', True),
    (b'{"s": "\\\\", "t": [[[[[]]]]]}', False),
])
def test_json_depth_counts_brackets_outside_strings(text: bytes, ok: bool) -> None:
    assert json_depth(text, 4) is ok


def test_every_answer_carries_security_headers(client: TestClient, city: MiniCity) -> None:
    for path, headers in (("/api/v1/units", auth(city, "admin")), ("/api/v1/units", {}), ("/healthz", {}),
                          ("/openapi.json", {})):
        answer = client.get(path, headers=headers)
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    api = client.get("/api/v1/units", headers=auth(city, "admin")).headers["content-security-policy"]
    assert api.startswith("default-src 'none'")


def test_an_unexpected_error_is_a_problem_with_the_same_headers(caplog: pytest.LogCaptureFixture) -> None:
    """Starlette answers an unhandled error outside every middleware; ours answers it first, so a 500 carries
    the security headers too, says nothing internal, and the operator's log has the traceback."""
    from fastapi import FastAPI

    from api.hardening import install
    from api.problems import install_problem_handlers

    app = FastAPI()
    install_problem_handlers(app)
    install(app, max_body_bytes=1024, max_json_depth=8)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internal detail")

    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR):
        answer = client.get("/boom")
    assert answer.status_code == 500
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["title"] == "Internal error"
    assert "secret" not in answer.text
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert any("secret internal detail" in (r.exc_text or str(r.exc_info)) for r in caplog.records)


def test_pages_run_no_inline_script(client: TestClient) -> None:
    for path in ("/screen", "/docs", "/redoc"):
        page = client.get(path)
        assert page.status_code == 200, path
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
        # Every script is a file of this server: no inline code, nothing from a CDN.
        for tag in re.findall(r"<script[^>]*>.*?</script>", page.text, re.S):
            src = re.search(r'src="([^"]+)"', tag)
            assert src is not None, f"inline script on {path}: {tag[:80]}"
            assert src.group(1).startswith("/static/"), src.group(1)
            assert client.get(src.group(1)).status_code == 200
        assert "cdn" not in page.text.lower()


def test_docs_assets_are_served_from_the_package_and_may_be_cached(client: TestClient) -> None:
    for asset in ("/static/docs/swagger-ui-bundle.js", "/static/docs/swagger-ui.css",
                  "/static/docs/redoc.standalone.js"):
        answer = client.get(asset)
        assert answer.status_code == 200, asset
        assert len(answer.content) > 100_000
        assert "cache-control" not in answer.headers or answer.headers["cache-control"] != "no-store"


def _integer_parameters(app_openapi: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    for path, item in app_openapi["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                schema = parameter["schema"]
                kinds = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
                if "integer" in kinds:
                    yield method.upper(), path, parameter["name"], parameter["in"]


def test_no_integer_beyond_its_column_reaches_the_database(client: TestClient, city: MiniCity) -> None:
    """Every integer in every path and query, generated from the routes: 2**64, 2**31 and -1 are refused with
    404 or 422, never a server error; the largest id is merely not found."""
    headers = auth(city, "admin")
    schema = client.get("/openapi.json").json()
    seen = 0
    for method, path, name, where in _integer_parameters(schema):
        for value in (2**64, MAX_ID + 1, -1):
            others = {p: "1" for p in re.findall(r"{(\w+)}", path)}
            url = path
            query: dict[str, Any] = {}
            if where == "path":
                others[name] = str(value)
            else:
                query[name] = value
            for placeholder, text in others.items():
                url = url.replace("{" + placeholder + "}", text)
            answer = client.request(method, url, params=query, headers=headers, json={} if method != "GET" else None)
            assert answer.status_code in (404, 422), (method, path, name, value, answer.status_code, answer.text)
            seen += 1
    assert seen >= 60
    # A body reference too.
    answer = client.post("/api/v1/requests", headers=auth(city, "dept"), json={
        "business_system": 2**64, "justification": "扩容视频平台", "items": [{"flavor": "c2m4"}]})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "business_system"
    largest = client.get(f"/api/v1/business-systems/{MAX_ID}", headers=headers)
    assert largest.status_code == 404


def test_query_string_credentials_never_reach_the_access_log() -> None:
    assert redact_query("/screen?token=abc.def&refresh=2") == "/screen?token=REDACTED&refresh=2"
    assert redact_query("/api/v1/units?q=%E5%B8%82&limit=5") == "/api/v1/units?q=%E5%B8%82&limit=5"
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", "/screen?Token=s3cret&refresh=2", "1.1", 200), None)
    assert RedactCredentials().filter(record)
    assert "s3cret" not in record.getMessage()
    assert "Token=REDACTED" in record.getMessage()
    from api.app import create_app

    create_app()
    assert any(isinstance(f, RedactCredentials) for f in logging.getLogger("uvicorn.access").filters)


@pytest.mark.parametrize("bad", ["市公安局\x1b[2J", "市公安\x00局", "市公安局\u202e", "市公安\n局", "市\x9b公安局"])
def test_names_and_codes_refuse_control_characters(client: TestClient, city: MiniCity, bad: str) -> None:
    """ESC, NUL, a bidi override, a newline, a C1 control: refused naming the field, on both databases alike."""
    admin = auth(city, "admin")
    cases = [
        ("POST", "/api/v1/units", {"code": "990100-D09", "name": bad, "kind": "department", "parent": "990100"},
         admin, "name"),
        ("POST", "/api/v1/business-systems", {"unit_code": "990100-D01", "name": bad, "mlps_level": 3}, admin,
         "name"),
        ("PATCH", f"/api/v1/business-systems/{city.systems['own']}", {"contact_name": bad}, admin, "contact_name"),
        ("POST", "/api/v1/security/alerts", {**GENERIC, "title": bad}, auth(city, "duty"), "title"),
        ("POST", "/api/v1/extranet/links", {"unit_code": "990100-D01", "carrier": bad, "line_type": "MSTP",
                                            "bandwidth_mbps": 100}, admin, "carrier"),
    ]
    for method, url, body, headers, field in cases:
        answer = client.request(method, url, json=body, headers=headers)
        assert answer.status_code == 422, (url, answer.text)
        assert answer.json()["errors"][0]["field"] == field
        assert "control characters" in answer.json()["errors"][0]["reason"]


def test_free_text_keeps_its_line_breaks(client: TestClient, city: MiniCity) -> None:
    system = client.patch(f"/api/v1/business-systems/{city.systems['own']}", headers=auth(city, "admin"),
                          json={"description": "视频联网平台\n\t二期建设中"})
    assert system.status_code == 200, system.text
    refused = client.patch(f"/api/v1/business-systems/{city.systems['own']}", headers=auth(city, "admin"),
                           json={"description": "视频联网平台\x1b]8;;http://x\x07"})
    assert refused.status_code == 422
    reason = client.delete("/api/v1/security/findings/1/verified", headers=auth(city, "secops"),
                           params={"reason": "复核\x1b[31m"})
    assert reason.status_code == 422
    assert reason.json()["errors"][0]["field"] == "reason"


def test_uvicorns_access_log_keeps_no_token(tmp_path: Any) -> None:
    """The real server's access log, as `cloudctl serve` writes it: a token in a query string is redacted."""
    import threading
    import time

    import httpx
    import uvicorn

    from api.app import create_app
    from tests.support.appserver import free_port

    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="info",
                                           access_log=True))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    keep = Keep()
    access = logging.getLogger("uvicorn.access")
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        access.addHandler(keep)
        httpx.get(f"http://127.0.0.1:{port}/screen?token=cc_s3cr3t-view-token&refresh=5")
    finally:
        server.should_exit = True
        thread.join(10)
        access.removeHandler(keep)
    screen = [line for line in lines if "/screen" in line]
    assert screen, lines
    assert "cc_s3cr3t-view-token" not in "\n".join(lines)
    assert "token=REDACTED&refresh=5" in screen[0]
