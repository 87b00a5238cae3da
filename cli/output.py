"""What `bifrost` commands print: JSON, rich tables, and escaped lines.

Everything printed that can hold a delivered file name or text a user typed goes through
`bifrost_core.text.escape` (tables through `cell`): a name holding an escape sequence or a
newline shows as ``\\x1b[31m`` or ``\\n``, never reaches the terminal raw.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import typer

from bifrost_core.text import escape

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.text import Text

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON (and nothing else).")


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def dump(schema: type[BaseModel], rows: Iterable[Any]) -> list[dict[str, Any]]:
    from bifrost_core.jsonbounds import jsonable

    return [jsonable(schema.model_validate(row)) for row in rows]


def render_list(
    rows: Sequence[Any],
    schema: type[BaseModel] | None,
    columns: Sequence[tuple[str, Callable[[Any], Any]]],
    *,
    as_json: bool,
    title: str,
) -> None:
    """A list as JSON (the Read schema; rows that are plain data as they are) or as a rich
    table with the given columns."""
    if as_json:
        print_json(list(rows) if schema is None else dump(schema, rows))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=cell(title))
    for header, _ in columns:
        table.add_column(header)
    for row in rows:
        table.add_row(*(cell(value(row)) for _, value in columns))
    Console().print(table)


def keyed(*pairs: tuple[str, str]) -> list[tuple[str, Callable[[Any], Any]]]:
    """`render_list` columns of rows that are mappings: (key, header) pairs."""
    return [(header, lambda row, key=key: row[key]) for key, header in pairs]


def render_one(row: Any, schema: type[BaseModel], *, as_json: bool, title: str) -> None:
    """One entity as JSON (the Read schema) or as a two-column rich table."""
    from bifrost_core.jsonbounds import jsonable

    data = jsonable(schema.model_validate(row))
    if as_json:
        print_json(data)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=cell(title), show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in data.items():
        table.add_row(cell(key), cell(value))
    Console().print(table)


def cell(value: Any) -> Text:
    """A table cell (or title) that shows `value` as it is: control characters escaped,
    brackets never read as rich markup; lists and mappings as JSON."""
    from rich.text import Text

    if value is None:
        return Text()
    if isinstance(value, dict | list):
        return Text(json.dumps(value, default=str) if value else "")
    return Text(escape(value))


def say(message: str, *, err: bool = False) -> None:
    """One line of output that may hold delivered names or typed text, escaped."""
    typer.echo(escape(message), err=err)


def say_lines(text: str, *, err: bool = False) -> None:
    """A report of several lines (markdown, a log's tail), each line escaped on its own: the
    lines stay lines, and none of them can write to the terminal (a `\r` in one is shown)."""
    for line in text.split("\n"):
        say(line, err=err)


def done(message: str) -> None:
    """A one-line confirmation of a write, on stdout."""
    say(message)
