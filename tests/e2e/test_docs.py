"""/docs and /redoc in real headless Chromium: they render the API from this server's own files, under the
pages' content security policy (no inline script, nothing from a CDN)."""

from __future__ import annotations

import pytest

from api.app import create_app
from tests.support.appserver import serve
from tests.support.browser import dump_dom

pytestmark = pytest.mark.slow


def test_swagger_ui_and_redoc_render_offline() -> None:
    with serve(create_app()) as base:
        swagger = dump_dom(f"{base}/docs", budget_ms=8000)
        # Swagger UI drew the operations from /openapi.json: its own script ran, under the policy.
        assert "/api/v1/business-systems/{system_id}" in swagger
        assert "opblock" in swagger
        redoc = dump_dom(f"{base}/redoc", budget_ms=8000)
        assert "/api/v1/security/blocklist" in redoc
