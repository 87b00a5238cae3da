"""The task every flow begins with: who the run acts as, and Bifrost's record of the run."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.runs import service
from bifrost_core.scope import Actor
from bifrost_core.users import identity
from tasks.common import context


@task(name="begin-run", cache_policy=NO_CACHE)
def begin_run(username: str, project: str, action: str, flow: str, run_id: str, key: str | None) -> Actor:
    """The actor: an active user whom the project allows `action`; the run fails here,
    before anything is read or written, for anyone else. Then the run's record, so the API
    lists and reads it however it was started (see `runs.service.attach`)."""
    _, database = context()
    with UnitOfWork(database) as uow:
        actor, project_id = identity.flow_actor(
            uow.session, username=username, project=project, action=action
        )
        service.attach(uow.session, actor=actor, project_id=project_id, flow=flow, run_id=run_id, key=key)
        uow.commit()
        return actor


@task(name="begin-studio-run", cache_policy=NO_CACHE)
def begin_studio_run(username: str, flow: str) -> Actor:
    """The actor of a studio-wide flow: an active admin, else the run fails here. Such a run
    belongs to no project, so Bifrost keeps no record of it (its runs live in Prefect)."""
    _, database = context()
    with UnitOfWork(database) as uow:
        return identity.studio_flow_actor(uow.session, username=username, flow=flow)
