"""`bifrost init`: create the home, migrate the database to head, and make the first admin."""

from __future__ import annotations

import typer

from cli.common import settings


def init() -> None:
    """Set up Bifrost: create BIFROST_HOME, migrate the database to head, create the admin and its token
    and the service user scheduled runs act as.

    On the embedded default, and on a database without users, the operating-system user (or
    BIFROST_USER) is made an admin too. Other commands set up the embedded SQLite default on
    first use; a BIFROST_DATABASE_URL needs init.
    """
    from bifrost_core import bootstrap
    from bifrost_core.scope import SERVICE_USER

    config = settings()
    result = bootstrap.initialise(config)
    safe_url = result.database.engine.url.render_as_string(hide_password=True)
    result.database.dispose()
    typer.echo(f"database ready at {safe_url} (schema at head)")
    if result.operator is not None:
        role = "an admin" if result.operator.is_admin else "not an admin"
        typer.echo(f"you act as the Bifrost user {result.operator.username!r} ({role})")
    if result.service_user is not None:
        typer.echo(f"service user {SERVICE_USER!r} (scheduled runs act as it): {result.service_user}")
    if result.admin_token is not None:
        typer.echo("the API token of the admin user 'admin' is shown only once, keep it safe:")
        typer.echo(result.admin_token.token)
