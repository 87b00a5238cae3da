"""How every `bifrost` command fails: exit codes, and each expected error as one line.

Exit codes (one scheme for every command):

  0  success
  1  unexpected failure
  2  usage error (unknown option, missing argument)
  3  not found
  4  conflict: duplicate code, disallowed status transition
  5  invalid input: a value out of range, frame in after frame out
  6  not allowed: unauthenticated or forbidden
  7  configuration: invalid BIFROST_* setting, schema behind (run `bifrost init`)
  8  unavailable: the database or the storage cannot be reached
  9  `bifrost verify` (or a verify flow run) found corrupt or missing blobs

Expected failures print one line on stderr (`error: ...`) and never a traceback;
nothing is committed, because each command commits only once, at its end.
"""

from __future__ import annotations

import os
from typing import Any

import typer
from typer.core import TyperGroup

from bifrost_core.errors import (
    BifrostError,
    ConfigError,
    Conflict,
    DamagedContent,
    DatabaseUnavailable,
    InvalidInput,
    NotFound,
    PermissionDenied,
    StorageError,
    Unauthenticated,
)
from bifrost_core.text import escape

EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_INVALID = 5
EXIT_FORBIDDEN = 6
EXIT_CONFIG = 7
EXIT_UNAVAILABLE = 8
EXIT_DAMAGED = 9

# Most specific first: InvalidTransition is a Conflict, so it maps to EXIT_CONFLICT.
_EXIT_CODES: tuple[tuple[type[BifrostError], int], ...] = (
    (NotFound, EXIT_NOT_FOUND),
    (Conflict, EXIT_CONFLICT),
    (InvalidInput, EXIT_INVALID),
    (Unauthenticated, EXIT_FORBIDDEN),
    (PermissionDenied, EXIT_FORBIDDEN),
    (ConfigError, EXIT_CONFIG),
    (DatabaseUnavailable, EXIT_UNAVAILABLE),
    (StorageError, EXIT_UNAVAILABLE),
    (DamagedContent, EXIT_DAMAGED),
)


def exit_code(error: BifrostError) -> int:
    for kind, code in _EXIT_CODES:
        if isinstance(error, kind):
            return code
    # Any service that is down (Prefect's server too): the HTTP API's 503.
    return EXIT_UNAVAILABLE if error.status_code == 503 else EXIT_UNEXPECTED


def fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {escape(message)}", err=True)
    return typer.Exit(code)


def _validation_line(exc: Any) -> str:
    """A pydantic ValidationError as one line: `field: message; other: message`."""
    parts = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{field}: {message}" if field else message)
    return "; ".join(parts)


def _database_line(exc: Any) -> str:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return reason[0] if reason else type(exc).__name__


class BifrostGroup(TyperGroup):
    """The root command group: turns every expected failure of any subcommand into one line.

    Sitting on the root group means command modules added by others get the same
    handling without doing anything.
    """

    def invoke(self, ctx: typer.Context) -> Any:
        from pydantic import ValidationError
        from sqlalchemy.exc import IntegrityError, OperationalError

        try:
            return super().invoke(ctx)
        except BifrostError as exc:
            raise fail(str(exc), exit_code(exc)) from None
        except ValidationError as exc:
            raise fail(_validation_line(exc), EXIT_INVALID) from None
        except IntegrityError as exc:
            # A concurrent writer won a race the service's own checks could not see.
            raise fail(f"conflicting write: {_database_line(exc)}", EXIT_CONFLICT) from None
        except OperationalError as exc:
            raise fail(f"database error: {_database_line(exc)}", EXIT_UNAVAILABLE) from None
        except OSError as exc:
            raise fail(
                f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), EXIT_UNAVAILABLE
            ) from None
        except (typer.Exit, typer.Abort, typer.TyperException):
            # Typer's own: a usage error (its click's, under TyperException) is exit 2 with
            # its usage line, printed by Typer.
            raise
        except Exception as exc:
            # A bug, not bad input: still one line for the user; the traceback on request.
            if os.environ.get("BIFROST_DEBUG") == "1":
                raise
            raise fail(
                f"unexpected {type(exc).__name__}: {exc} (set BIFROST_DEBUG=1 for the traceback)",
                EXIT_UNEXPECTED,
            ) from None
