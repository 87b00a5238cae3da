"""`bifrost token`: create, list and revoke API tokens, as the operator (an admin manages anyone's)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import unit_of_work
from cli.output import JsonOption, done, print_json, render_list

app = typer.Typer(help="API tokens: only their hash is stored; a secret is shown once.", no_args_is_help=True)


@app.command("create")
def create(
    username: Annotated[str, typer.Argument(help="The user the token acts as")],
    name: Annotated[str, typer.Option(help="What the token is for, e.g. 'nuke on ws042'")] = "",
    expires_in_days: Annotated[
        int | None, typer.Option(min=1, max=3650, help="Expiry; none by default")
    ] = None,
    as_json: bool = JsonOption,
) -> None:
    """Issue a token and print its secret (the only time it is shown)."""
    from bifrost_core.users import service
    from bifrost_core.users.repository import UserRepository
    from bifrost_core.users.schemas import TokenCreate

    data = TokenCreate(name=name, expires_in_days=expires_in_days)
    with unit_of_work() as uow:
        user = UserRepository(uow.session, uow.actor).by_username(username)
        issued = service.create_token(uow.session, actor=uow.actor, user_id=user.id, data=data)
        uow.commit()
    if as_json:
        print_json(issued.model_dump(mode="json"))
        return
    done(f"created token {issued.id} for {username}; its secret (shown once):")
    typer.echo(issued.token)


@app.command("list")
def list_(
    username: Annotated[str | None, typer.Option("--user", help="Only this user's tokens")] = None,
    as_json: bool = JsonOption,
) -> None:
    """List tokens (prefixes, expiry, last use; never secrets)."""
    from bifrost_core.users.models import ApiToken
    from bifrost_core.users.repository import TokenRepository, UserRepository
    from bifrost_core.users.schemas import TokenRead

    with unit_of_work() as uow:
        conditions = []
        if username is not None:
            conditions.append(
                ApiToken.user_id == UserRepository(uow.session, uow.actor).by_username(username).id
            )
        rows = TokenRepository(uow.session, uow.actor).list(*conditions)
        render_list(
            rows,
            TokenRead,
            [
                ("id", lambda t: t.id),
                ("user", lambda t: t.user_id),
                ("name", lambda t: t.name),
                ("prefix", lambda t: t.prefix),
                ("expires", lambda t: t.expires_at),
                ("revoked", lambda t: t.revoked_at),
                ("last used", lambda t: t.last_used_at),
                ("parent", lambda t: t.parent_id),
            ],
            as_json=as_json,
            title="API tokens",
        )


@app.command("revoke")
def revoke(
    token_id: Annotated[int, typer.Argument(min=1, help="The token's id (see `bifrost token list`)")],
) -> None:
    """Revoke a token, and every token made with it through the API. With Redis configured
    the API refuses them at once; without it, within a second."""
    from bifrost_core.users import service

    with unit_of_work() as uow:
        token = service.revoke_token(uow.session, actor=uow.actor, token_id=token_id)
        uow.commit()
    done(f"revoked token {token.id} ({token.prefix}…)")
