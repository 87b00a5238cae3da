"""Users (admin), project memberships, and API tokens."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from api.deps import CtxDep
from api.params import After, Id, Limit, Page, page
from bifrost_core.errors import NotFound
from bifrost_core.users import service
from bifrost_core.users.models import ApiToken, ProjectMembership
from bifrost_core.users.repository import MembershipRepository, TokenRepository, UserRepository
from bifrost_core.users.schemas import (
    MembershipCreate,
    MembershipRead,
    TokenCreate,
    TokenIssued,
    TokenRead,
    UserCreate,
    UserRead,
    UserUpdate,
)

router = APIRouter()


@router.get("/users/me", response_model=UserRead, tags=["users"])
def me(ctx: CtxDep) -> Response:
    if ctx.actor.user_id is None:
        raise NotFound("this caller is not a user")
    return ctx.respond(UserRead.model_validate(UserRepository(ctx.session, ctx.actor).get(ctx.actor.user_id)))


@router.get("/users", response_model=Page[UserRead], tags=["users"])
def list_users(ctx: CtxDep, after: After = None, limit: Limit = 100) -> Response:
    ctx.require_admin("list users")
    rows = UserRepository(ctx.session, ctx.actor).list(after=after, limit=limit)
    return ctx.respond(page(UserRead, rows, limit))


@router.post("/users", response_model=UserRead, status_code=201, tags=["users"])
def create_user(ctx: CtxDep, data: UserCreate) -> Response:
    return ctx.done(
        UserRead.model_validate(service.create_user(ctx.session, actor=ctx.actor, data=data)), 201
    )


@router.get("/users/{user_id}", response_model=UserRead, tags=["users"])
def get_user(ctx: CtxDep, user_id: Id) -> Response:
    ctx.require_admin("read users")
    return ctx.respond(UserRead.model_validate(UserRepository(ctx.session, ctx.actor).get(user_id)))


@router.patch("/users/{user_id}", response_model=UserRead, tags=["users"])
def update_user(ctx: CtxDep, user_id: Id, data: UserUpdate) -> Response:
    user = service.update_user(ctx.session, actor=ctx.actor, user_id=user_id, data=data)
    return ctx.done(UserRead.model_validate(user))


@router.post("/users/{user_id}/tokens", response_model=TokenIssued, status_code=201, tags=["tokens"])
def create_token_for(ctx: CtxDep, user_id: Id, data: TokenCreate) -> Response:
    """Issue a token for another user (a render node's service account, say); admin only. It
    expires no later than the caller's token and is revoked with it (`bifrost token create`
    makes tokens bound to none)."""
    issued = service.issue_token_for(
        ctx.session, actor=ctx.actor, user_id=user_id, data=data, parent_id=ctx.token_id
    )
    return ctx.done(issued, 201)


@router.get("/tokens", response_model=Page[TokenRead], tags=["tokens"])
def list_tokens(ctx: CtxDep, after: After = None, limit: Limit = 100) -> Response:
    """The caller's own tokens (never their secrets)."""
    rows = TokenRepository(ctx.session, ctx.actor).list(
        ApiToken.user_id == ctx.actor.user_id, after=after, limit=limit
    )
    return ctx.respond(page(TokenRead, rows, limit))


@router.post("/tokens", response_model=TokenIssued, status_code=201, tags=["tokens"])
def create_token(ctx: CtxDep, data: TokenCreate) -> Response:
    """A new token for the caller; the secret is in this answer and nowhere else. It expires
    no later than the token the request came with, and is revoked with it."""
    issued = service.create_token(
        ctx.session,
        actor=ctx.actor,
        user_id=ctx.actor.user_id,  # type: ignore[arg-type]
        data=data,
        parent_id=ctx.token_id,
    )
    return ctx.done(issued, 201)


@router.delete("/tokens/{token_id}", response_model=TokenRead, tags=["tokens"])
def revoke_token(ctx: CtxDep, token_id: Id) -> Response:
    """Revoke one of the caller's tokens (an admin may revoke anyone's), and every token made
    with it."""
    token = service.revoke_token(ctx.session, actor=ctx.actor, token_id=token_id)
    return ctx.done(TokenRead.model_validate(token))


@router.get("/projects/{project_id}/memberships", response_model=Page[MembershipRead], tags=["memberships"])
def list_memberships(ctx: CtxDep, project_id: Id, after: After = None, limit: Limit = 100) -> Response:
    ctx.project(project_id, "members.read")
    rows = MembershipRepository(ctx.session, ctx.actor).list(
        ProjectMembership.project_id == project_id, after=after, limit=limit
    )
    return ctx.respond(page(MembershipRead, rows, limit))


@router.put("/projects/{project_id}/memberships", response_model=MembershipRead, tags=["memberships"])
def set_membership(ctx: CtxDep, project_id: Id, data: MembershipCreate) -> Response:
    """Add a user to the project with a role, or change their role."""
    membership = service.set_membership(ctx.session, actor=ctx.actor, project_id=project_id, data=data)
    return ctx.done(MembershipRead.model_validate(membership))


@router.delete("/memberships/{membership_id}", status_code=204, tags=["memberships"])
def remove_membership(ctx: CtxDep, membership_id: Id) -> Response:
    service.remove_membership(ctx.session, actor=ctx.actor, membership_id=membership_id)
    return ctx.done(None, 204)
