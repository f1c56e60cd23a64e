"""The API's documentation pages, Swagger UI (/docs) and ReDoc (/redoc), with their scripts and styles served by
this server: a government extranet reaches no CDN. The assets come from the ``fastapi-offline`` package; the
pages are ours, so that no script on them is inline."""

from __future__ import annotations

from html import escape
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS", "install_docs"]

ASSETS = "/static/docs"
_OWN = "/static/api"


def _asset_dir() -> Path:
    return Path(str(resources.files("fastapi_offline").joinpath("static")))


def _swagger_page(title: str, openapi_url: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<title>{escape(title)}</title>
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
<link rel="icon" href="{ASSETS}/favicon.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{escape(openapi_url)}"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script src="{_OWN}/swagger-init.js"></script>
</body>
</html>
"""


def install_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc; create the app with ``docs_url=None, redoc_url=None`` so FastAPI's CDN pages
    are not served."""
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(ASSETS, StaticFiles(directory=_asset_dir()), name="docs-assets")
    app.mount(_OWN, StaticFiles(directory=Path(__file__).parent / "static"), name="api-assets")
    swagger = _swagger_page(f"{app.title} – Swagger UI", openapi_url)

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return HTMLResponse(swagger)

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi_url, title=f"{app.title} – ReDoc",
                              redoc_js_url=f"{ASSETS}/redoc.standalone.js", redoc_favicon_url=f"{ASSETS}/favicon.png",
                              with_google_fonts=False)
