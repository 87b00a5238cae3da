"""Starting and reading runs of the registry's deployments on the Prefect server
PREFECT_API_URL names (the API and `bifrost flow reconcile`).

Prefect is imported inside each function: the API starts without it. A run is started
from Bifrost's pending record (bifrost_core/runs/service.py: the outbox) with that
record's idempotency key, so asking twice never makes two runs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy.orm import Session

from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import BifrostError, NotFound
from bifrost_core.runs import service
from bifrost_core.runs.models import FlowRun
from bifrost_core.scope import SYSTEM, Actor
from bifrost_core.users.models import User
from bifrost_core.users.service import actor_for_user
from flows.registry import FLOWS, FlowEntry, project_tag

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

# A record younger than this may still be on its way to Prefect: reconcile leaves it alone.
RECONCILE_AFTER = timedelta(minutes=1)


class PrefectUnavailable(BifrostError):
    status_code = 503
    code = "prefect_unavailable"


@contextmanager
def prefect_api() -> Iterator[None]:
    """Prefect calls aimed at the server PREFECT_API_URL names now.

    Prefect reads its settings once, at import; the variable is read per call so a long-lived
    process (the API) follows it whoever imported Prefect first. Settings are made anew only
    when it changed: that costs some 80 ms of CPU (Prefect validates all of its settings).
    """
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        # Without a server Prefect would start an ephemeral one inside this process.
        raise PrefectUnavailable("flows need a Prefect server: set PREFECT_API_URL")
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value() == url:
        yield
        return
    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield


_clients = threading.local()


@contextmanager
def prefect_client() -> Iterator[SyncPrefectClient]:
    """A client of the server the current settings name (inside `prefect_api()`), kept open
    for this thread: a new one costs some 35 ms of CPU (its TLS context, even for http) and a
    new connection. Per thread, as the API's requests run on a pool of them."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    opened: dict[str, SyncPrefectClient] = _clients.__dict__.setdefault("by_url", {})
    client = opened.get(url)
    if client is None:
        client = opened[url] = get_client(sync_client=True)
        client.__enter__()  # entered for good: the `with` below only nests (Prefect counts)
    with client:
        yield client


def start(entry: FlowEntry, run: FlowRun, parameters: dict[str, Any], request_id: str | None = None) -> Any:
    """Create the Prefect run of `run` (or find the one already created for it); returns it.

    Created with its labels, so that no worker takes it before they are set: the trace of the
    request that asked for it (as `run_deployment` does) and `request_id`, that request's id
    as `bifrost.request_id` (its logs carry it: flows/process.py)."""
    from opentelemetry import trace
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Scheduled
    from prefect.telemetry.run_telemetry import LABELS_TRACEPARENT_KEY, RunTelemetry

    from flows.process import REQUEST_LABEL

    labels: dict[str, str] = {}
    if traceparent := RunTelemetry.traceparent_from_span(trace.get_current_span()):
        labels[LABELS_TRACEPARENT_KEY] = traceparent
    if request_id is not None:
        labels[REQUEST_LABEL] = request_id
    try:
        with prefect_client() as client:
            deployment = client.read_deployment_by_name(entry.deployment)
            return client.create_flow_run_from_deployment(
                deployment.id,
                parameters=parameters,
                state=Scheduled(),
                tags=["bifrost", project_tag(parameters["project"])],
                idempotency_key=service.prefect_key(run),
                labels=labels,
            )
    except ObjectNotFound:
        raise PrefectUnavailable(
            f"deployment {entry.deployment!r} is not registered (bifrost deploy)"
        ) from None
    except Exception as exc:  # the Prefect API is down or refused: not the caller's fault
        raise PrefectUnavailable(f"Prefect did not start the run: {type(exc).__name__}: {exc}") from None


def start_studio_run(entry: FlowEntry, parameters: dict[str, Any]) -> Any:
    """A run of a studio-wide flow's deployment (no project, so no Bifrost record: the
    caller checked the actor, and the flow checks again when it begins)."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    try:
        return run_deployment(entry.deployment, parameters=parameters, timeout=0, as_subflow=False)
    except ObjectNotFound:
        raise PrefectUnavailable(
            f"deployment {entry.deployment!r} is not registered (bifrost deploy)"
        ) from None
    except Exception as exc:  # the Prefect API is down or refused: not the caller's fault
        raise PrefectUnavailable(f"Prefect did not start the run: {type(exc).__name__}: {exc}") from None


def start_run(
    session: Session,
    *,
    actor: Actor,
    project_id: int,
    entry: FlowEntry,
    parameters: dict[str, Any],
    request_key: str | None = None,
    request_id: str | None = None,
) -> tuple[FlowRun, Any]:
    """Start a run of `entry` by the outbox rule: record it pending and COMMIT `session`
    (with whatever else it holds, e.g. the request's idempotency claim), then ask Prefect
    with the record's key, then store the run id (committed by the caller). A retry with the
    same `request_key` finds the record, and Prefect the run: never a second run."""
    with prefect_api():
        run = service.record_run(
            session,
            actor=actor,
            project_id=project_id,
            flow=entry.name,
            action=entry.action,
            parameters=parameters,
            request_key=request_key,
        )
        session.commit()
        try:
            flow_run = start(entry, run, run.parameters or parameters, request_id)
        except PrefectUnavailable:
            if request_key is None:
                # Nobody can retry this record: forget it. Had Prefect made the run after
                # all, the flow records itself when it begins.
                session.delete(run)
                session.commit()
            raise
    service.started(session, actor=actor, run=run, run_id=str(flow_run.id))
    return run, flow_run


def read(run_id: UUID) -> tuple[Any, str | None]:
    """The Prefect run and its latest markdown artifact (the run's summary), if any."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterType
    from prefect.exceptions import ObjectNotFound

    try:
        with prefect_client() as client:
            flow_run = client.read_flow_run(run_id)
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]),
                    type=ArtifactFilterType(any_=["markdown"]),
                )
            )
    except ObjectNotFound:
        raise NotFound(f"flow run {run_id} is no longer known to Prefect") from None
    except Exception as exc:
        raise PrefectUnavailable(f"cannot read the run from Prefect: {type(exc).__name__}: {exc}") from None
    return flow_run, artifacts[-1].data if artifacts else None


def reconcile(database: Database, *, older_than: timedelta = RECONCILE_AFTER) -> list[tuple[FlowRun, str]]:
    """Start every pending record older than `older_than` whose Prefect run was never
    created (or whose id was never stored); returns (record, what happened) pairs."""
    done = []
    with prefect_api(), UnitOfWork(database) as uow:
        for run in service.pending(uow.session, actor=SYSTEM, older_than=older_than):
            entry = FLOWS.get(run.flow)
            if entry is None or run.parameters is None:
                done.append((run, f"not started: flow {run.flow!r} is no longer registered"))
                continue
            flow_run = start(entry, run, run.parameters)
            service.started(uow.session, actor=_creator(uow, run), run=run, run_id=str(flow_run.id))
            uow.commit()
            done.append((run, f"started as {flow_run.id}"))
    return done


def _creator(uow: UnitOfWork, run: FlowRun) -> Actor:
    user = uow.session.get(User, run.created_by) if run.created_by is not None else None
    return actor_for_user(uow.session, user) if user is not None else SYSTEM
