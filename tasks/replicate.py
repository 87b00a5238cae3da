"""Replication as one task per run: each replica is walked in batches inside it (a task per
blob would cost more than copying a small one)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from bifrost_core.replication import service as replication
from bifrost_core.scope import Actor
from tasks.common import context


@task(name="replicate-blobs", cache_policy=NO_CACHE)
def replicate_blobs(actor: Actor, tier: str | None) -> replication.ReplicationReport:
    settings, database = context()
    return replication.replicate(database, settings, actor=actor, tier=tier)
