"""`bifrost user`: local accounts' passwords (for the web interface's log-in)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cli.common import unit_of_work
from cli.output import done

app = typer.Typer(help="Users: passwords for the web interface.", no_args_is_help=True)


@app.command("set-password")
def set_password(
    username: Annotated[str, typer.Argument(help="Whose password (yours; an admin may set anyone's)")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input (scripts)")
    ] = False,
) -> None:
    """Set a user's web log-in password, stored hashed with argon2id."""
    from bifrost_core.users import passwords

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with unit_of_work() as uow:
        passwords.set_password(uow.session, actor=uow.actor, username=username, password=password)
        uow.commit()
    done(f"password set for {username}")
