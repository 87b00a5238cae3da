"""The web interface under /ui (see api.ui.pages), installed on the API's own app.

Errors keep the API's one handler for each kind: on /ui its JSON answer is shown as an HTML
page with the same status and message, and a missing or ended session redirects to log-in.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.ui import pages
from api.ui.session import LoginRequired
from bifrost_core.errors import BifrostError

STATIC = pages.HERE / "static"


def install(app: FastAPI) -> None:
    app.include_router(pages.router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    for kind in (BifrostError, RequestValidationError, ValidationError, StarletteHTTPException):
        app.exception_handlers[kind] = _as_page(app.exception_handlers[kind])


def _as_page(api_handler):
    async def handler(request: Request, exc: Exception) -> Response:
        if not request.url.path.startswith("/ui"):
            return await api_handler(request, exc)
        if isinstance(exc, LoginRequired):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            if request.method != "GET":
                target = "/ui/"
            return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303)
        answer = await api_handler(request, exc)
        message = json.loads(answer.body)["error"]["message"]
        return pages.render(None, request, "error.html", answer.status_code, message=message)

    return handler
