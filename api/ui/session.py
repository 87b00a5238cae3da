"""The web interface's sessions: a cookie holding an API token made at log-in.

A session is an ordinary API token (name "web session", a day at most, a child of the token
logged in with, if any), so every page authenticates, is rate limited and is revoked exactly
as an API call is, and sees only what the role table lets that user see. The cookie is
HttpOnly (no script reads it), SameSite=Lax and Secure when the request came over TLS.
Every form carries a CSRF token derived from the session's secret, which a page of another
site can neither read nor compute.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from api.auth import Caller
from api.deps import ApiState, _check_rate, state_of
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import BifrostError, PermissionDenied, Unauthenticated
from bifrost_core.scope import Actor
from bifrost_core.users import service as users
from bifrost_core.users.schemas import TokenCreate

SESSION_COOKIE = "bifrost_session"
# Before log-in there is no session: the log-in form's CSRF token is a random value kept in
# its own cookie and echoed by the form (double submit).
LOGIN_COOKIE = "bifrost_login"
SESSION_DAYS = 1


class LoginRequired(BifrostError):
    """No valid session: the page redirects to the log-in form."""

    status_code = 401
    code = "unauthenticated"


class CsrfRefused(PermissionDenied):
    pass


def csrf_for(secret: str) -> str:
    return hmac.new(secret.encode(), b"bifrost-ui-csrf", hashlib.sha256).hexdigest()


def check_csrf(expected: str, given: object) -> None:
    if not isinstance(given, str) or not hmac.compare_digest(expected, given):
        raise CsrfRefused(
            "this form has expired or did not come from Bifrost (CSRF check failed): reload the page"
        )


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/ui",
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="lax",
    )


def new_login_token() -> str:
    return secrets.token_urlsafe(24)


def client_of(request: Request) -> str | None:
    return request.client.host if request.client else None


def start_session(state: ApiState, *, actor: Actor, parent_token_id: int | None) -> str:
    """A new session token for `actor`; returns its secret (the cookie's value)."""
    with UnitOfWork(state.database) as uow:
        issued = users.create_token(
            uow.session,
            actor=actor,
            user_id=actor.user_id,  # type: ignore[arg-type]
            data=TokenCreate(name="web session", expires_in_days=SESSION_DAYS),
            parent_id=parent_token_id,
        )
        uow.commit()
    return issued.token


@dataclass
class Page:
    """What a page handler has: the caller, one transaction, and the CSRF token of its forms."""

    state: ApiState
    actor: Actor
    session: Session
    uow: UnitOfWork
    csrf: str
    token_id: int
    request: Request

    def commit(self) -> None:
        """Commit the page's write; the caller's API reads then wait for a replica that has it."""
        self.uow.commit()
        self.state.note_write(self.actor.user_id)


def _caller(request: Request, state: ApiState) -> tuple[Caller, str]:
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        raise LoginRequired("log in first")
    try:
        caller = state.authenticator.caller(f"Bearer {secret}", client_of(request))
    except Unauthenticated:
        raise LoginRequired("your session has ended: log in again") from None
    return caller, secret


def get_page(request: Request) -> Iterator[Page]:
    state = state_of(request)
    caller, secret = _caller(request, state)
    request.state.user_id = caller.actor.user_id
    _check_rate(state, caller)
    with UnitOfWork(state.database) as uow:
        yield Page(state, caller.actor, uow.session, uow, csrf_for(secret), caller.token_id, request)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def checked_form(request: Request) -> dict[str, str]:
    """The posted form, refused (403) unless it carries this session's CSRF token."""
    form = await _form(request)
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        raise LoginRequired("log in first")
    check_csrf(csrf_for(secret), form.get("csrf"))
    return form


PageDep = Annotated[Page, Depends(get_page)]
FormDep = Annotated[dict[str, str], Depends(checked_form)]
