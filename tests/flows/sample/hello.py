"""The sample flow of README "Adding a flow", kept as the README writes it: the test
test_flows_sample.py registers it and follows the section's steps."""

from __future__ import annotations

from typing import Annotated

from prefect import flow
from pydantic import Field

from flows.parameters import Actor, ProjectCode
from flows.runs import begin, parameters


def run_name() -> str:
    given = parameters()
    return f"hello {given['project']} {given.get('greeting', 'hello')}"


@flow(name="hello", flow_run_name=run_name)
def hello(
    actor: Actor,
    project: ProjectCode,
    greeting: Annotated[str, Field(min_length=1, max_length=40)] = "hello",
    times: Annotated[int, Field(ge=1, le=5)] = 1,
) -> str:
    """Greet a project.

    Args:
        actor: Bifrost username of who starts the run (your own)
        project: Project code, e.g. DEMO
        greeting: What to say
        times: How many times to say it
    """
    begin("hello", actor, project)  # checks the actor, tags and records the run
    return " ".join([f"{greeting} {project}"] * times)
