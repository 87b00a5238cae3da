"""Typed parameters the flows share: each flow's signature declares its parameters flat, with
these types, and that signature is the one definition of its form in the Prefect UI, its
API request body (flows/registry.py derives it) and its validation (pydantic, by Prefect).

Codes refuse control characters here too, so a run started from the Prefect UI is held to
what the API holds a request to. A parameter's description is the flow's
docstring (its "Args:" section), where Prefect reads it for the UI's form.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from bifrost_core.schemas import refuse_control_characters


def _single_line(value: str) -> str:
    return refuse_control_characters(value, None)


Line = Annotated[str, AfterValidator(_single_line)]
Actor = Annotated[Line, Field(min_length=1, max_length=64)]
ProjectCode = Annotated[Line, Field(min_length=1, max_length=64)]
Tier = Annotated[Line, Field(min_length=1, max_length=32)]
# Paths as the worker sees them: a delivered folder's name may hold anything (it is escaped
# wherever it is printed); the API refuses control characters in its requests.
Location = Annotated[str, Field(min_length=1, max_length=4096)]
EntityCode = Annotated[Line, Field(min_length=1, max_length=64)]
