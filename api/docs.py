"""The API's documentation pages (/docs, /redoc) with their scripts and styles served by the
app itself, from the installed `fastapi-offline` package: a studio network without internet
(or a browser that may not reach a CDN) still gets working pages.

The files are served by a middleware, not routes: they are a package's files, not part of
the API, and every route is in the permission table (tests/api/test_api_routes.py).
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_response

ASSETS = "/docs/assets/"
_STATIC = str(files("fastapi_offline") / "static")


def install(app: FastAPI) -> None:
    """Add /docs, its OAuth2 redirect and /redoc to an app made with docs_url=None and
    redoc_url=None (FastAPI's own pages load their files from a CDN)."""
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    def root(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    async def swagger(request: Request) -> HTMLResponse:
        base = root(request)
        return get_swagger_ui_html(
            openapi_url=base + openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=base + redirect_url,
            swagger_js_url=f"{base}{ASSETS}swagger-ui-bundle.js",
            swagger_css_url=f"{base}{ASSETS}swagger-ui.css",
            swagger_favicon_url=f"{base}{ASSETS}favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    async def redirect(_request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        base = root(request)
        return get_redoc_html(
            openapi_url=base + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{base}{ASSETS}redoc.standalone.js",
            redoc_favicon_url=f"{base}{ASSETS}favicon.png",
            with_google_fonts=False,
        )

    app.add_route("/docs", swagger, include_in_schema=False)
    app.add_route(redirect_url, redirect, include_in_schema=False)
    app.add_route("/redoc", redoc, include_in_schema=False)
    app.add_middleware(DocsAssets)


class DocsAssets:
    """Answers GET requests under /docs/assets/ with the package's files; passes the rest on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.files = StaticFiles(directory=_STATIC)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(ASSETS):
            name = scope["path"][len(ASSETS) :]
            try:
                await self.files({**scope, "path": "/" + name, "root_path": ""}, receive, send)
            except HTTPException as exc:  # outside the app's handlers: answered here, in its shape
                code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
                await error_response(exc.status_code, code, str(exc.detail))(scope, receive, send)
            return
        await self.app(scope, receive, send)
